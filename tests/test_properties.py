"""Property-based tests (hypothesis) of the entry points bad input reaches first: the audio
decoder, the chunker and the HTTP request models."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant.index.chunking import chunk_text
from assistant.speech.audio import SAMPLE_RATE, AudioDecodeError, decode_audio, wav_bytes
from tests.test_http_api import call, loaded_app

FIXTURES_OK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture],
                       deadline=None)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=4096))
def test_any_bytes_decode_to_audio_or_raise_the_decode_error(data):
    try:
        audio = decode_audio(data)
    except AudioDecodeError:
        return
    assert audio.dtype == np.float32 and audio.ndim == 1 and np.isfinite(audio).all()


@settings(max_examples=60, deadline=None)
@given(rate=st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000]),
       seconds=st.floats(0.05, 2.0), seed=st.integers(0, 2**16))
def test_pcm_of_any_rate_and_length_decodes_to_16k_of_the_same_duration(rate, seconds, seed):
    samples = np.random.default_rng(seed).uniform(-1, 1, int(rate * seconds)).astype(np.float32)
    audio = decode_audio(wav_bytes(samples, rate))
    assert abs(audio.size - samples.size * SAMPLE_RATE / rate) <= 0.01 * SAMPLE_RATE
    # resampling white noise rings past full scale (Gibbs), but stays finite and bounded
    assert np.isfinite(audio).all() and np.abs(audio).max() <= 2.0


words = st.text(alphabet=st.characters(categories=["L", "N"]), min_size=1, max_size=30)
sentences = st.lists(words, min_size=1, max_size=40).map(lambda ws: " ".join(ws) + ".")
texts = st.lists(sentences, max_size=30).map(" ".join)


def count_words(text: str) -> int:
    return len(text.split())


@settings(max_examples=200, deadline=None)
@given(text=texts, budget=st.integers(2, 60), overlap=st.integers(0, 59))
def test_chunks_fit_the_budget_and_keep_every_word(text, budget, overlap):
    overlap %= budget
    chunks = chunk_text(text, count_words, budget, overlap)
    assert all(chunk.strip() and count_words(chunk) <= budget for chunk in chunks)
    if overlap == 0:
        assert " ".join(chunks).split() == text.split()
    else:  # overlapping chunks repeat words, but none is lost or invented
        assert set(text.split()) == {w for c in chunks for w in c.split()}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                   max_size=4),
    max_leaves=12)
chat_bodies = st.fixed_dictionaries({}, optional={
    "messages": st.lists(st.fixed_dictionaries({}, optional={
        "role": st.sampled_from(["user", "assistant", "system", "tool", ""]) | json_values,
        "content": json_values}), max_size=3) | json_values,
    "stream": json_values, "max_tokens": json_values, "temperature": json_values,
    "top_k": json_values})
retrieve_bodies = st.fixed_dictionaries({}, optional={
    "query": st.text(max_size=200) | json_values, "top_k": json_values, "kind": json_values})


@pytest.mark.slow
@FIXTURES_OK
@given(st.data())
def test_request_models_answer_any_json_with_a_result_or_a_clear_error(answer_runtime, fake,
                                                                      data):
    app = loaded_app(answer_runtime, llm_url=fake.url)
    for path, bodies in (("/v1/retrieve", retrieve_bodies),
                         ("/v1/chat/completions", chat_bodies)):
        body = data.draw(bodies)
        response = call(app, "POST", path, json=body)
        assert response.status_code in (200, 400, 413, 422), (path, body, response.text)
        if response.status_code != 200:
            error = response.json()["error"]
            assert error["message"] and set(error) == {"message", "type", "param", "code"}
