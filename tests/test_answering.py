"""A question to a grounded answer: what the model is shown, extractive answers without a
model, the fallback when the model fails, conversation memory and the `s2r ask` contract."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import pytest

from assistant.answer.answering import Answerer, Question, QuestionError
from assistant.answer.extractive import LABEL, NOTHING_FOUND
from tests.conftest import ROOT, sharing_store, silence
from tests.fake_llm import Step

pytestmark = pytest.mark.slow

TRANSISTOR = "The first working transistor was built at Bell Labs"


def with_llm(runtime, url: str, **changes):
    return sharing_store(runtime, llm_url=url, **changes)


def test_spoken_question_is_answered_from_its_transcript_and_sources(answer_runtime, fake,
                                                                     speak):
    answerer = Answerer(with_llm(answer_runtime, fake.url, context_tokens=400))  # 2+ sources
    deltas = []
    answer = answerer.answer(Question(audio=speak("Who built the first working transistor?")),
                             on_delta=deltas.append)
    assert answer.mode == "llm" and answer.text == "".join(deltas).strip()
    assert answer.transcript and "transistor" in answer.transcript.lower()
    assert answer.sources[0].payload["source"].endswith("transistor.html")
    assert answer.cited == [1]
    user = fake.requests[0]["body"]["messages"][-1]["content"]
    assert f"Question: {answer.transcript}" in user
    assert user.index('[1], "The transistor"') < user.index("[2]")  # numbered in rank order
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


def test_the_prompt_keeps_its_prefix_byte_identical_from_turn_to_turn(answer_runtime, fake):
    answerer = Answerer(with_llm(answer_runtime, fake.url))
    for question in ("Who built the first transistor?", "What material was it made of?",
                     "How do honeybees share where food is?"):
        answerer.answer(Question(text=question))
    prompts = [json.dumps(request["body"]["messages"]) for request in fake.requests]
    for before, after in itertools.pairwise(prompts):
        earlier = json.loads(before)
        prefix = json.dumps(earlier[:-1])[:-1]  # everything before this turn's sources
        assert after.startswith(prefix), "the system prompt and history must not change"
        assert len(json.loads(after)) == len(earlier) + 2


def test_a_question_the_collection_cannot_answer_is_abstained_without_the_model(
        answer_runtime, fake):
    answerer = Answerer(with_llm(answer_runtime, fake.url))
    lacking = answerer.answer(Question(text="What is the boiling point of liquid nitrogen?"))
    assert lacking.mode == "abstained" and lacking.text == NOTHING_FOUND
    assert not fake.requests, "the model is not asked when nothing relevant was found"
    covered = answerer.answer(Question(text="Who built the first working transistor?"))
    assert covered.mode == "llm" and len(fake.requests) == 1


def test_audio_is_sent_to_audio_capable_models_when_enabled(answer_runtime, fake, speak):
    answerer = Answerer(with_llm(answer_runtime, fake.url, llm_send_audio=True))
    answerer.answer(Question(audio=speak("Who built the first working transistor?")))
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


def test_a_reply_that_is_only_a_source_label_is_replaced_by_a_quote(answer_runtime, fake):
    fake.default = Step(text='Source [1], "The transistor":')
    streamed: list[str] = []
    answer = Answerer(with_llm(answer_runtime, fake.url)).answer(
        Question(text="Who built the first transistor?"), on_delta=streamed.append)
    assert answer.mode == "extractive" and "only 'Source [1]" in answer.error
    assert "gave no answer" in answer.text and "Bardeen" in answer.text
    assert "".join(streamed).endswith(answer.text)  # the listener gets the quote too
    fake.default = Step(text="Source [1] says Bardeen and Brattain built it [1].")
    answered = Answerer(with_llm(answer_runtime, fake.url)).answer(
        Question(text="Who built the first transistor?"))
    assert answered.mode == "llm" and answered.error is None  # a real answer is kept


def test_empty_or_silent_questions_are_rejected(answer_runtime):
    with pytest.raises(QuestionError, match="empty"):
        Question(text="  ")
    with pytest.raises(QuestionError, match="no speech"):
        Answerer(answer_runtime).answer(Question(audio=silence(2.0)))


def test_ask_cli_json_contract(tmp_path):
    env_args = [sys.executable, "-m", "assistant", "--data-dir", str(tmp_path)]
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


def test_reading_ahead_leaves_only_the_new_turn_for_the_model_to_read(answer_runtime,
                                                                       local_llm):
    """With a real llama.cpp server: after the model has read the conversation ahead, the next
    prompt finds all of it in the server's cache, not just the system prompt."""

    def cached_on_the_second_turn(read_ahead: bool, first: str, second: str) -> int:
        answerer = Answerer(with_llm(answer_runtime, local_llm("smollm2"), llm_max_tokens=24))
        assert answerer.answer(Question(text=first)).mode == "llm"
        chat = answerer.chat()
        if read_ahead:
            answerer.read_ahead(chat)
        completion = chat.complete(answerer.prepare(Question(text=second)).messages,
                                   max_tokens=1)
        answerer.close()
        return completion.usage["prompt_tokens_details"]["cached_tokens"]

    without = cached_on_the_second_turn(False, "Who built the first working transistor?",
                                        "What was it made of?")
    ahead = cached_on_the_second_turn(True, "How do honeybees tell others where food is?",
                                      "How far away can the food be?")
    assert ahead > without + 15, (ahead, without)  # the first question and answer, at least
