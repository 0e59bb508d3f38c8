"""A question to a grounded answer: what the model is shown, extractive answers without a
model, the fallback when the model fails, conversation memory and the `s2r ask` contract."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from assistant.answering import Answerer, Question, QuestionError
from assistant.extractive import LABEL
from tests.conftest import ROOT, sharing_store, silence
from tests.fake_llm import Step

TRANSISTOR = "The first working transistor was built at Bell Labs"


def with_llm(runtime, url: str, **changes):
    return sharing_store(runtime, llm_url=url, **changes)


def test_spoken_question_is_answered_from_its_transcript_and_sources(answer_runtime, fake,
                                                                     speak):
    answerer = Answerer(with_llm(answer_runtime, fake.url))
    deltas = []
    answer = answerer.answer(Question(audio=speak("Who built the first working transistor?")),
                             on_delta=deltas.append)
    assert answer.mode == "llm" and answer.text == "".join(deltas).strip()
    assert answer.transcript and "transistor" in answer.transcript.lower()
    assert answer.sources[0].payload["source"].endswith("transistor.html")
    assert answer.cited == [1]
    user = fake.requests[0]["body"]["messages"][-1]["content"]
    assert f"Question: {answer.transcript}" in user
    assert user.index("[1] The transistor") < user.index("[2] ")  # numbered in rank order
    assert TRANSISTOR in user
    assert set(answer.timings_ms) >= {"retrieve", "first_token", "total"}


def test_follow_up_questions_see_the_earlier_turns(answer_runtime, fake):
    answerer = Answerer(with_llm(answer_runtime, fake.url))
    answerer.answer(Question(text="Who built the first transistor?"))
    answerer.answer(Question(text="What material was it made of?"))
    messages = fake.requests[1]["body"]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1]["content"] == "Who built the first transistor?"
    assert messages[2]["content"] == fake.default.text


def test_audio_is_sent_to_audio_capable_models_when_enabled(answer_runtime, fake, speak):
    answerer = Answerer(with_llm(answer_runtime, fake.url, llm_send_audio=True))
    answerer.answer(Question(audio=speak("How do honeybees share where food is?")))
    content = fake.requests[0]["body"]["messages"][-1]["content"]
    assert [part["type"] for part in content] == ["text", "input_audio"]


def test_without_a_model_the_answer_is_extractive_and_labelled(answer_runtime):
    answer = Answerer(answer_runtime).answer(Question(text="Who built the first transistor?"))
    assert answer.mode == "extractive" and answer.text.startswith(LABEL)
    assert "Bardeen" in answer.text and answer.cited[0] == 1
    assert answer.sources[0].payload["source"].endswith("transistor.html")


def test_a_failing_model_falls_back_to_quoting_and_says_why(answer_runtime, fake):
    fake.default = Step(status=500, headers={"Retry-After": "0"})
    answer = Answerer(with_llm(answer_runtime, fake.url, llm_retries=1)).answer(
        Question(text="Who built the first transistor?"))
    assert answer.mode == "extractive" and "500" in answer.error
    assert "failed" in answer.text and "Bardeen" in answer.text
    assert len(fake.requests) == 2


def test_empty_or_silent_questions_are_rejected(answer_runtime):
    with pytest.raises(QuestionError, match="empty"):
        Question(text="  ")
    with pytest.raises(QuestionError, match="no speech"):
        Answerer(answer_runtime).answer(Question(audio=silence(2.0)))


def test_ask_cli_json_contract(tmp_path):
    env_args = [sys.executable, "-m", "assistant.cli", "--data-dir", str(tmp_path)]
    subprocess.run([*env_args, "ingest", "--no-progress", str(ROOT / "samples" / "docs")],
                   check=True, capture_output=True)
    out = subprocess.run([*env_args, "ask", "--no-llm", "--json", "who built the transistor"],
                         check=True, capture_output=True, text=True).stdout
    answer = json.loads(out)
    assert set(answer) == {"question", "transcript", "answer", "mode", "cited", "sources",
                           "timings_ms", "error"}
    assert answer["mode"] == "extractive" and answer["transcript"] is None
    assert answer["sources"][0]["number"] == 1 and answer["sources"][0]["title"] == "The transistor"
    usage = subprocess.run([*env_args, "ask"], capture_output=True, text=True)
    assert usage.returncode == 2 and "QUESTION or --audio" in usage.stderr
