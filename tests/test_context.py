"""Prompt files, the focused sources and their budget, citations and conversation memory."""

from __future__ import annotations

import base64

import numpy as np
import pytest

import prompts
from assistant.answer.context import (
    AudioPart,
    build_messages,
    cited_numbers,
    estimate_tokens,
    focus,
    render_source,
)
from assistant.answer.conversation import Conversation
from assistant.retrieval.store.base import Hit
from assistant.speech.audio import SAMPLE_RATE, decode_audio


def hit(title: str, words: int, start: float | None = None) -> Hit:
    return Hit(id=title, score=1.0, payload={
        "title": title, "text": " ".join([title.lower()] * words), "kind": "text",
        "start": start, "end": None if start is None else start + 4.0})


def test_every_prompt_loads_and_renders():
    assert "[1]" in prompts.load("system") or "square brackets" in prompts.load("system")
    text = prompts.render("grounded_answer", sources="[1] A\nfacts", question="why?")
    assert "[1] A\nfacts" in text and "Question: why?" in text
    with pytest.raises(prompts.PromptError, match=r"needs a value for \$question"):
        prompts.render("grounded_answer", sources="x")
    with pytest.raises(prompts.PromptError, match="not found"):
        prompts.load("no-such-prompt")


def test_prompts_dir_can_be_replaced(tmp_path, monkeypatch):
    (tmp_path / "system.txt").write_text("Talk like a pirate.\n")
    monkeypatch.setenv("S2R_PROMPTS_DIR", str(tmp_path))
    assert prompts.load("system") == "Talk like a pirate."


TEA = Hit(id="Tea", score=1.0, payload={"title": "Tea", "kind": "text", "text": (
    "Tea is an aromatic beverage. It is prepared by pouring hot water over cured leaves. "
    "Tea was first grown in southwest China, where it was used as a medicinal drink. "
    "Many cultures have tea ceremonies.")})
RICE = Hit(id="Rice", score=0.5, payload={"title": "Rice", "kind": "text", "text": (
    "Rice is the seed of a grass species. Rice paddies need a lot of water. "
    "Rice was domesticated in the Yangtze valley.")})


@pytest.mark.slow
def test_focus_keeps_the_sentences_closest_to_the_question_within_the_budget(models):
    budget = 26  # room for the best sentence and its header only
    focused = focus("where was tea first grown?", [TEA, RICE], models.embedder.embed, budget)
    assert [h.id for h in focused.sources] == ["Tea"]
    assert focused.excerpts == [
        "Tea was first grown in southwest China, where it was used as a medicinal drink."]
    rendered = [render_source(n, hit, text) for n, (hit, text)
                in enumerate(zip(focused.sources, focused.excerpts, strict=True), 1)]
    assert sum(estimate_tokens(r) for r in rendered) <= budget
    everything = focus("where was tea first grown?", [TEA, RICE], models.embedder.embed, 10_000)
    assert [h.id for h in everything.sources] == ["Tea", "Rice"]
    assert everything.excerpts[0] == " ".join(TEA.payload["text"].split())  # document order
    unrelated = focus("how fast does a cheetah run?", [TEA, RICE], models.embedder.embed, 100)
    assert unrelated.relevance < focused.relevance - 0.3


def test_sources_are_numbered_with_recording_spans():
    messages = build_messages("where?", [hit("Doc", 3), hit("Talk", 3, start=12.0)])
    assert messages[0] == {"role": "system", "content": prompts.load("system")}
    user = messages[-1]["content"]
    assert 'Source [1], "Doc":\ndoc doc doc' in user and '[2], "Talk" (12.0–16.0 s)' in user
    assert user.index("[1]") < user.index("[2]") < user.index("Question: where?")


def test_no_sources_asks_the_model_to_say_it_does_not_know():
    user = build_messages("what is dark matter?", [])[-1]["content"]
    assert "don't know" in user and "what is dark matter?" in user


def test_audio_part_carries_the_question_audio_as_wav():
    samples = (0.1 * np.sin(np.arange(SAMPLE_RATE) / 5)).astype(np.float32)
    content = build_messages("q", [hit("Doc", 3)], audio=AudioPart(samples))[-1]["content"]
    assert content[0]["type"] == "text" and "Question: q" in content[0]["text"]
    part = content[1]
    assert part["type"] == "input_audio" and part["input_audio"]["format"] == "wav"
    decoded = decode_audio(base64.b64decode(part["input_audio"]["data"]))
    assert abs(len(decoded) - SAMPLE_RATE) < 160


def test_citations_are_parsed_in_order_and_bounded():
    assert cited_numbers("Yes [2]. Also [1][2] and [7].", source_count=3) == [2, 1]
    assert cited_numbers("No citations here.", 3) == []


def test_conversation_forgets_its_oldest_turns_in_one_block():
    conversation = Conversation(max_turns=4)
    prefixes = []
    for i in range(7):
        conversation.add(f"q{i}", f"a{i}")
        prefixes.append([m["content"] for m in conversation.messages()][:2])
    # turns 0-3 fit; the fifth overflows and leaves the last two; then they grow again
    assert [m["content"] for m in conversation.messages()] == [
        "q3", "a3", "q4", "a4", "q5", "a5", "q6", "a6"]
    assert prefixes == [["q0", "a0"]] * 4 + [["q3", "a3"]] * 3  # one change in seven turns
    history = [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]
    messages = build_messages("q3", [], history[-2:])
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    terse = Conversation(max_turns=6, max_tokens=30)  # 30 tokens ~ 120 characters
    terse.add("first question?", "x" * 200)
    terse.add("second question?", "a short answer")
    assert [m["content"] for m in terse.messages()] == ["second question?", "a short answer"]
    forgetful = Conversation(max_turns=0)
    forgetful.add("q", "a")
    assert forgetful.messages() == []
