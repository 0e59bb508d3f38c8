"""Qdrant server or cluster through qdrant-client (``S2R_QDRANT_URL``).

``:memory:`` selects qdrant-client's local mode, which speaks the same API as a server: the
tests drive this exact code through it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import (
    ApiException,
    ResponseHandlingException,
    UnexpectedResponse,
)

from assistant.retrieval.sparse import SparseVector
from assistant.retrieval.store.base import (
    INDEXED_FIELDS,
    RRF_K,
    SPARSE_NAMES,
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

# the collection metadata key under which the index shape is recorded
SHAPE_KEY = "s2r_index_shape"

T = TypeVar("T")
RETRY_BASE_S = 0.5
RETRY_MAX_S = 8.0

log = logging.getLogger(__name__)
RETRY_STATUSES = {429, 500, 502, 503, 504}


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


def _transient(exc: Exception) -> bool:
    """Worth another try: the server was unreachable, timed out, overloaded or restarting."""
    if isinstance(exc, UnexpectedResponse):
        return exc.status_code in RETRY_STATUSES
    return isinstance(exc, (ResponseHandlingException, httpx.TransportError, ConnectionError))


def _consistency(value: str) -> int | qm.ReadConsistencyType | None:
    if not value:
        return None
    return int(value) if value.isdigit() else qm.ReadConsistencyType(value)


def _collection_spec(layout: Layout, dim: int, nodes: int) -> dict[str, Any]:
    """The create-collection arguments for ``layout`` on a server of ``nodes`` peers."""
    quantization = qm.ScalarQuantization(scalar=qm.ScalarQuantizationConfig(
        type=qm.ScalarType.INT8, quantile=QUANTILE, always_ram=True)) if layout.quantized else None
    return dict(
        vectors_config={name: qm.VectorParams(size=dim, distance=qm.Distance.COSINE,
                                              on_disk=layout.on_disk)
                        for name in VECTOR_NAMES},
        sparse_vectors_config={name: qm.SparseVectorParams(
            modifier=qm.Modifier.IDF, index=qm.SparseIndexParams(on_disk=layout.on_disk))
            for name in SPARSE_NAMES},
        shard_number=layout.shards or None,
        replication_factor=layout.replication_for(nodes),
        write_consistency_factor=layout.write_consistency,
        on_disk_payload=layout.on_disk,
        hnsw_config=qm.HnswConfigDiff(m=layout.hnsw_m, ef_construct=layout.hnsw_ef_construct),
        quantization_config=quantization,
    )


class ServerStore:
    def __init__(self, client: QdrantClient, collection: str, dim: int, location: str,
                 layout: Layout = DEFAULT_LAYOUT, shape: dict[str, Any] | None = None) -> None:
        self.client = client
        self.layout = layout
        # qdrant-client's local mode (":memory:" or path=) searches exactly and has no payload
        # indexes, shards or quantization; it warns when given them, so they only go to a server.
        options = client.init_options
        self._local = options.get("location") == ":memory:" or bool(options.get("path"))
        rescore = qm.QuantizationSearchParams(rescore=True,
                                              oversampling=QUANTIZATION_OVERSAMPLING)
        self._params = None if self._local else qm.SearchParams(
            hnsw_ef=layout.hnsw_ef, quantization=rescore if layout.quantized else None)
        self._consistency = None if self._local else _consistency(layout.read_consistency)
        self.collection = collection
        self.location = location
        self._lacking: set[str] = set()  # sparse vectors an older collection was made without
        if self._call(client.collection_exists, collection):
            self._check_vectors(dim)
            metadata = self._call(client.get_collection, collection).config.metadata or {}
            if check_index_shape(metadata.get(SHAPE_KEY), shape,
                                 f"collection {collection} at {location}"):
                self._call(client.update_collection, collection,
                           metadata={**metadata, SHAPE_KEY: shape})
            return
        try:
            spec = _collection_spec(layout, dim, 1 if self._local else self._nodes())
        except ValueError as exc:
            raise StoreError(f"Qdrant at {location}: {exc}") from exc
        if self._local:  # vectors only: the rest is server-side layout (see above)
            spec = {k: spec[k] for k in ("vectors_config", "sparse_vectors_config")}
        metadata = {SHAPE_KEY: shape} if shape is not None else None
        self._call(client.create_collection, collection, metadata=metadata, **spec)
        for name in () if self._local else INDEXED_FIELDS:
            self._call(client.create_payload_index, collection, name,
                       qm.PayloadSchemaType.KEYWORD, wait=True)

    @classmethod
    def connect(cls, url: str, api_key: str | None, collection: str, dim: int,
                layout: Layout = DEFAULT_LAYOUT, shape: dict[str, Any] | None = None
                ) -> ServerStore:
        try:
            client = QdrantClient(location=url, api_key=api_key, check_compatibility=False,
                                  timeout=max(1, math.ceil(layout.timeout_s)))
            return cls(client, collection, dim, url, layout, shape)
        except StoreError:
            raise
        except Exception as exc:  # TLS, auth, a bad URL …: say where we tried
            raise StoreError(f"cannot use Qdrant at {url}: {exc}") from exc

    def _call(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one client request, retrying transient failures with exponential backoff.
        Every write s2r sends is idempotent (point ids derive from content), so a retried
        upsert or delete cannot duplicate anything."""
        for attempt in range(self.layout.retries + 1):
            try:
                return method(*args, **kwargs)
            except Exception as exc:
                if not _transient(exc):
                    if isinstance(exc, ApiException | ValueError):  # the server said no
                        raise StoreError(f"Qdrant at {self.location} refused "
                                         f"{method.__name__}: {exc}") from exc
                    raise
                if attempt == self.layout.retries:
                    raise StoreError(
                        f"Qdrant at {self.location} did not answer {method.__name__} after "
                        f"{attempt + 1} tries ({_reason(exc)}); is it running and reachable? "
                        "(S2R_QDRANT_URL)") from exc
                delay = min(RETRY_BASE_S * 2 ** attempt, RETRY_MAX_S)
                log.warning("Qdrant %s failed (%s); retry %d/%d in %.1f s", method.__name__,
                            _reason(exc), attempt + 1, self.layout.retries, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _nodes(self) -> int:
        """Peers in the cluster, 1 when distributed mode is off."""
        status = self._call(self.client.cluster_status)
        return len(getattr(status, "peers", None) or {}) or 1

    def _check_vectors(self, dim: int) -> None:
        config = self._call(self.client.get_collection, self.collection).config.params
        params = config.vectors
        sizes = {name: p.size for name, p in (params or {}).items()} if isinstance(params, dict) \
            else {}
        if sizes.get(TEXT_VECTOR) != dim:
            raise StoreError(
                f"collection {self.collection!r} at {self.location} has vectors {sizes}, "
                f"expected named vector {TEXT_VECTOR!r} of size {dim}: use another S2R_COLLECTION"
            )
        # A server cannot add a named vector to a collection: search and store without it.
        self._lacking = set(SPARSE_NAMES) - set(config.sparse_vectors or {})
        if self._lacking:
            log.warning("collection %r at %s has no sparse vector(s) %s (made by an older "
                        "s2r): searching without them; ingest into a new S2R_COLLECTION to "
                        "use them", self.collection, self.location, sorted(self._lacking))

    def upsert(self, points: list[StoredPoint]) -> None:
        size = self.layout.upsert_batch
        for i in range(0, len(points), size):
            batch = [
                qm.PointStruct(
                    id=p.chunk.id,
                    vector={name: _vector(v) for name, v in p.vectors.items()
                            if name not in self._lacking},
                    payload=p.chunk.payload(),
                )
                for p in points[i : i + size]
            ]
            self._call(self.client.upsert, self.collection, points=batch, wait=True)

    def _count(self, selector: qm.Filter | None) -> int:
        return self._call(self.client.count, self.collection, count_filter=selector,
                          exact=True).count

    def count(self, source: str | None = None, doc_hash: str | None = None) -> int:
        return self._count(_filter(source=source, doc_hash=doc_hash))

    def delete_source(self, source: str, keep_doc_hash: str | None = None) -> int:
        selector = _filter(source=source, not_doc_hash=keep_doc_hash)
        n = self._count(selector)
        if n:
            self._call(self.client.delete, self.collection,
                       points_selector=qm.FilterSelector(filter=selector), wait=True)
        return n

    def _query(self, **request: Any) -> list[Hit]:
        result = self._call(self.client.query_points, self.collection, with_payload=True,
                            consistency=self._consistency, **request)
        return [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in result.points]

    def search(self, vector: np.ndarray, using: str = TEXT_VECTOR, top_k: int = 10,
               kind: str | None = None) -> list[Hit]:
        return self._query(query=_vector(vector), using=using, limit=top_k,
                           query_filter=_filter(kind=kind), search_params=self._params)

    def search_fused(self, dense: np.ndarray, sparse: SparseVector, top_k: int = 10,
                     kind: str | None = None, depth: int = 50) -> list[Hit]:
        return self.search_legs(text_legs(dense, sparse), top_k, kind, depth)

    def search_legs(self, legs: list[QueryLeg], top_k: int = 10, kind: str | None = None,
                    depth: int = 50, fusion: str = "rrf") -> list[Hit]:
        selector = _filter(kind=kind)
        kept = [leg for leg in legs
                if not leg.sparse or (leg.vector and leg.using not in self._lacking)]
        if not kept:  # e.g. only sparse legs, and a query without a single term
            return []
        prefetches = [qm.Prefetch(query=_vector(leg.vector), using=leg.using, limit=depth,
                                  filter=selector, params=None if leg.sparse else self._params)
                      for leg in kept]
        fused = qm.FusionQuery(fusion=qm.Fusion.DBSF) if fusion == "dbsf" else \
            qm.RrfQuery(rrf=qm.Rrf(k=RRF_K, weights=[leg.weight for leg in kept]))
        return self._query(prefetch=prefetches, limit=top_k, query=fused)

    def sources(self, limit: int = 100_000) -> dict[str, int]:
        hits = self._call(self.client.facet, self.collection, key="source", limit=limit,
                          exact=True).hits
        return {str(h.value): int(h.count) for h in hits}

    def stats(self) -> StoreStats:
        return StoreStats(
            points=self.count(),
            text_chunks=self._count(_filter(kind="text")),
            audio_chunks=self._count(_filter(kind="audio")),
            sources=len(self.sources()),
            location=f"{self.location} / {self.collection}",
        )

    def texts(self, batch: int = 1000) -> Iterator[str]:
        offset = None
        while True:
            records, offset = self._call(self.client.scroll, self.collection, limit=batch,
                                         offset=offset, with_payload=["text"],
                                         with_vectors=False)
            yield from (str((r.payload or {}).get("text") or "") for r in records)
            if offset is None:
                return

    def finish_batch(self) -> None:
        """The server indexes in the background; nothing to do."""

    def close(self) -> None:
        self.client.close()


def _reason(exc: Exception) -> str:
    """The useful part of a client error: the status line or the transport error."""
    if isinstance(exc, UnexpectedResponse):
        return f"HTTP {exc.status_code}"
    if isinstance(exc, ResponseHandlingException):
        exc = exc.source
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
