"""The store contract, run against both backends: embedded qdrant-edge and qdrant-client."""

import numpy as np
import pytest
from qdrant_client import QdrantClient

from assistant.retrieval.chunks import Chunk
from assistant.retrieval.store.base import StoredPoint, StoreError
from assistant.retrieval.store.edge import EdgeStore
from assistant.retrieval.store.layout import Layout
from assistant.retrieval.store.server import ServerStore

DIM = 8


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def point(source: str, index: int, doc_hash: str = "h1", kind: str = "text",
          seed: int | None = None, speech: bool = False) -> StoredPoint:
    span = (index * 2.0, index * 2.0 + 1.5) if kind == "audio" else (None, None)
    chunk = Chunk(kind, source, f"title {source}", f"text {source} {index}", index, doc_hash,
                  *span)
    vec = unit(seed if seed is not None else hash((source, index)) % 10_000)
    vectors = {"text": vec} | ({"speech": vec} if speech else {})
    return StoredPoint(chunk, vectors)


def upsert_texts(store, texts: list[str], **encoders) -> None:
    """Chunks d0, d1 … of ``texts``, each with a random ``text`` vector and the sparse vector
    of every named encoder (e.g. ``chars=CharGramEncoder()``)."""
    store.upsert([StoredPoint(Chunk("text", f"d{i}", f"t{i}", text, 0, "h"),
                              {"text": unit(i)} | {name: encoder.document(text)
                                                   for name, encoder in encoders.items()})
                  for i, text in enumerate(texts)])


@pytest.fixture(params=["edge", "edge-int8-on-disk", "server"])
def store(request, tmp_path):
    if request.param == "edge":
        s = EdgeStore(tmp_path / "col", DIM, "test-model")
    elif request.param == "edge-int8-on-disk":  # the server-scale layout, embedded
        layout = Layout(on_disk=True, quantization="int8", hnsw_m=8, hnsw_ef_construct=50)
        s = EdgeStore(tmp_path / "col", DIM, "test-model", layout)
    else:
        s = ServerStore(QdrantClient(location=":memory:"), "col", DIM, ":memory:")
    yield s
    s.close()


def test_upsert_search_and_payload(store):
    points = [point("a.txt", i, seed=i) for i in range(5)] + [point("talk.wav", 0, kind="audio",
                                                                     seed=99, speech=True)]
    store.upsert(points)
    hits = store.search(unit(3), top_k=3)
    assert hits[0].id == points[3].chunk.id and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert hits[0].to_json() == {"id": points[3].chunk.id, "score": pytest.approx(1.0, abs=1e-4),
                                 "kind": "text", "source": "a.txt", "title": "title a.txt",
                                 "text": "text a.txt 3", "start": None, "end": None}
    audio = store.search(unit(99), top_k=1, kind="audio")[0].to_json()
    assert (audio["kind"], audio["start"], audio["end"]) == ("audio", 0.0, 1.5)
    assert store.search(unit(99), using="speech", top_k=5)[0].id == points[-1].chunk.id
    assert len(store.search(unit(99), using="speech", top_k=5)) == 1  # only one speech vector


def test_idempotent_upsert_and_counts(store):
    points = [point("a.txt", i) for i in range(4)]
    store.upsert(points)
    store.upsert(points)
    assert store.count() == 4
    assert store.count(source="a.txt", doc_hash="h1") == 4
    assert store.count(source="a.txt", doc_hash="other") == 0
    assert store.sources() == {"a.txt": 4}


def test_texts_pages_through_every_chunk(store):
    points = [point("a.txt", i) for i in range(7)] + [point("talk.wav", 0, kind="audio")]
    store.upsert(points)
    assert sorted(store.texts(batch=3)) == sorted(p.chunk.text for p in points)


def test_delete_source_keeps_other_sources_and_current_version(store):
    store.upsert([point("a.txt", i, "old") for i in range(3)] + [point("b.txt", 0)])
    store.upsert([point("a.txt", i, "new", seed=100 + i) for i in range(2)])
    # chunks 0 and 1 kept their content, hence their ids: the upsert replaced them in place
    assert store.count(source="a.txt") == 3
    assert store.delete_source("a.txt", keep_doc_hash="new") == 1
    assert store.count(source="a.txt") == 2 and store.count(source="b.txt") == 1
    assert store.delete_source("a.txt") == 2
    assert store.delete_source("a.txt") == 0
    stats = store.stats()
    assert (stats.points, stats.text_chunks, stats.audio_chunks, stats.sources) == (1, 1, 0, 1)


def test_edge_store_persists_and_rejects_other_models(tmp_path):
    store = EdgeStore(tmp_path / "col", DIM, "test-model")
    store.upsert([point("a.txt", i) for i in range(3)])
    store.finish_batch()
    store.close()
    reopened = EdgeStore(tmp_path / "col", DIM, "test-model")
    assert reopened.count() == 3
    reopened.close()
    with pytest.raises(StoreError, match="holds vectors of test-model"):
        EdgeStore(tmp_path / "col", 16, "bigger-model")


def test_edge_store_in_use_by_another_handle_is_a_clear_error(tmp_path):
    first = EdgeStore(tmp_path / "col", DIM, "test-model")
    first.close()
    first = EdgeStore(tmp_path / "col", DIM, "test-model")
    with pytest.raises(StoreError, match="open in another s2r process"):
        EdgeStore(tmp_path / "col", DIM, "test-model")
    first.close()


def test_server_store_rejects_wrong_vector_size():
    client = QdrantClient(location=":memory:")
    ServerStore(client, "col", DIM, ":memory:")
    with pytest.raises(StoreError, match="expected named vector 'text' of size 16"):
        ServerStore(client, "col", 16, ":memory:")


def test_unreachable_server_is_a_clear_error_after_bounded_retries():
    layout = Layout(retries=2, timeout_s=1)
    with pytest.raises(StoreError, match=r"Qdrant at http://127.0.0.1:9 did not answer "
                                         r"collection_exists after 3 tries \(ConnectError"):
        ServerStore.connect("http://127.0.0.1:9", None, "col", DIM, layout)


def test_fused_dense_and_sparse_search(store):
    from assistant.retrieval.sparse import LexicalEncoder

    lexical = LexicalEncoder()
    texts = ["the port of Mocha shipped coffee", "a quiet harbour town", "mountain goats climb"]
    points = []
    for i, text in enumerate(texts):
        chunk = Chunk("text", f"d{i}", f"t{i}", text, 0, "h")
        points.append(StoredPoint(chunk, {"text": unit(i), "bm25": lexical.document(text)}))
    store.upsert(points)
    # the dense leg points at d2, the sparse leg ("mocha") at d0: both come back, fused
    hits = store.search_fused(unit(2), lexical.query(["where is mocha"]), top_k=3)
    assert {h.payload["source"] for h in hits[:2]} == {"d0", "d2"}
    # n-best query: a term in more (and likelier) readings weighs more
    query = lexical.query(["mocha coffee", "mocha harbour"], [0.7, 0.3])
    weights = dict(zip(query.indices, query.values, strict=True))
    assert sorted(weights.values()) == pytest.approx([0.3, 0.7, 1.0])
    # without a sparse query the dense leg alone ranks
    assert store.search_fused(unit(1), lexical.query([""]), top_k=1)[0].payload["source"] == "d1"


def test_weighted_legs_over_text_speech_and_sparse_vectors(store):
    """The hybrid's fusion: any number of legs over any vector; the weights decide ties of
    rank, and a leg over ``speech`` only sees audio chunks that have that vector."""
    from assistant.retrieval.sparse import LexicalEncoder
    from assistant.retrieval.store.base import QueryLeg

    lexical = LexicalEncoder()
    texts = ["the port of Mocha shipped coffee", "a quiet harbour town", "mountain goats climb"]
    points = [StoredPoint(Chunk("text", f"d{i}", f"t{i}", text, 0, "h"),
                          {"text": unit(i), "bm25": lexical.document(text)})
              for i, text in enumerate(texts)]
    talk = Chunk("audio", "talk.wav", "talk", "", 0, "h", 0.0, 5.0)  # not transcribed
    points.append(StoredPoint(talk, {"speech": unit(7)}))
    store.upsert(points)
    dense_d2 = QueryLeg("text", unit(2), 1.0)
    sparse_d0 = QueryLeg("bm25", lexical.query(["where is mocha"]), 0.5)
    top = lambda legs: [h.payload["source"] for h in store.search_legs(legs, depth=1)]  # noqa: E731
    assert top([dense_d2, sparse_d0]) == ["d2", "d0"]  # each leg's best, by leg weight
    louder = QueryLeg("bm25", sparse_d0.vector, 2.0)
    assert top([dense_d2, louder]) == ["d0", "d2"]
    speech = store.search_legs([QueryLeg("speech", unit(7))], top_k=5)
    assert [h.payload["source"] for h in speech] == ["talk.wav"]
    empty_sparse = QueryLeg("bm25", lexical.query([""]))
    assert store.search_legs([dense_d2, empty_sparse], top_k=1)[0].payload["source"] == "d2"


def test_character_gram_leg_finds_a_misheard_name(store):
    """Words the recogniser got wrong share no BM25 term with the chunk, but most of their
    character n-grams: the ``chars`` leg still ranks the right chunk first."""
    from assistant.retrieval.sparse import CharGramEncoder, LexicalEncoder
    from assistant.retrieval.store.base import QueryLeg

    lexical, grams = LexicalEncoder(), CharGramEncoder()
    texts = ["Johnny Cash was an American singer", "the cash register of a shop",
             "Bardeen shared two Nobel prizes"]
    upsert_texts(store, texts, bm25=lexical, chars=grams)
    heard = ["who was jonny kash", "who was johnny cache"]
    assert store.search_legs([QueryLeg("chars", grams.query(heard))], top_k=1)[0] \
        .payload["source"] == "d0"
    assert store.search_legs([QueryLeg("chars", grams.query(["john bardine"]))], top_k=1)[0] \
        .payload["source"] == "d2"


def test_sound_leg_finds_a_name_misheard_as_a_word_that_sounds_alike(store):
    """"organ" for "Oregon" shares no character 4-gram with it, but its Metaphone key: the
    ``sound`` leg ranks the right chunk first where the ``chars`` leg cannot."""
    from assistant.retrieval.sparse import CharGramEncoder, SoundKeyEncoder
    from assistant.retrieval.store.base import QueryLeg

    grams, sounds = CharGramEncoder(), SoundKeyEncoder()
    texts = ["Oregon is a state of the Pacific Northwest", "the pipe organ of a church",
             "Nevada borders Oregon and California"]
    upsert_texts(store, texts, chars=grams, sound=sounds)
    heard = ["organ available to know"]  # "Oregon, Nevada, Baja" as tiny.en heard it
    by_sound = store.search_legs([QueryLeg("sound", sounds.query(heard))], top_k=1)
    assert by_sound[0].payload["source"] == "d2"  # two names by sound beat one word spelt right
    by_chars = store.search_legs([QueryLeg("chars", grams.query(heard))], top_k=1)
    assert by_chars[0].payload["source"] == "d1"


def test_edge_collection_of_schema_4_gains_the_sound_vector(tmp_path):
    """A collection made before the sound leg is brought up to date in place when opened."""
    import json

    import qdrant_edge as qe

    from assistant.retrieval.sparse import SoundKeyEncoder
    from assistant.retrieval.store.base import QueryLeg
    from assistant.retrieval.store.edge import META_FILE, _config

    path = tmp_path / "old"
    config = _config(DIM, Layout())
    old = qe.EdgeConfig(vectors=config.vectors, sparse_vectors={
        name: params for name, params in config.sparse_vectors.items() if name != "sound"})
    qe.EdgeShard.create(str(path), old).close()
    (path / META_FILE).write_text(json.dumps({"dim": DIM, "model_id": "m", "schema": 4}))
    store = EdgeStore(path, DIM, "m")
    text = "Oregon is a state"
    store.upsert([StoredPoint(Chunk("text", "d0", "t0", text, 0, "h"),
                              {"text": unit(0), "sound": SoundKeyEncoder().document(text)})])
    hits = store.search_legs([QueryLeg("sound", SoundKeyEncoder().query(["organ"]))])
    assert [h.payload["source"] for h in hits] == ["d0"]
    assert json.loads((path / META_FILE).read_text())["schema"] == 5
    store.close()


def test_server_collection_without_the_chars_vector_still_works(caplog):
    """A collection made by an older s2r has no ``chars`` vector, and a server cannot add
    one: the store warns, stores and searches without it."""
    from qdrant_client import models as qm

    from assistant.retrieval.sparse import CharGramEncoder, LexicalEncoder
    from assistant.retrieval.store.base import QueryLeg

    client = QdrantClient(location=":memory:")
    client.create_collection(
        "old", vectors_config={n: qm.VectorParams(size=DIM, distance=qm.Distance.COSINE)
                               for n in ("text", "speech")},
        sparse_vectors_config={"bm25": qm.SparseVectorParams(modifier=qm.Modifier.IDF)})
    with caplog.at_level("WARNING"):
        store = ServerStore(client, "old", DIM, ":memory:")
    assert "no sparse vector(s) ['chars', 'sound']" in caplog.text
    text = "the port of Mocha shipped coffee"
    store.upsert([StoredPoint(Chunk("text", "d0", "t0", text, 0, "h"),
                              {"text": unit(0), "bm25": LexicalEncoder().document(text),
                               "chars": CharGramEncoder().document(text)})])
    legs = [QueryLeg("text", unit(0)), QueryLeg("chars", CharGramEncoder().query(["mocha"]))]
    assert [h.payload["source"] for h in store.search_legs(legs)] == ["d0"]


@pytest.mark.parametrize("fusion", ["dbsf", "rrf"])
def test_legs_fuse_by_score_or_by_rank(store, fusion):
    """Both fusions return one list holding each leg's best; a chunk that two legs rank
    first beats one that only a single leg finds."""
    from assistant.retrieval.sparse import CharGramEncoder, LexicalEncoder
    from assistant.retrieval.store.base import QueryLeg

    lexical, grams = LexicalEncoder(), CharGramEncoder()
    texts = ["the port of Mocha shipped coffee", "a quiet harbour town", "mountain goats climb"]
    upsert_texts(store, texts, bm25=lexical, chars=grams)
    legs = [QueryLeg("text", unit(2)), QueryLeg("bm25", lexical.query(["goats"])),
            QueryLeg("chars", grams.query(["mocha"]))]
    ranked = [h.payload["source"] for h in store.search_legs(legs, top_k=3, fusion=fusion)]
    assert ranked[0] == "d2" and set(ranked) >= {"d0", "d2"}
    assert store.search_legs([QueryLeg("bm25", lexical.query(["?"]))], fusion=fusion) == []
