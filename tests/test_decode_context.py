"""The hybrid's second decode: it reads the top candidates' titles and rare words first."""

import pytest

from assistant.index.ingest import Ingestor
from assistant.retrieval.retriever import Retriever
from assistant.speech.decode_context import candidate_context
from assistant.text import normalize_words
from connectors.base import TextDocument

pytestmark = pytest.mark.slow

PARSLEY = ("Parsley", "Parsley, or garden parsley, is a species of flowering plant in the "
                      "family Apiaceae that is native to Greece, Morocco and the former "
                      "Yugoslavia.")
CUMIN = ("Cumin", "Cumin is a flowering plant in the family Apiaceae, native to the "
                  "Irano-Turanian Region.")


def test_the_context_is_titles_then_rare_words_once_each(models):
    tokenizer = models.transcriber.model.hf_tokenizer
    context = candidate_context([PARSLEY, CUMIN, PARSLEY], tokenizer)
    titles, words = context.split(". ", 1)
    assert titles == "Parsley, Cumin"
    assert "Apiaceae" in words.split() and words.split().count("Apiaceae") == 1
    assert "Yugoslavia" in words.split() and "Irano-Turanian" in words.split()
    for common in ("species", "family", "native", "plant", "former"):  # pieces < 10,000
        assert common not in words.split()
    assert len(candidate_context([PARSLEY] * 2, tokenizer, max_words=2).split(". ")[1]
               .split()) == 2
    assert candidate_context([("", "the cat sat on the mat")], tokenizer) == ""


def test_a_decode_that_has_read_the_rare_word_hears_it(adapted_models, packaged_models, speak):
    question = ("What is a species of flowering plant in the family Apiaceae that is native "
                "to Greece?")
    audio = speak(question)
    encoder_pass = adapted_models.recognizer.encode(audio)
    plain = packaged_models.recognizer.recognize(audio, encoder_pass)
    assert "apiaceae" not in normalize_words(plain.text)  # tiny.en as packaged mishears it
    context = candidate_context([PARSLEY, CUMIN], adapted_models.transcriber.model.hf_tokenizer)
    hypotheses = packaged_models.recognizer.decode_with_context(audio, encoder_pass, context)
    assert "apiaceae" in normalize_words(hypotheses[0].text)
    # the adapted decoder has learnt the name from the training speech, and (adapter v2)
    # to hear the question after such a prompt, not to go on with the prompt
    adapted = adapted_models.recognizer.recognize(audio, encoder_pass)
    assert "apiaceae" in normalize_words(adapted.text)
    assert adapted_models.recognizer.context_model is adapted_models.recognizer.model
    reread = adapted_models.recognizer.decode_with_context(audio, encoder_pass, context)
    assert normalize_words(reread[0].text) == normalize_words(question)


def ingest_plant_notes(runtime) -> None:
    docs = [TextDocument(title.lower(), title, text) for title, text in (PARSLEY, CUMIN)]
    docs += [TextDocument(f"filler-{i}", f"Filler {i}", f"A plain note number {i} about "
                          "gardens, kitchens and plants.") for i in range(8)]
    assert Ingestor(runtime).ingest_documents(docs, progress=False).ok


@pytest.mark.parametrize("nbest", ["join", "replace"])
def test_hybrid_searches_again_with_what_the_second_decode_heard(models, tmp_path, speak,
                                                                 monkeypatch, nbest):
    runtime = models.with_settings(data_dir=tmp_path / "data", hybrid_context_nbest=nbest,
                                   hybrid_trust_logprob=0.0)  # always read again
    searched, reread = [], []  # what each search read, what the second decode heard (spies:
    real_legs, real_reread = Retriever.hybrid_legs, Retriever.reread  # the real code runs)

    def hybrid_legs(self, recognition, spelling, share):
        searched.append([h.text for h in recognition.hypotheses])
        return real_legs(self, recognition, spelling, share)

    def spied_reread(self, *args):
        hypotheses = real_reread(self, *args)
        reread.extend(h.text for h in hypotheses)
        return hypotheses

    monkeypatch.setattr(Retriever, "hybrid_legs", hybrid_legs)
    monkeypatch.setattr(Retriever, "reread", spied_reread)
    try:
        ingest_plant_notes(runtime)  # its first decode is unsure: it is read again
        result = Retriever(runtime).search_audio_hybrid(
            speak("Parsley belongs to the Apiaceae family."), top_k=3)
    finally:
        runtime.close()
    assert {"asr", "asr_context", "search"} <= set(result.timings_ms)
    assert {h.payload["title"] for h in result.hits[:2]} == {"Parsley", "Cumin"}
    first, second = searched
    assert reread and second == (first + reread if nbest == "join" else reread)


@pytest.mark.parametrize(("trust", "read_again"), [(-0.4, False), (0.0, True)])
def test_hybrid_trusts_a_sure_first_decode(models, tmp_path, speak, trust, read_again):
    runtime = models.with_settings(data_dir=tmp_path / "data", hybrid_trust_logprob=trust)
    try:
        ingest_plant_notes(runtime)
        heard = Retriever(runtime).search_audio_hybrid(  # heard right, about -0.1 per word
            speak("What is the highest mountain on Earth?"), top_k=3)
    finally:
        runtime.close()
    assert heard.hits and normalize_words(heard.transcript) == normalize_words(
        "What is the highest mountain on Earth?")
    # a trusted decode is searched as s2r searches it: neither read again nor spelt
    assert ("asr_context" in heard.timings_ms) == read_again
    assert ("e2e" in heard.timings_ms) == read_again
