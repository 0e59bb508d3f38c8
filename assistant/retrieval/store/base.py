"""What every store backend offers, and the plain records that cross the boundary."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from assistant.retrieval.chunks import Chunk
from assistant.retrieval.sparse import SparseVector

TEXT_VECTOR = "text"  # text embedding of a chunk's text, or of an audio chunk's transcript
SPEECH_VECTOR = "speech"  # the e2e speech vector of an audio chunk (its CTC spelling, embedded)
VECTOR_NAMES = (TEXT_VECTOR, SPEECH_VECTOR)
SPARSE_VECTOR = "bm25"  # BM25 term weights of the same text (IDF applied by Qdrant)
CHARS_VECTOR = "chars"  # BM25 weights of its character n-grams: robust to misheard words
SOUND_VECTOR = "sound"  # BM25 weights of its words' Metaphone keys: misheard, same sounds
SPARSE_NAMES = (SPARSE_VECTOR, CHARS_VECTOR, SOUND_VECTOR)
RRF_K = 60  # reciprocal-rank-fusion constant (the usual value from Cormack et al.)
# A hit found by one leg only scores 1/(k + rank), so rank r of the dense leg and rank r of the
# sparse leg tie exactly, and Qdrant orders ties arbitrarily (run-to-run MRR jitter). Weighting
# the sparse leg a hair lower breaks such ties in favour of the dense leg, deterministically.
# Qdrant's weighted RRF divides a leg's rank by its weight (1 / (k - 1 + (rank + 1) / w)), so
# even a small weight moves the top of the list: a weight is no volume knob.
RRF_WEIGHTS = (1.0, 0.999, 0.998, 0.997)  # dense, bm25, chars, sound
INDEXED_FIELDS = ("source", "kind", "doc_hash", "title")


Terms = list[tuple[str, str]]


def filter_terms(source: str | None = None, doc_hash: str | None = None,
                 kind: str | None = None, not_doc_hash: str | None = None
                 ) -> tuple[Terms, Terms]:
    """The (must, must_not) keyword matches of the few filters s2r uses; each backend turns
    them into its own client's filter objects."""
    must = [(k, v) for k, v in (("source", source), ("doc_hash", doc_hash), ("kind", kind))
            if v is not None]
    must_not = [("doc_hash", not_doc_hash)] if not_doc_hash is not None else []
    return must, must_not


class StoreError(RuntimeError):
    """The collection cannot be used (wrong vector size, unreachable server …)."""


def check_index_shape(stored: dict[str, Any] | None, wanted: dict[str, Any] | None,
                      where: str) -> bool:
    """Whether ``wanted`` (the settings that shape an index) must be recorded with the
    collection: yes when it holds none yet (new, or made by an older s2r).  A collection made
    with other values is refused: its chunks and vectors would not match this process's
    queries, and searching it would only quietly find less."""
    if wanted is None:
        return False
    if stored is None:
        return True
    differ = sorted(k for k in wanted.keys() | stored.keys() if stored.get(k) != wanted.get(k))
    if differ:
        made = ", ".join(f"{k}={stored.get(k)!r}" for k in differ)
        now = ", ".join(f"{k}={wanted.get(k)!r}" for k in differ)
        raise StoreError(f"{where} was made with {made}, and these shape the index; now they "
                         f"are {now}. Use the values it was made with, or ingest again into a "
                         "new collection (S2R_COLLECTION or S2R_DATA_DIR)")
    return False


@dataclass(frozen=True)
class QueryLeg:
    """One ranked list for reciprocal-rank fusion: nearest points to ``vector`` by ``using``."""

    using: str  # a dense name (VECTOR_NAMES) or a sparse one (SPARSE_NAMES)
    vector: np.ndarray | SparseVector
    weight: float = 1.0

    @property
    def sparse(self) -> bool:
        return self.using in SPARSE_NAMES


def text_legs(dense: np.ndarray, sparse: SparseVector) -> list[QueryLeg]:
    """The text retriever's two legs: the dense vector, and the BM25 terms when there are any."""
    legs = [QueryLeg(TEXT_VECTOR, dense, RRF_WEIGHTS[0])]
    if sparse:
        legs.append(QueryLeg(SPARSE_VECTOR, sparse, RRF_WEIGHTS[1]))
    return legs


@dataclass(frozen=True)
class StoredPoint:
    chunk: Chunk
    vectors: dict[str, np.ndarray | SparseVector]  # by name; a missing name stays empty


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    payload: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        p = self.payload
        return {
            "id": self.id,
            "score": round(float(self.score), 6),
            "kind": p.get("kind"),
            "source": p.get("source"),
            "title": p.get("title"),
            "text": p.get("text"),
            "start": p.get("start"),
            "end": p.get("end"),
        }


@dataclass(frozen=True)
class StoreStats:
    points: int
    text_chunks: int
    audio_chunks: int
    sources: int
    location: str


class Store(Protocol):
    def upsert(self, points: list[StoredPoint]) -> None: ...

    def count(self, source: str | None = None, doc_hash: str | None = None) -> int:
        """Points, optionally only of ``source`` and only with ``doc_hash``."""
        ...

    def delete_source(self, source: str, keep_doc_hash: str | None = None) -> int:
        """Delete a source's points (except those of ``keep_doc_hash``); returns how many."""
        ...

    def search(self, vector: np.ndarray, using: str = TEXT_VECTOR, top_k: int = 10,
               kind: str | None = None) -> list[Hit]: ...

    def search_fused(self, dense: np.ndarray, sparse: SparseVector, top_k: int = 10,
                     kind: str | None = None, depth: int = 50) -> list[Hit]:
        """Dense (``text``) and sparse (``bm25``) searches of ``depth`` hits each, fused by
        reciprocal rank in Qdrant (``search_legs`` with ``text_legs``)."""
        ...

    def search_legs(self, legs: list[QueryLeg], top_k: int = 10, kind: str | None = None,
                    depth: int = 50, fusion: str = "rrf") -> list[Hit]:
        """Each leg's ``depth`` nearest points, fused in Qdrant by weighted reciprocal rank
        ("rrf") or by distribution-based score fusion ("dbsf": each leg's scores scaled by
        their mean ± 3 standard deviations, then summed; weights unused).  Empty sparse legs
        are left out, and no legs left means no hits."""
        ...

    def sources(self, limit: int = 100_000) -> dict[str, int]:
        """Point count per source."""
        ...

    def stats(self) -> StoreStats: ...

    def texts(self, batch: int = 1000) -> Iterator[str]:
        """The text of every chunk (an audio chunk's is its transcript), in no set order."""
        ...

    def finish_batch(self) -> None:
        """Called after a bulk ingest: flush and build indexes where the backend needs it."""
        ...

    def close(self) -> None: ...
