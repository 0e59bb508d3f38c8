"""The ingest manifest: which sources are completely stored, with their checksums.

A source is recorded only after all of its chunks are upserted and its older versions deleted,
so a crash (kill -9, power loss) mid-ingest leaves it unrecorded and the next run redoes it;
point ids derive from content, so redoing it cannot duplicate anything.  A re-run skips a
source when its checksum matches the manifest *and* the store still holds exactly the recorded
number of chunks of that version (the store may have been wiped or edited behind our back).

SQLite in WAL mode gives the atomic, durable commit this needs with nothing to install.  The
file lives in the data directory, one per collection location.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from assistant.retrieval.store.base import StoreError

SCHEMA = """
CREATE TABLE IF NOT EXISTS sources (
    source TEXT PRIMARY KEY,
    doc_hash TEXT NOT NULL,    -- sha256 of the file bytes and the settings that shaped it
    chunks INTEGER NOT NULL,   -- chunks stored for this version
    ingested_at REAL NOT NULL  -- unix time
)
"""


@dataclass(frozen=True)
class Entry:
    source: str
    doc_hash: str
    chunks: int
    ingested_at: float


class Manifest:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        with self._errors():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # a recorded source survives power loss
            self._db.execute(SCHEMA)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """A manifest that cannot be read or written stops the ingest like a failing store
        (it is part of the store's state), instead of failing every file one by one."""
        try:
            yield
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"ingest manifest {self.path}: {exc}") from exc

    @classmethod
    def for_collection(cls, data_dir: Path, location: str, collection: str) -> Manifest:
        key = hashlib.sha256(f"{location}\0{collection}".encode()).hexdigest()[:12]
        return cls(Path(data_dir) / "manifests" / f"{collection}-{key}.sqlite")

    def get(self, source: str) -> Entry | None:
        with self._errors():
            row = self._db.execute("SELECT source, doc_hash, chunks, ingested_at FROM sources "
                                   "WHERE source = ?", (source,)).fetchone()
        return Entry(*row) if row else None

    def record(self, entries: list[tuple[str, str, int]]) -> None:
        """Mark (source, doc_hash, chunks) as completely stored, in one transaction."""
        now = time.time()
        with self._errors(), self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO sources VALUES (?, ?, ?, ?) ON CONFLICT(source) DO UPDATE SET "
                "doc_hash = excluded.doc_hash, chunks = excluded.chunks, "
                "ingested_at = excluded.ingested_at",
                [(source, doc_hash, chunks, now) for source, doc_hash, chunks in entries])

    def fingerprint(self) -> str:
        """A digest of every recorded source and version: it changes whenever a source is
        added, replaced or removed, even when the collection's size does not."""
        digest = hashlib.sha256()
        with self._errors():
            for source, doc_hash in self._db.execute(
                    "SELECT source, doc_hash FROM sources ORDER BY source"):
                digest.update(f"{source}\0{doc_hash}\n".encode())
        return digest.hexdigest()[:16]

    def forget(self, source: str) -> None:
        with self._errors():
            self._db.execute("DELETE FROM sources WHERE source = ?", (source,))

    def close(self) -> None:
        self._db.close()
