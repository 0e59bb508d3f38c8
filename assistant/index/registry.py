"""Which connector reads a file: the registry of file kinds that ingest walks by.

The connectors themselves (``connectors/``) only turn one file into a document; this table
is where a new kind of source is plugged in.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from assistant.speech.audio import AUDIO_EXTENSIONS
from connectors.base import TextDocument
from connectors.html import read_html
from connectors.pdf import read_pdf
from connectors.text import read_markdown, read_text

TEXT_READERS: dict[str, Callable[[Path, str], TextDocument]] = {
    ".txt": read_text,
    ".text": read_text,
    ".rst": read_text,
    ".md": read_markdown,
    ".markdown": read_markdown,
    ".html": read_html,
    ".htm": read_html,
    ".pdf": read_pdf,
}


def source_kind(path: Path) -> str | None:
    """"text", "audio", or None for a file type no connector reads."""
    suffix = path.suffix.lower()
    if suffix in TEXT_READERS:
        return "text"
    if suffix in AUDIO_EXTENSIONS:
        return "audio"
    return None


def read_document(path: Path, source: str) -> TextDocument:
    return TEXT_READERS[path.suffix.lower()](path, source)

