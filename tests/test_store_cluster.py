"""Server and cluster collection settings, checked on the wire with the real qdrant-client.

The requests go to ``tests/fake_qdrant.py`` (no Qdrant server can run here); what is asserted
is what a real three-node cluster would receive.
"""

import logging

import numpy as np
import pytest

from assistant.retrieval.sparse import SparseVector
from assistant.retrieval.store import Layout, open_store
from assistant.retrieval.store.base import INDEXED_FIELDS, StoreError
from assistant.retrieval.store.server import ServerStore
from assistant.settings import Settings, SettingsError
from tests.fake_qdrant import FakeQdrant
from tests.test_store import DIM, point, unit

CLUSTER = Layout(shards=6, write_consistency=2, read_consistency="majority", on_disk=True,
                 hnsw_m=32, hnsw_ef_construct=200, quantization="int8", hnsw_ef=96,
                 retries=2, upsert_batch=3)


@pytest.fixture
def qdrant():
    server = FakeQdrant(peers=3)
    yield server
    server.close()


def connect(qdrant: FakeQdrant, layout: Layout = CLUSTER) -> ServerStore:
    return ServerStore.connect(qdrant.url, None, "docs", DIM, layout)


def test_collection_is_created_with_the_cluster_layout(qdrant):
    connect(qdrant)
    [create] = qdrant.sent("PUT", "/collections/docs")
    body = create.body
    assert (body["shard_number"], body["replication_factor"],
            body["write_consistency_factor"]) == (6, 2, 2)  # 2 replicas: chosen for 3 peers
    assert body["on_disk_payload"] is True
    assert all(v == {"size": DIM, "distance": "Cosine", "on_disk": True}
               for v in body["vectors"].values()) and set(body["vectors"]) == {"text", "speech"}
    assert body["sparse_vectors"] == {name: {"index": {"on_disk": True}, "modifier": "idf"}
                                      for name in ("bm25", "chars", "sound")}
    assert body["hnsw_config"] == {"m": 32, "ef_construct": 200}  # the graph stays in RAM
    assert body["quantization_config"] == {
        "scalar": {"type": "int8", "quantile": 0.99, "always_ram": True}}
    indexed = {r.body["field_name"]: r.body["field_schema"]
               for r in qdrant.sent("PUT", "/collections/docs/index")}
    assert indexed == dict.fromkeys(INDEXED_FIELDS, "keyword")
    assert {"source", "kind", "title"} <= set(indexed)


def test_single_node_defaults_and_explicit_replicas(qdrant):
    qdrant.peers = 1
    connect(qdrant, Layout())
    body = qdrant.sent("PUT", "/collections/docs")[0].body
    assert body["replication_factor"] == 1 and "shard_number" not in body
    assert "quantization_config" not in body and body["on_disk_payload"] is False


def test_one_replica_on_a_cluster_is_refused(qdrant):
    with pytest.raises(StoreError, match="S2R_QDRANT_REPLICAS=1 on a 3-node cluster"):
        connect(qdrant, Layout(replicas=1))
    assert not qdrant.sent("PUT", "/collections/docs")  # nothing half-created


def test_queries_carry_read_consistency_and_rescoring(qdrant):
    store = connect(qdrant)
    store.search(unit(1), kind="audio")
    store.search_fused(unit(1), SparseVector((3, 7), (1.0, 0.5)))
    plain, fused = qdrant.sent("POST", "/points/query")
    assert plain.query["consistency"] == ["majority"] == fused.query["consistency"]
    assert plain.body["params"] == {"hnsw_ef": 96, "quantization": {
        "rescore": True, "oversampling": 2.0}}
    assert plain.body["filter"]["must"][0]["key"] == "kind"
    assert fused.body["query"]["rrf"]["k"] == 60 and len(fused.body["prefetch"]) == 2


def test_upserts_are_batched_and_retried(qdrant):
    store = connect(qdrant)
    qdrant.failures["/collections/docs/points"] = [503, 0]  # overloaded, then a dropped socket
    points = [point("a.txt", i) for i in range(7)]
    store.upsert(points)
    sent = qdrant.sent("PUT", "/collections/docs/points")
    answered = sent[2:]  # the first two tries of batch 1 failed
    assert [len(r.body["points"]) for r in answered] == [3, 3, 1]
    assert sent[0].body == sent[1].body == sent[2].body  # the same ids: a retry cannot duplicate
    assert {p["id"] for r in answered for p in r.body["points"]} == {p.chunk.id for p in points}
    assert all(r.query["wait"] == ["true"] for r in sent)


def test_retries_are_bounded_and_permanent_errors_are_not_retried(qdrant, caplog):
    store = connect(qdrant)
    qdrant.failures["/points/query"] = [503] * 10
    with caplog.at_level(logging.WARNING, logger="assistant.retrieval.store.server"), \
            pytest.raises(StoreError, match=r"did not answer query_points after 3 tries "
                                            r"\(HTTP 503"):
        store.search(unit(1))
    assert len(qdrant.sent("POST", "/points/query")) == 3  # three tries, then it gave up
    assert len(qdrant.failures["/points/query"]) == 7
    waits = [r.getMessage().rsplit(" in ", 1)[1] for r in caplog.records
             if r.name == "assistant.retrieval.store.server"]
    assert waits == ["0.5 s", "1.0 s"]  # backoff between the tries, bounded: no hang
    qdrant.failures["/points/query"] = [400]
    before = len(qdrant.requests)
    with pytest.raises(StoreError, match="refused query_points"):
        store.search(unit(1))
    assert len(qdrant.requests) == before + 1


def test_settings_reach_the_server_through_open_store(qdrant, monkeypatch, tmp_path):
    env = {"S2R_QDRANT_URL": qdrant.url, "S2R_COLLECTION": "docs", "S2R_QDRANT_SHARDS": "3",
           "S2R_QDRANT_REPLICAS": "3", "S2R_QDRANT_QUANTIZATION": "int8",
           "S2R_QDRANT_ON_DISK": "true", "S2R_QDRANT_READ_CONSISTENCY": "quorum"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    store = open_store(Settings.load(data_dir=tmp_path), DIM, "test-model")
    body = qdrant.sent("PUT", "/collections/docs")[0].body
    assert (body["shard_number"], body["replication_factor"]) == (3, 3)
    assert body["quantization_config"]["scalar"]["type"] == "int8"
    store.search(np.ones(DIM, np.float32))
    assert qdrant.sent("POST", "/points/query")[0].query["consistency"] == ["quorum"]


@pytest.mark.parametrize("bad", [{"qdrant_quantization": "pq"},
                                 {"qdrant_read_consistency": "most"},
                                 {"qdrant_upsert_batch": 0}, {"qdrant_replicas": -1}])
def test_bad_layout_settings_are_named(bad):
    with pytest.raises(SettingsError, match="qdrant_"):
        Settings.load(**bad)
