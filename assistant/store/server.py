"""Qdrant server or cluster through qdrant-client (``S2R_QDRANT_URL``).

``:memory:`` selects qdrant-client's local mode, which speaks the same API as a server: the
tests drive this exact code through it.
"""

from __future__ import annotations

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from assistant.sparse import SparseVector
from assistant.store.base import (
    INDEXED_FIELDS,
    RRF_K,
    RRF_WEIGHTS,
    SPARSE_VECTOR,
    TEXT_VECTOR,
    VECTOR_NAMES,
    Hit,
    StoredPoint,
    StoreError,
    StoreStats,
    filter_terms,
)

UPSERT_BATCH = 256


def _vector(value: np.ndarray | SparseVector) -> list[float] | qm.SparseVector:
    if isinstance(value, SparseVector):
        return qm.SparseVector(indices=list(value.indices), values=list(value.values))
    return np.asarray(value, np.float32).tolist()


def _filter(**terms: str | None) -> qm.Filter | None:
    must, must_not = filter_terms(**terms)
    match = lambda k, v: qm.FieldCondition(key=k, match=qm.MatchValue(value=v))  # noqa: E731
    if not must and not must_not:
        return None
    return qm.Filter(must=[match(k, v) for k, v in must] or None,
                     must_not=[match(k, v) for k, v in must_not] or None)


class ServerStore:
    def __init__(self, client: QdrantClient, collection: str, dim: int, location: str,
                 hnsw_ef: int = 128) -> None:
        self.client = client
        # qdrant-client's local mode (":memory:" or path=) searches exactly and has no payload
        # indexes; it warns when given either, so they are only sent to a real server.
        options = client.init_options
        self._local = options.get("location") == ":memory:" or bool(options.get("path"))
        self._params = None if self._local else qm.SearchParams(hnsw_ef=hnsw_ef)
        self.collection = collection
        self.location = location
        if client.collection_exists(collection):
            self._check_vectors(dim)
        else:
            client.create_collection(
                collection,
                vectors_config={name: qm.VectorParams(size=dim, distance=qm.Distance.COSINE)
                                for name in VECTOR_NAMES},
                sparse_vectors_config={SPARSE_VECTOR: qm.SparseVectorParams(
                    modifier=qm.Modifier.IDF)},
            )
            for name in () if self._local else INDEXED_FIELDS:
                client.create_payload_index(collection, name, qm.PayloadSchemaType.KEYWORD)

    @classmethod
    def connect(cls, url: str, api_key: str | None, collection: str, dim: int,
                hnsw_ef: int = 128) -> ServerStore:
        try:
            client = QdrantClient(location=url, api_key=api_key, check_compatibility=False)
            return cls(client, collection, dim, url, hnsw_ef)
        except StoreError:
            raise
        except Exception as exc:  # connection refused, TLS, auth …: say where we tried
            raise StoreError(f"cannot use Qdrant at {url}: {exc}") from exc

    def _check_vectors(self, dim: int) -> None:
        params = self.client.get_collection(self.collection).config.params.vectors
        sizes = {name: p.size for name, p in (params or {}).items()} if isinstance(params, dict) \
            else {}
        if sizes.get(TEXT_VECTOR) != dim:
            raise StoreError(
                f"collection {self.collection!r} at {self.location} has vectors {sizes}, "
                f"expected named vector {TEXT_VECTOR!r} of size {dim}: use another S2R_COLLECTION"
            )

    def upsert(self, points: list[StoredPoint]) -> None:
        for i in range(0, len(points), UPSERT_BATCH):
            batch = [
                qm.PointStruct(
                    id=p.chunk.id,
                    vector={name: _vector(v) for name, v in p.vectors.items()},
                    payload=p.chunk.payload(),
                )
                for p in points[i : i + UPSERT_BATCH]
            ]
            self.client.upsert(self.collection, points=batch, wait=True)

    def count(self, source: str | None = None, doc_hash: str | None = None) -> int:
        selector = _filter(source=source, doc_hash=doc_hash)
        return self.client.count(self.collection, count_filter=selector, exact=True).count

    def delete_source(self, source: str, keep_doc_hash: str | None = None) -> int:
        selector = _filter(source=source, not_doc_hash=keep_doc_hash)
        n = self.client.count(self.collection, count_filter=selector, exact=True).count
        if n:
            self.client.delete(self.collection, points_selector=qm.FilterSelector(filter=selector),
                               wait=True)
        return n

    def search(self, vector: np.ndarray, using: str = TEXT_VECTOR, top_k: int = 10,
               kind: str | None = None) -> list[Hit]:
        result = self.client.query_points(
            self.collection,
            query=_vector(vector),
            using=using,
            limit=top_k,
            query_filter=_filter(kind=kind),
            search_params=self._params,
            with_payload=True,
        )
        return [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in result.points]

    def search_fused(self, dense: np.ndarray, sparse: SparseVector, top_k: int = 10,
                     kind: str | None = None, depth: int = 50) -> list[Hit]:
        selector = _filter(kind=kind)
        legs = [qm.Prefetch(query=_vector(dense), using=TEXT_VECTOR, limit=depth,
                            filter=selector, params=self._params)]
        if sparse:
            legs.append(qm.Prefetch(query=_vector(sparse), using=SPARSE_VECTOR, limit=depth,
                                    filter=selector))
        result = self.client.query_points(
            self.collection, prefetch=legs, limit=top_k, with_payload=True,
            query=qm.RrfQuery(rrf=qm.Rrf(k=RRF_K, weights=list(RRF_WEIGHTS[: len(legs)]))),
        )
        return [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in result.points]

    def sources(self, limit: int = 100_000) -> dict[str, int]:
        hits = self.client.facet(self.collection, key="source", limit=limit, exact=True).hits
        return {str(h.value): int(h.count) for h in hits}

    def stats(self) -> StoreStats:
        count = lambda kind: self.client.count(  # noqa: E731
            self.collection, count_filter=_filter(kind=kind), exact=True).count
        return StoreStats(
            points=self.count(),
            text_chunks=count("text"),
            audio_chunks=count("audio"),
            sources=len(self.sources()),
            location=f"{self.location} / {self.collection}",
        )

    def finish_batch(self) -> None:
        """The server indexes in the background; nothing to do."""

    def close(self) -> None:
        self.client.close()
