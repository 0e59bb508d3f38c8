"""The Qdrant collection of text and audio chunks, behind one small interface.

Two backends speak it: the embedded default (Qdrant's own engine in-process via qdrant-edge,
persisted under the data directory) and any Qdrant server or cluster via qdrant-client
(``S2R_QDRANT_URL``; ``:memory:`` gives qdrant-client's local mode).  The rest of s2r only sees
``Store``.
"""

from __future__ import annotations

from assistant.retrieval.store.base import Hit, Store, StoredPoint, StoreError, StoreStats
from assistant.retrieval.store.layout import Layout
from assistant.settings import Settings


def open_store(settings: Settings, dim: int, model_id: str) -> Store:
    """Open (creating if needed) the configured collection for ``dim``-wide vectors of the
    embedder ``model_id``; it must have been made with this process's index shape."""
    layout = Layout.from_settings(settings)
    shape = {"embedder": model_id, **settings.index_shape}
    if settings.uses_embedded_store:
        from assistant.retrieval.store.edge import EdgeStore

        return EdgeStore(settings.data_dir / "qdrant" / settings.collection, dim, model_id,
                         layout, settings.min_free_mb, shape)
    from assistant.retrieval.store.server import ServerStore

    return ServerStore.connect(settings.qdrant_url, settings.qdrant_api_key or None,
                               settings.collection, dim, layout, shape)


__all__ = ["Hit", "Layout", "Store", "StoreError", "StoreStats", "StoredPoint", "open_store"]
