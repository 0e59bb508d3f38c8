"""The settings that shape an index are recorded with the collection, and opening it with
other values is a clear error instead of a search that quietly finds less."""

import pytest

from assistant.retrieval.store import StoreError, open_store
from assistant.retrieval.store.server import ServerStore
from assistant.settings import Settings

DIM, MODEL = 4, "test-embedder"


def assert_refused_with_other_shapes(reopen, settings):
    reopen(settings)  # the same values: it opens
    with pytest.raises(StoreError, match=r"made with chunk_tokens=200.*now they are "
                                         r"chunk_tokens=120.*ingest again into a new collection"):
        reopen(settings.replace(chunk_tokens=120))
    with pytest.raises(StoreError, match=r"sound_keys=True.*sound_keys=False"):
        reopen(settings.replace(sound_keys=False))
    reopen(settings.replace(collection="short", chunk_tokens=120))  # another may differ


def test_the_embedded_store_refuses_other_chunking_and_legs(tmp_path):
    settings = Settings.load(data_dir=tmp_path)
    open_store(settings, DIM, MODEL).close()
    assert_refused_with_other_shapes(lambda s: open_store(s, DIM, MODEL).close(), settings)


def test_a_qdrant_collection_refuses_other_chunking_and_legs(tmp_path):
    settings = Settings.load(data_dir=tmp_path, qdrant_url=":memory:")
    client = open_store(settings, DIM, MODEL).client  # the same in-memory Qdrant, reopened

    def reopen(s: Settings) -> ServerStore:
        return ServerStore(client, s.collection, DIM, ":memory:",
                           shape={"embedder": MODEL, **s.index_shape})

    assert_refused_with_other_shapes(reopen, settings)


def test_a_collection_from_before_the_check_takes_the_current_shape(tmp_path):
    import json

    settings = Settings.load(data_dir=tmp_path)
    open_store(settings, DIM, MODEL).close()
    meta_path = next((tmp_path / "qdrant").rglob("s2r-collection.json"))
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({k: v for k, v in meta.items() if k != "shape"}))
    open_store(settings, DIM, MODEL).close()  # an older collection: nothing to compare yet
    assert json.loads(meta_path.read_text())["shape"]["chunk_tokens"] == 200
    with pytest.raises(StoreError, match="chunk_tokens"):
        open_store(settings.replace(chunk_tokens=100), DIM, MODEL)
