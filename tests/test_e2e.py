"""End to end on real speech: spoken questions find their documents and recording spans,
and the CLI keeps its JSON and exit-code contracts."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from assistant.index.ingest import Ingestor
from assistant.retrieval.retriever import Retriever
from assistant.retrieval.store.base import (
    CHARS_VECTOR,
    SOUND_VECTOR,
    SPARSE_VECTOR,
    SPEECH_VECTOR,
    TEXT_VECTOR,
)
from assistant.speech.audio import write_wav
from assistant.speech.integrated import Hypothesis, Recognition, nbest_weights, query_vector
from tests.conftest import ROOT, sharing_store, silence

pytestmark = pytest.mark.slow

QUESTIONS = [  # (spoken question, voice, article that answers it)
    ("Who developed the theory of relativity?", "en-us", "Albert Einstein"),
    ("What is the highest mountain on Earth?", "en-us", "Mount Everest"),
    ("Which river carries the most water in the world?", "en-gb", "Amazon River"),
    ("Which Italian painter of the Renaissance was also an engineer?", "en-gb",
     "Leonardo da Vinci"),
    ("Name a group of antibiotics made from mold.", "en-us", "Penicillin"),
]


@pytest.fixture(scope="module")
def wiki_docs(wiki, tmp_path_factory):
    """60 Wikipedia summaries as text files: the 5 answers plus 55 spread over the corpus."""
    targets = {q[2] for q in QUESTIONS}
    chosen = [a for a in wiki if a["title"] in targets]
    chosen += [a for a in wiki[::180] if a["title"] not in targets][:55]
    assert len(chosen) == 60
    folder = tmp_path_factory.mktemp("wiki")
    for article in chosen:
        name = article["title"].replace("/", "_") + ".txt"
        (folder / name).write_text(article["extract"])
    return folder


def test_spoken_questions_find_their_document_in_top_3(runtime, wiki_docs, speak):
    report = Ingestor(runtime).ingest_paths([str(wiki_docs)], progress=False)
    assert report.ok and len(report.ingested) == 60
    retriever = Retriever(runtime)
    e2e_found = 0
    for question, voice, title in QUESTIONS:
        audio = speak(question, voice=voice)
        for search in (retriever.search_audio_cascade, retriever.search_audio,  # and S2R
                       retriever.search_audio_hybrid):
            result = search(audio, top_k=3)
            titles = [h.payload["title"] for h in result.hits]
            assert title in titles, (search.__name__, question, result.transcript, titles)
            assert result.transcript  # something was heard
        result = retriever.search_audio_e2e(audio, top_k=3)  # spelled, never decoded
        assert result.transcript
        e2e_found += title in [h.payload["title"] for h in result.hits]
    assert e2e_found >= 3
    # S2R_SPOKEN_RETRIEVER picks the path every spoken question takes (hybrid spells an
    # unsure decode's question only: trust none here)
    for path, steps in (("hybrid", {"e2e", "asr"}), ("e2e", {"e2e"}), ("s2r", {"asr"})):
        result = Retriever(sharing_store(runtime, spoken_retriever=path,
                                         hybrid_trust_logprob=0.0)).search_spoken(audio)
        assert steps == {"e2e", "asr"} & set(result.timings_ms) and result.hits


def test_hybrid_puts_the_spelling_only_in_the_legs_a_misspelling_helps(runtime):
    heard = [Hypothesis("who was johnny cash", -1.0), Hypothesis("who was jonny cash", -2.0)]
    spelling = "hu woz johny kashe"
    retriever = Retriever(runtime)
    legs = {leg.using: leg.vector
            for leg in retriever.hybrid_legs(Recognition(heard, None, 4.0), spelling, 0.6)}
    assert set(legs) == {TEXT_VECTOR, SPARSE_VECTOR, CHARS_VECTOR, SOUND_VECTOR, SPEECH_VECTOR}
    # MiniLM and BM25: the n-best list alone, exactly as s2r searches it
    texts, weights = [h.text for h in heard], nbest_weights(heard)
    # each reading is embedded once, in one batch with the spelling (int8 activations make a
    # vector depend a little on its batch on some CPUs): the n-best's rows of that batch
    batch = runtime.embedder.embed([*texts, spelling])
    assert np.allclose(legs[TEXT_VECTOR],
                       query_vector(texts, weights, lambda _: batch[: len(texts)]))
    assert legs[SPARSE_VECTOR] == runtime.lexical.query(texts, weights)
    # 4-grams and speech: the spelling too, with 0.6 of the weight
    spelled = set(runtime.char_grams.query([spelling]).indices)
    assert spelled - set(runtime.char_grams.query(texts).indices) <= \
        set(legs[CHARS_VECTOR].indices)
    assert float(legs[SPEECH_VECTOR] @ legs[TEXT_VECTOR]) < 0.999
    # nothing decoded: the spelling is all there is
    alone = retriever.hybrid_legs(Recognition([], None, 4.0), spelling, 0.6)
    assert {leg.using for leg in alone} == {CHARS_VECTOR, SOUND_VECTOR, SPEECH_VECTOR}


def test_spoken_question_finds_the_span_in_a_recording(runtime, tmp_path, speak):
    facts = ["The lighthouse was built in eighteen ninety to warn ships about the reef.",
             "Our bakery sells sourdough bread every morning except Mondays.",
             "The chess club meets on Thursday evenings in the library basement."]
    parts = [speak(f, voice="en-gb") for f in facts]
    audio = np.concatenate([silence(0.4), parts[0], silence(1.2), parts[1], silence(1.2),
                            parts[2], silence(0.4)])
    write_wav(tmp_path / "community_radio.wav", audio)
    rt = runtime.with_settings(audio_chunk_max_s=6.0)
    assert Ingestor(rt).ingest_paths([str(tmp_path / "community_radio.wav")], progress=False).ok
    question = speak("When does the chess club meet?")
    hit = Retriever(rt).search_audio_cascade(question, top_k=1).hits[0].to_json()
    chess_start = (0.4 + parts[0].size / 16000 + 1.2 + parts[1].size / 16000 + 1.2)
    assert hit["kind"] == "audio" and hit["source"].endswith("community_radio.wav")
    assert hit["start"] <= chess_start + 0.3 and hit["end"] >= chess_start + 1.0
    assert "club meets on thursday" in hit["text"].lower()  # ASR may hear "chess" as "chest"
    rt.close()


def run_cli(*args, env):
    return subprocess.run([sys.executable, "-m", "assistant", *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300)


def test_cli_ingest_search_stats_delete_contracts(tmp_path, cache_dir):
    env = os.environ | {"S2R_DATA_DIR": str(tmp_path / "data"), "S2R_CACHE_DIR": str(cache_dir)}
    ok = run_cli("ingest", "samples/docs", "samples/speech", env=env)
    assert ok.returncode == 0, ok.stderr
    assert "ingested 5 source(s)" in ok.stdout

    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe\x00\x00")
    failed = run_cli("ingest", "samples/docs", str(tmp_path / "bad.txt"), env=env)
    assert failed.returncode == 1
    assert "bad.txt" in failed.stderr and "1 file(s) failed" in failed.stderr
    assert "unchanged 3" in failed.stdout

    spoken = run_cli("search", "--audio", "samples/question.flac", "--top-k", "2", "--json",
                     env=env)
    assert spoken.returncode == 0, spoken.stderr
    hits = json.loads(spoken.stdout)
    assert len(hits) == 2
    for hit in hits:
        assert {"id", "score", "kind", "source", "title", "text", "start", "end"} <= set(hit)
    assert hits[0]["source"] == "samples/speech/coffee_history.flac"
    assert hits[0]["kind"] == "audio" and hits[0]["start"] is not None
    assert hits[0]["score"] >= hits[1]["score"]

    typed = run_cli("search", "who built the first transistor", "--json", "--kind", "text",
                    env=env)
    assert json.loads(typed.stdout)[0]["source"] == "samples/docs/transistor.html"
    assert json.loads(typed.stdout)[0]["start"] is None

    stats = json.loads(run_cli("stats", "--json", env=env).stdout)
    assert stats["sources"] == 5 and stats["audio_chunks"] >= 2

    deleted = run_cli("delete", "samples/docs/transistor.html", env=env)
    assert deleted.returncode == 0 and "deleted" in deleted.stdout
    assert run_cli("delete", "samples/docs/transistor.html", env=env).returncode == 1
    assert json.loads(run_cli("stats", "--json", env=env).stdout)["sources"] == 4

    bad_audio = run_cli("search", "--audio", "samples/docs/volcanoes.txt", env=env)
    assert bad_audio.returncode == 1 and "volcanoes.txt" in bad_audio.stderr
    assert "Traceback" not in bad_audio.stderr


def test_audio_chunks_get_speech_vectors_that_e2e_finds(runtime, tmp_path, speak):
    """Without transcripts, a recording's chunks hold only the e2e speech vector (the head's
    spelling, embedded), and a spoken question finds them through it."""
    facts = ["The ferry to the island leaves every hour from the north pier.",
             "Volunteers repaint the old town hall each spring."]
    audio = np.concatenate([silence(0.3), speak(facts[0]), silence(1.2), speak(facts[1]),
                            silence(0.3)])
    write_wav(tmp_path / "announcements.wav", audio)
    rt = runtime.with_settings(audio_chunk_max_s=4.0, transcribe_audio=False)
    assert Ingestor(rt).ingest_paths([str(tmp_path / "announcements.wav")], progress=False).ok
    assert rt.store.count() == 2
    question = speak("When does the ferry to the island leave?", voice="en-gb")
    hits = Retriever(rt).search_audio_e2e(question, top_k=2).hits
    assert hits and hits[0].payload["start"] < 1.0  # the first fact's span
    assert Retriever(rt).search_audio(question, top_k=2).hits == []  # no transcripts to match
    rt.close()
