"""PDF files via pypdf: text layer only (scanned pages without one are reported)."""

from __future__ import annotations

import logging
from pathlib import Path

from connectors.base import DocumentError, TextDocument

logging.getLogger("pypdf").setLevel(logging.ERROR)  # malformed-but-readable noise


def read_pdf(path: Path, source: str) -> TextDocument:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PyPdfError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentError(f"{path}: encrypted PDF; decrypt it first (e.g. qpdf --decrypt)")
        pages = [page.extract_text() or "" for page in reader.pages]
        title = (reader.metadata.title if reader.metadata else None) or path.stem
    except DocumentError:
        raise
    except (FileNotDecryptedError, DependencyError) as exc:  # AES needs `cryptography`
        raise DocumentError(f"{path}: encrypted PDF; decrypt it first ({exc})") from exc
    # PyPdfError: every pypdf failure, e.g. a page that refers to itself (LimitReachedError)
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise DocumentError(f"{path}: broken or not a PDF ({exc})") from exc
    text = "\n\n".join(pages)
    if not text.strip():
        raise DocumentError(f"{path}: PDF has no text layer (scanned?); OCR it first")
    return TextDocument(source=source, title=str(title).strip() or path.stem, text=text)
