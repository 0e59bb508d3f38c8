"""The unit of retrieval: a chunk of a document or a segment of a recording.

Ids are derived from content (source, kind, position, text) so upserting the same chunk twice
overwrites it instead of adding a duplicate, which makes re-ingesting idempotent.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any, Literal

ChunkKind = Literal["text", "audio"]


def content_hash(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Chunk:
    kind: ChunkKind
    source: str  # the ingested file's path, as given
    title: str
    text: str  # chunk text, or an audio segment's transcript ("" when not transcribed)
    index: int  # position within its source
    doc_hash: str  # hash of the whole source file + ingest settings that shaped the chunks
    start: float | None = None  # seconds into the recording (audio chunks only)
    end: float | None = None

    @property
    def hash(self) -> str:
        return content_hash(self.text)

    @property
    def id(self) -> str:
        key = f"{self.source}\0{self.kind}\0{self.index}\0{self.start}\0{self.end}\0{self.hash}"
        return str(uuid.UUID(bytes=hashlib.sha256(key.encode("utf-8")).digest()[:16]))

    def payload(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "source": self.source,
            "title": self.title,
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "index": self.index,
            "hash": self.hash,
            "doc_hash": self.doc_hash,
        }
