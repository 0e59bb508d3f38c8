"""Ingest pipeline on real files and models: idempotence, replacement, bad input isolation."""

import shutil

import numpy as np
import pytest

from assistant.index.ingest import Ingestor
from assistant.retrieval.store.base import StoreError
from assistant.speech.audio import write_wav
from tests.conftest import ROOT, silence
from tests.pdfs import write_encrypted_pdf

pytestmark = pytest.mark.slow


def copy_samples(tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "samples" / "docs", docs)
    return docs


def stored_texts(runtime, source):
    hits = runtime.store.search(runtime.embedder.embed_one("anything"), top_k=100)
    return sorted(h.payload["text"] for h in hits if h.payload["source"] == source)


def test_reingest_adds_nothing_and_changed_file_replaces_its_chunks(runtime, tmp_path):
    docs = copy_samples(tmp_path)
    first = Ingestor(runtime).ingest_paths([str(docs)], progress=False)
    assert first.ok and len(first.ingested) == 3 and first.chunks >= 3
    total = runtime.store.count()
    assert total == first.chunks

    again = Ingestor(runtime).ingest_paths([str(docs)], progress=False)
    assert again.ok and again.ingested == [] and len(again.unchanged) == 3
    assert runtime.store.count() == total

    volcano = docs / "volcanoes.txt"
    source = str(volcano)
    old_chunks = runtime.store.count(source=source)
    volcano.write_text("Volcanoes were rewritten. Only this new text should remain stored.")
    changed = Ingestor(runtime).ingest_paths([str(docs)], progress=False)
    assert changed.ingested == [source] and len(changed.unchanged) == 2
    assert stored_texts(runtime, source) == [
        "Volcanoes were rewritten. Only this new text should remain stored."]
    assert runtime.store.count() == total - old_chunks + 1


def test_bad_files_are_reported_and_the_rest_is_ingested(runtime, tmp_path, speak):
    docs = copy_samples(tmp_path)
    Ingestor(runtime).ingest_paths([str(docs / "volcanoes.txt")], progress=False)
    before = runtime.store.count(source=str(docs / "volcanoes.txt"))

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (bad / "zero.wav").write_bytes(b"")
    (bad / "corrupt.mp3").write_bytes(b"ID3" + bytes(range(256)) * 20)
    write_wav(bad / "silent.wav", silence(2.0))
    write_encrypted_pdf(bad / "locked.pdf", ["Secret plans."])
    (bad / "photo.png").write_bytes(b"\x89PNG")  # unsupported: skipped, not failed
    write_wav(bad / "good.wav", np.concatenate([silence(0.3), speak("Bees dance to share "
                                                                     "where flowers are."),
                                                silence(0.3)]))
    # the stored volcano source now turns unreadable: its old chunks must survive
    (docs / "volcanoes.txt").write_bytes(b"\xff\xfe broken")

    report = Ingestor(runtime).ingest_paths(
        [str(docs), str(bad), str(tmp_path / "missing.md")], progress=False)
    reasons = dict(report.failed)
    assert not report.ok
    assert set(reasons) == {str(bad / n) for n in ("latin1.txt", "zero.wav", "corrupt.mp3",
                                                   "silent.wav", "locked.pdf")} | {
        str(docs / "volcanoes.txt"), str(tmp_path / "missing.md")}
    assert "not valid UTF-8" in reasons[str(bad / "latin1.txt")]
    assert "no speech found" in reasons[str(bad / "silent.wav")]
    assert "encrypted PDF" in reasons[str(bad / "locked.pdf")]
    assert "no such file" in reasons[str(tmp_path / "missing.md")]
    assert all(src in reason for src, reason in reasons.items())  # each names its file
    assert report.skipped == [str(bad / "photo.png")]
    assert sorted(report.ingested) == sorted([str(docs / "honeybees.md"),
                                              str(docs / "transistor.html"), str(bad / "good.wav")])
    assert runtime.store.count(source=str(docs / "volcanoes.txt")) == before  # nothing lost


def test_spoken_corpus_chunks_have_spans_and_transcripts(runtime, tmp_path, speak):
    parts = [speak("The museum opens at nine in the morning."),
             speak("Tickets for children are free on Sundays.")]
    audio = np.concatenate([silence(0.5), parts[0], silence(1.0), parts[1], silence(0.5)])
    path = write_wav(tmp_path / "tour.wav", audio)
    rt = runtime.with_settings(audio_chunk_max_s=3.0)  # one chunk per utterance here
    report = Ingestor(rt).ingest_paths([str(path)], progress=False)
    assert report.ok and report.chunks == 2
    hits = rt.store.search(rt.embedder.embed_one("free tickets for kids"), top_k=2)
    top = hits[0].to_json()
    assert top["kind"] == "audio" and top["source"] == str(path) and top["title"] == "tour"
    assert "tickets" in top["text"].lower()
    second_start = 0.5 + parts[0].size / 16000 + 1.0
    assert top["start"] < second_start < top["end"] + 0.5
    assert top["end"] <= audio.size / 16000 + 1e-6
    rt.close()


def test_without_transcripts_audio_chunks_have_no_text_vector(runtime, tmp_path, speak):
    path = write_wav(tmp_path / "memo.wav", np.concatenate([speak("Buy milk."), silence(0.5)]))
    rt = runtime.with_settings(transcribe_audio=False)
    report = Ingestor(rt).ingest_paths([str(path)], progress=False)
    assert report.ok and report.chunks == 1
    assert rt.store.stats().audio_chunks == 1
    assert rt.store.search(rt.embedder.embed_one("milk"), top_k=5) == []  # no text vector
    rt.close()


def test_in_memory_documents_are_idempotent_too(runtime):
    from connectors import TextDocument

    docs = [TextDocument(f"mem:{i}", f"Doc {i}", f"Document number {i} talks about topic {i}.")
            for i in range(5)]
    first = Ingestor(runtime).ingest_documents(docs, progress=False)
    assert first.ok and len(first.ingested) == 5 and runtime.store.count() == 5
    docs[2] = TextDocument("mem:2", "Doc 2", "A rewritten second document.")
    again = Ingestor(runtime).ingest_documents(docs, progress=False)
    assert again.ingested == ["mem:2"] and len(again.unchanged) == 4
    assert runtime.store.count() == 5


def test_char_grams_off_stores_no_4gram_vectors_and_still_finds_by_words(runtime, tmp_path):
    """``Tuning.char_grams=False`` (a large collection saving the 4-gram postings): chunks get
    no ``chars`` vector and search runs on the word legs; the collection then refuses to be
    opened with the leg on, and another collection has it."""
    from assistant.retrieval.retriever import Retriever
    from assistant.retrieval.store.base import QueryLeg

    docs = copy_samples(tmp_path)
    plain = runtime.with_settings(char_grams=False)
    assert Ingestor(plain).ingest_paths([str(docs)], progress=False).ok
    grams = plain.char_grams.query(["volcano"])
    assert plain.store.search_legs([QueryLeg("chars", grams)]) == []
    assert "volcano" in Retriever(plain).search_text("volcano", 1).hits[0].payload["source"]
    plain.close()
    with pytest.raises(StoreError, match="made with char_grams=False"):
        Ingestor(runtime).ingest_paths([str(docs)], progress=False)
    other = runtime.with_settings(collection="with_grams")
    assert len(Ingestor(other).ingest_paths([str(docs)], progress=False).ingested) == 3
    assert other.store.search_legs([QueryLeg("chars", grams)])
    other.close()


def test_sound_keys_store_a_sound_vector_and_shape_the_collection(runtime, tmp_path):
    """``Tuning.sound_keys``: every chunk gets a ``sound`` vector, so a name heard as a word
    that sounds alike finds it; the collection then refuses to be opened with the leg off."""
    from assistant.retrieval.store.base import QueryLeg

    docs = copy_samples(tmp_path)
    sounding = runtime.with_settings(sound_keys=True)
    assert Ingestor(sounding).ingest_paths([str(docs)], progress=False).ok
    keys = sounding.sound_keys.query(["volkeynose"])  # "volcanoes" misspelt by ear
    hits = sounding.store.search_legs([QueryLeg("sound", keys)], top_k=1)
    assert "volcano" in hits[0].payload["source"]
    sounding.close()
    with pytest.raises(StoreError, match="made with sound_keys=True.*now they are sound_keys="
                                         "False.*ingest again into a new collection"):
        Ingestor(runtime.with_settings(sound_keys=False)).ingest_paths([str(docs)],
                                                                       progress=False)
    plain = runtime.with_settings(sound_keys=False, collection="without_sound")
    assert len(Ingestor(plain).ingest_paths([str(docs)], progress=False).ingested) == 3
    assert plain.store.search_legs([QueryLeg("sound", keys)]) == []
    plain.close()
