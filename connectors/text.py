"""Plain text and Markdown files."""

from __future__ import annotations

import re
from pathlib import Path

from connectors.base import DocumentError, TextDocument

_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_MD_MARKUP = [
    (re.compile(r"```.*?```", re.DOTALL), " "),  # fenced code is not prose
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r"\1"),  # images -> alt text
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),  # links -> link text
    (re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE), r"\1."),  # headings end a
    (re.compile(r"(\*\*|__|\*|_|`)(?=\S)(.+?)(?<=\S)\1"), r"\2"),  # sentence; drop emphasis
    (re.compile(r"^\s*([-*+]|\d+\.)\s+", re.MULTILINE), ""),
    (re.compile(r"^\s*>\s?", re.MULTILINE), ""),
]


def decode_text(data: bytes, path: Path) -> str:
    """UTF-8 (with or without BOM); binary or undecodable files get a specific error."""
    if b"\x00" in data[:8192]:
        raise DocumentError(f"{path}: looks like a binary file, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(
            f"{path}: not valid UTF-8 (byte {exc.start}: {data[exc.start:exc.start + 1]!r}); "
            "convert it with e.g. `iconv -t utf-8`"
        ) from exc


def read_text(path: Path, source: str) -> TextDocument:
    text = decode_text(path.read_bytes(), path)
    return TextDocument(source=source, title=path.stem, text=text)


def read_markdown(path: Path, source: str) -> TextDocument:
    raw = decode_text(path.read_bytes(), path)
    heading = _MD_HEADING.search(raw)
    text = raw
    for pattern, replacement in _MD_MARKUP:
        text = pattern.sub(replacement, text)
    title = heading.group(1).strip() if heading else path.stem
    return TextDocument(source=source, title=title, text=text)
