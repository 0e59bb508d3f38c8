"""Integrated S2R: guards, reduced-window vs padded transcripts, n-best fusion."""

import numpy as np
import pytest

from assistant.speech.integrated import (
    DecodeConfig,
    Hypothesis,
    IntegratedRecognizer,
    compression_ratio,
    nbest_weights,
    query_vector,
    repeats_word_ngram,
)
from assistant.text import normalize_words

pytestmark = pytest.mark.slow

CLEAN = ["What is the highest mountain on Earth?",
         "The first coffee house in London opened in the seventeenth century.",
         "Please tell me who painted the ceiling of the Sistine Chapel."]


def test_guards_trigger_on_a_synthetic_repeat(models):
    recognizer = models.recognizer
    looped = "the cat sat on the mat " * 4
    assert repeats_word_ngram(looped) and compression_ratio(looped) > 2.4
    assert recognizer._guard(looped, tokens=20, seconds=5.0, cap=40) == "repeated word 4-gram"
    assert recognizer._guard("a fine answer", tokens=40, seconds=5.0, cap=40) == "token cap hit"
    assert recognizer._guard("a fine answer", tokens=30, seconds=5.0, cap=40) == \
        "too many tokens for the duration"
    assert recognizer._guard("where was coffee first grown", 8, 2.0, 18) is None
    assert not repeats_word_ngram("to be or not to be")


def test_reduced_window_matches_the_padded_pass_on_clean_speech(packaged_models, speak):
    # the same decoder on both windows (the adapted one is tested in test_decoder_adapter)
    for sentence in CLEAN:
        audio = speak(sentence)
        recognition = packaged_models.recognizer.recognize(audio)
        assert recognition.fallback is None
        config = packaged_models.recognizer.config  # utterance + 2 s, at least the minimum
        assert recognition.window_s == pytest.approx(
            max(audio.size / 16000 + config.margin_s, config.min_window_s), abs=1e-6)
        assert recognition.window_s < 30
        padded = packaged_models.transcriber.transcribe(audio).text
        assert normalize_words(recognition.text) == normalize_words(padded)
        words = [tuple(normalize_words(h.text)) for h in recognition.hypotheses]
        assert len(set(words)) == len(words)  # case/punctuation variants merged
        assert all(h.logprob <= 0 for h in recognition.hypotheses)


def test_a_prompt_that_repeats_a_phrase_keeps_the_repeat(models, speak):
    # phone menus say the same words twice; a decode that forbids repeated n-grams cannot
    prompt = "Press one followed by the pound key. Press two followed by the pound key."
    heard = " ".join(normalize_words(models.recognizer.recognize(speak(prompt)).text))
    assert heard.count("followed by the pound key") == 2, heard


def test_the_integrated_pass_runs_its_own_single_thread_copy_of_whisper(packaged_models):
    models = packaged_models  # the packaged decoder: the integrated pass shares its weights
    transcriber = models.transcriber
    assert models.recognizer.config.threads == models.settings.s2r_cpu_threads == 1
    assert models.recognizer.model is transcriber.model_with_threads(1).model  # loaded once
    own = models.settings.cpu_threads
    assert transcriber.model_with_threads(own) is transcriber.model  # same count: shared
    assert IntegratedRecognizer(transcriber, DecodeConfig(threads=own)).model is \
        transcriber.model.model
    if own != 1:
        assert models.recognizer.model is not transcriber.model.model


def test_a_tripped_guard_falls_back_to_the_padded_pass(models, speak):
    strict = IntegratedRecognizer(models.transcriber, DecodeConfig(tokens_per_s=0,
                                                                   cap_extra_tokens=3))
    audio = speak(CLEAN[1])
    recognition = strict.recognize(audio)
    assert recognition.fallback == "token cap hit" and recognition.window_s == 30.0
    assert "coffee house in london" in recognition.text.lower()  # the full sentence came back


def test_a_tripped_guard_without_the_padded_fallback_gives_nothing(models, speak):
    strict = IntegratedRecognizer(models.transcriber, DecodeConfig(tokens_per_s=0,
                                                                   cap_extra_tokens=3))
    recognition = strict.recognize(speak(CLEAN[1]), padded_fallback=False)
    assert recognition.fallback == "token cap hit" and recognition.hypotheses == []
    assert recognition.text == "" and recognition.window_s < 30.0


def test_nbest_fusion(models):
    hyps = [Hypothesis("where was coffee first grown", -1.0),
            Hypothesis("where was coffee first thrown", -2.0)]
    w = nbest_weights(hyps)
    assert w.sum() == pytest.approx(1.0) and w[0] > w[1]
    assert w[0] / w[1] == pytest.approx(np.e)
    embed = models.embedder.embed
    fused = query_vector([h.text for h in hyps], w, embed)
    single = embed([hyps[0].text])[0]
    assert np.linalg.norm(fused) == pytest.approx(1.0, abs=1e-5)
    assert 0.9 < float(fused @ single) < 1.0  # mostly the best reading, a little of the next
    assert float(query_vector([hyps[0].text], np.ones(1), embed) @ single) == \
        pytest.approx(1.0, abs=1e-5)
