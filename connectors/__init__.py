"""Connectors turn files into documents and spoken segments, one module per kind of source.
Which one reads a file is decided by ``assistant.index.registry``."""

from connectors.base import DocumentError, TextDocument

__all__ = ["DocumentError", "TextDocument"]
