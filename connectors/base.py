"""What connectors produce, and the error they raise for input they cannot use."""

from __future__ import annotations

from dataclasses import dataclass


class DocumentError(ValueError):
    """A document cannot be read; the message names the file and says why."""


@dataclass(frozen=True)
class TextDocument:
    source: str  # the path as given (or an id for in-memory documents)
    title: str
    text: str
