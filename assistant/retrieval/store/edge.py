"""Embedded store: Qdrant's engine in-process (qdrant-edge), persisted in a directory.

qdrant-client's local ``path=`` mode commits each point in its own SQLite transaction and
searches by brute force; qdrant-edge has a WAL, HNSW and payload indexes, so it upserts 10k
points in about a second and answers in about a millisecond (benchmarks/results/).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from assistant.retrieval.sparse import SparseVector
from assistant.retrieval.store.base import (
    CHARS_VECTOR,
    INDEXED_FIELDS,
    RRF_K,
    SOUND_VECTOR,
    SPARSE_NAMES,
    SPARSE_VECTOR,
    TEXT_VECTOR,
    VECTOR_NAMES,
    Hit,
    QueryLeg,
    StoredPoint,
    StoreError,
    StoreStats,
    check_index_shape,
    filter_terms,
    text_legs,
)
from assistant.retrieval.store.layout import (
    DEFAULT_LAYOUT,
    QUANTILE,
    QUANTIZATION_OVERSAMPLING,
    Layout,
)

log = logging.getLogger(__name__)
META_FILE = "s2r-collection.json"
# 2: the bm25 sparse vector; 3: the title index; 4: the chars sparse vector; 5: the sound one
SCHEMA = 5


def _vector(value: np.ndarray | SparseVector) -> list[float] | qe.SparseVector:
    if isinstance(value, SparseVector):
        return qe.SparseVector(list(value.indices), list(value.values))
    return np.asarray(value, np.float32).tolist()


def _filter(**terms: str | None) -> qe.Filter | None:
    must, must_not = filter_terms(**terms)
    match = lambda k, v: qe.FieldCondition(k, match=qe.MatchValue(v))  # noqa: E731
    if not must and not must_not:
        return None
    return qe.Filter(must=[match(k, v) for k, v in must] or None,
                     must_not=[match(k, v) for k, v in must_not] or None)


def _load(path: Path) -> qe.EdgeShard:
    try:
        return qe.EdgeShard.load(str(path))
    except Exception as exc:  # the engine raises a bare Exception with the WAL error text
        if "WouldBlock" in str(exc):
            raise StoreError(f"collection at {path} is open in another s2r process (its "
                             "write-ahead log is locked); wait for it or use another "
                             "S2R_DATA_DIR") from exc
        raise StoreError(f"cannot open the collection at {path}: {exc}") from exc


def _config(dim: int, layout: Layout) -> qe.EdgeConfig:
    quantization = qe.ScalarQuantizationConfig(qe.ScalarType.Int8, quantile=QUANTILE,
                                               always_ram=True) if layout.quantized else None
    return qe.EdgeConfig(
        vectors={name: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine,
                                           on_disk=layout.on_disk)
                 for name in VECTOR_NAMES},
        sparse_vectors={name: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf,
                                                        on_disk=layout.on_disk)
                        for name in SPARSE_NAMES},
        on_disk_payload=layout.on_disk,
        hnsw_config=qe.HnswIndexConfig(m=layout.hnsw_m, ef_construct=layout.hnsw_ef_construct,
                                       full_scan_threshold=10_000),
        quantization_config=quantization,
    )


class EdgeStore:
    """The embedded default store; one directory holds the whole collection."""

    def __init__(self, path: Path, dim: int, model_id: str,
                 layout: Layout = DEFAULT_LAYOUT, min_free_mb: int = 0,
                 shape: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.min_free_mb = min_free_mb
        self.path.mkdir(parents=True, exist_ok=True)
        self._check_space()
        rescore = qe.QuantizationSearchParams(rescore=True,
                                              oversampling=QUANTIZATION_OVERSAMPLING)
        self._params = qe.SearchParams(hnsw_ef=layout.hnsw_ef,
                                       quantization=rescore if layout.quantized else None)
        meta_path = self.path / META_FILE
        if meta_path.exists():
            meta = json.loads(meta_path.read_text())
            if meta["dim"] != dim or meta["model_id"] != model_id:
                raise StoreError(
                    f"collection at {self.path} holds vectors of {meta['model_id']} "
                    f"({meta['dim']}-d), not of {model_id} ({dim}-d): use another "
                    "S2R_COLLECTION or S2R_DATA_DIR"
                )
            record = check_index_shape(meta.get("shape"), shape, f"the collection at {self.path}")
            self._shard = _load(self.path)
            if meta.get("schema", 1) < SCHEMA:
                self._migrate(meta.get("schema", 1))
            if record or meta.get("schema", 1) < SCHEMA:
                meta_path.write_text(json.dumps(meta | {"schema": SCHEMA, "shape": shape}))
            return
        self._shard = qe.EdgeShard.create(str(self.path), _config(dim, layout))
        for name in INDEXED_FIELDS:
            self._index(name)
        self._shard.flush()
        # Written last: a directory without it is an interrupted creation, not a collection.
        meta_path.write_text(json.dumps({"dim": dim, "model_id": model_id, "schema": SCHEMA,
                                         "shape": shape}))

    def _index(self, field_name: str) -> None:
        self._shard.update(qe.UpdateOperation.create_field_index(
            field_name, qe.PayloadSchemaType.Keyword))

    def _migrate(self, schema: int) -> None:
        """Bring a collection made by an older s2r up to the current schema, in place."""
        if schema < 2:
            self._shard.update(qe.UpdateOperation.create_sparse_vector(
                SPARSE_VECTOR, modifier=qe.Modifier.Idf))
        if schema < 3:
            self._index("title")
        # chunks stored before get these when their source is ingested again
        for added, name in ((4, CHARS_VECTOR), (5, SOUND_VECTOR)):
            if schema < added:
                self._shard.update(qe.UpdateOperation.create_sparse_vector(
                    name, modifier=qe.Modifier.Idf))
        self._shard.flush()

    def _check_space(self) -> None:
        """Refuse to write with less than ``min_free_mb`` left: the engine's memory-mapped
        files turn a full disk into a crash (SIGBUS), not an error, so stop before it."""
        free_mb = shutil.disk_usage(self.path).free / 2**20
        if free_mb < self.min_free_mb:
            raise StoreError(
                f"disk nearly full: {free_mb:.0f} MB free on the volume of {self.path}, and "
                f"s2r keeps {self.min_free_mb} MB free (S2R_MIN_FREE_MB) so the store stays "
                "consistent; free some space or move S2R_DATA_DIR")

    def upsert(self, points: list[StoredPoint]) -> None:
        if not points:
            return
        self._check_space()
        batch = [
            qe.Point(
                p.chunk.id,
                {name: _vector(v) for name, v in p.vectors.items()},
                p.chunk.payload(),
            )
            for p in points
        ]
        self._shard.update(qe.UpdateOperation.upsert_points(batch))

    def count(self, source: str | None = None, doc_hash: str | None = None) -> int:
        selector = _filter(source=source, doc_hash=doc_hash)
        return self._shard.count(qe.CountRequest(exact=True, filter=selector))

    def delete_source(self, source: str, keep_doc_hash: str | None = None) -> int:
        selector = _filter(source=source, not_doc_hash=keep_doc_hash)
        n = self._shard.count(qe.CountRequest(exact=True, filter=selector))
        if n:
            self._shard.update(qe.UpdateOperation.delete_points_by_filter(selector))
            self._shard.flush()
        return n

    def search(self, vector: np.ndarray, using: str = TEXT_VECTOR, top_k: int = 10,
               kind: str | None = None) -> list[Hit]:
        request = qe.QueryRequest(
            limit=top_k,
            query=qe.Query.Nearest(_vector(vector), using=using),
            filter=_filter(kind=kind),
            params=self._params,
            with_payload=True,
        )
        return [Hit(str(p.id), float(p.score), dict(p.payload or {}))
                for p in self._shard.query(request)]

    def search_fused(self, dense: np.ndarray, sparse: SparseVector, top_k: int = 10,
                     kind: str | None = None, depth: int = 50) -> list[Hit]:
        return self.search_legs(text_legs(dense, sparse), top_k, kind, depth)

    def search_legs(self, legs: list[QueryLeg], top_k: int = 10, kind: str | None = None,
                    depth: int = 50, fusion: str = "rrf") -> list[Hit]:
        selector = _filter(kind=kind)
        kept = [leg for leg in legs if not leg.sparse or leg.vector]
        if not kept:  # e.g. only sparse legs, and a query without a single term
            return []
        prefetches = [qe.Prefetch(limit=depth, filter=selector,
                                  query=qe.Query.Nearest(_vector(leg.vector), using=leg.using),
                                  params=None if leg.sparse else self._params)
                      for leg in kept]
        fused = qe.Fusion.Dbsf() if fusion == "dbsf" else \
            qe.Fusion.Rrf(k=RRF_K, weights=[leg.weight for leg in kept])
        request = qe.QueryRequest(limit=top_k, prefetches=prefetches, query=fused,
                                  with_payload=True)
        return [Hit(str(p.id), float(p.score), dict(p.payload or {}))
                for p in self._shard.query(request)]

    def sources(self, limit: int = 100_000) -> dict[str, int]:
        hits = self._shard.facet(qe.FacetRequest("source", limit=limit, exact=True)).hits
        # the keyword index keeps values of deleted points with a count of 0: drop them
        return {str(h.value): int(h.count) for h in hits if h.count > 0}

    def stats(self) -> StoreStats:
        count = lambda kind: self._shard.count(qe.CountRequest(filter=_filter(kind=kind)))  # noqa: E731
        return StoreStats(
            points=self.count(),
            text_chunks=count("text"),
            audio_chunks=count("audio"),
            sources=len(self.sources()),
            location=str(self.path),
        )

    def texts(self, batch: int = 1000) -> Iterator[str]:
        offset = None
        while True:
            records, offset = self._shard.scroll(qe.ScrollRequest(
                offset=offset, limit=batch, with_payload=qe.PayloadSelector.Include(["text"]),
                with_vector=False))
            yield from (str((r.payload or {}).get("text") or "") for r in records)
            if offset is None:
                return

    def finish_batch(self) -> None:
        self._shard.flush()
        try:
            self._check_space()
        except StoreError as exc:  # the points are stored; indexing can wait for space
            log.warning("not optimizing the collection now: %s", exc)
            return
        self._shard.optimize()  # merges segments and builds HNSW once enough points exist

    def close(self) -> None:
        self._shard.close()

