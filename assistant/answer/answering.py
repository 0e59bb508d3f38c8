"""A question, typed or spoken, to a grounded answer with numbered sources.

A spoken question goes through integrated S2R once: the same Whisper pass yields the ranked
sources and the transcript that the model reads as the user turn.  ``prepare`` does everything
up to the model call, so the HTTP service can run the call on its own async client; ``answer``
does the whole turn for the CLI and the voice loop, streaming deltas to a callback.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from assistant.answer.chat_client import AbortableChatClient, ChatClient, LLMError, Message
from assistant.answer.context import (
    AudioPart,
    build_messages,
    cited_numbers,
    focus,
    read_ahead_messages,
)
from assistant.answer.conversation import Conversation
from assistant.answer.extractive import NOTHING_FOUND, extractive_answer
from assistant.retrieval.retriever import Retriever, SearchResult
from assistant.retrieval.store.base import Hit
from assistant.runtime import Runtime

LLM_FAILED_LABEL = "(The language model failed; quoting the best-matching sources instead.)"
NO_ANSWER_LABEL = ("(The language model named a source but gave no answer; quoting the "
                   "best-matching sources instead.)")
# A reply that is only a source's label, as the prompt writes it ('Source [1], "Title"
# (0.0–18.5 s):'): the 1.5B model gives it for some misheard questions (make demo's).
LABEL_ONLY = re.compile(r'\s*Source \[\d+\](,\s*"[^"]*")?(\s*\([^)]*\))?\s*:?\s*')
Mode = Literal["llm", "extractive", "abstained"]


class QuestionError(ValueError):
    """The question is empty, or the spoken question contains no recognisable speech."""


@dataclass(frozen=True)
class Question:
    text: str | None = None
    audio: np.ndarray | None = None  # float32 16 kHz mono

    def __post_init__(self) -> None:
        if (self.text is None) == (self.audio is None):
            raise QuestionError("a question is either text or audio")
        if self.text is not None and not self.text.strip():
            raise QuestionError("the question is empty")


@dataclass
class Prepared:
    """Everything before the model call."""

    question: str  # the typed text, or the transcript of the spoken question
    transcript: str | None  # None for typed questions
    sources: list[Hit]  # what the model is shown, numbered from 1 in this order
    messages: list[Message]
    timings_ms: dict[str, float] = field(default_factory=dict)
    relevance: float = 1.0  # cosine of the closest source sentence to the question
    abstain: bool = False  # nothing relevant was found: answer so, without the model


@dataclass
class Answer:
    text: str
    mode: Mode
    question: str
    transcript: str | None
    sources: list[Hit]
    cited: list[int]  # 1-based numbers into ``sources`` that the text cites
    timings_ms: dict[str, float] = field(default_factory=dict)
    error: str | None = None  # why the model did not answer, when it failed


class Answerer:
    def __init__(self, runtime: Runtime, conversation: Conversation | None = None) -> None:
        self.runtime = runtime
        self.retriever = Retriever(runtime)
        self.conversation = conversation if conversation is not None else Conversation(
            runtime.settings.tuning.history_turns, runtime.settings.tuning.history_tokens)
        self._chat: ChatClient | None = None

    def retrieve(self, question: Question, top_k: int | None = None) -> SearchResult:
        """The question's ranked hits (and, spoken, its transcript): the first step of
        ``prepare``, on its own so the voice loop can run it before a turn has ended."""
        top_k = top_k or self.runtime.settings.answer_top_k
        t0 = time.perf_counter()
        if question.audio is not None:
            result = self.retriever.search_spoken(question.audio, top_k)
            if not result.transcript:
                raise QuestionError("no speech was recognised in the spoken question")
        else:
            result = self.retriever.search_text(question.text, top_k)
        return replace(result, timings_ms={**result.timings_ms,
                                           "retrieve": (time.perf_counter() - t0) * 1e3})

    def prepare(self, question: Question, history: Sequence[Message] | None = None,
                top_k: int | None = None, retrieved: SearchResult | None = None) -> Prepared:
        """Retrieve (unless ``retrieved`` holds ``retrieve``'s result for this question) and
        build the messages; ``history`` overrides the conversation's."""
        settings = self.runtime.settings
        result = retrieved if retrieved is not None else self.retrieve(question, top_k)
        text = result.transcript if question.audio is not None else question.text.strip()
        t0 = time.perf_counter()
        focused = focus(text, result.hits, self.runtime.embedder.embed,
                        settings.tuning.context_tokens)
        timings = {**result.timings_ms, "focus": (time.perf_counter() - t0) * 1e3}
        audio = (AudioPart(question.audio)
                 if settings.llm_send_audio and question.audio is not None else None)
        messages = build_messages(text, focused.sources,
                                  self.conversation.messages() if history is None else history,
                                  audio, focused.excerpts)
        return Prepared(text, result.transcript, focused.sources, messages, timings,
                        focused.relevance, focused.relevance < settings.tuning.abstain_below)

    def answer(self, question: Question, on_delta: Callable[[str], None] | None = None,
               on_prepared: Callable[[Prepared], None] | None = None,
               top_k: int | None = None) -> Answer:
        """One turn: retrieve, then stream the model's answer (or quote, without a model).
        ``on_prepared`` sees the sources and transcript before the model starts."""
        t0 = time.perf_counter()
        prepared = self.prepare(question, top_k=top_k)
        if on_prepared is not None:
            on_prepared(prepared)
        return self.respond(prepared, t0, self.chat(), on_delta)

    def respond(self, prepared: Prepared, started: float,
                chat: ChatClient | AbortableChatClient | None,
                on_delta: Callable[[str], None] | None = None,
                cancelled: Callable[[], bool] = lambda: False) -> Answer:
        """Generate the answer to a prepared turn, streaming deltas to ``on_delta``.  When
        ``cancelled()`` turns true (the user barged in) the stream is closed, which stops the
        generation upstream, and the partial answer is returned."""
        emit = on_delta or (lambda _delta: None)
        if prepared.abstain:
            emit(NOTHING_FOUND)
            return self.finish(prepared, NOTHING_FOUND, "abstained", started)
        if chat is None:
            text = extractive_answer(prepared.question, prepared.sources,
                                     self.runtime.embedder.embed)
            emit(text)
            return self.finish(prepared, text, "extractive", started)
        pieces: list[str] = []
        stream = chat.stream(prepared.messages)
        try:
            for delta in stream:
                if cancelled():
                    break
                if not pieces:
                    prepared.timings_ms["first_token"] = (time.perf_counter() - started) * 1e3
                pieces.append(delta)
                emit(delta)
        except LLMError as exc:
            if not cancelled():  # a real failure, not the connection closed under a barge-in
                text = extractive_answer(prepared.question, prepared.sources,
                                         self.runtime.embedder.embed, LLM_FAILED_LABEL)
                emit(text)
                return self.finish(prepared, text, "extractive", started, error=str(exc))
        finally:
            stream.close()
        text = "".join(pieces).strip()
        quoted = None if cancelled() else self.quote_if_label_only(prepared, text)
        if quoted is not None:
            emit("\n" + quoted)
            return self.finish(prepared, quoted, "extractive", started,
                               error=f"the model answered only {text!r}")
        return self.finish(prepared, text, "llm", started)

    def quote_if_label_only(self, prepared: Prepared, text: str) -> str | None:
        """Small models sometimes reply with a source's label alone ('Source [1], "Coffee":'):
        then the sentences of the sources closest to the question, labelled as a quotation,
        stand in for the answer; None for a real answer."""
        if not LABEL_ONLY.fullmatch(text.strip()):
            return None
        return extractive_answer(prepared.question, prepared.sources,
                                 self.runtime.embedder.embed, NO_ANSWER_LABEL)

    def finish(self, prepared: Prepared, text: str, mode: Mode, started: float,
               error: str | None = None) -> Answer:
        """The Answer for a completed turn; a successful turn joins the conversation."""
        prepared.timings_ms["total"] = (time.perf_counter() - started) * 1e3
        if error is None:
            self.conversation.add(prepared.question, text)
        return Answer(text, mode, prepared.question, prepared.transcript, prepared.sources,
                      cited_numbers(text, len(prepared.sources)), prepared.timings_ms, error)

    def read_ahead(self, chat: ChatClient) -> None:
        """Have the model read the conversation so far, ahead of the next question.  Every
        prompt begins with the system prompt and the history, and llama.cpp keeps what it has
        read, so the next turn reads only its own sources and question: the last question and
        answer are read while the user listens and speaks, not after the question ends."""
        chat.complete(read_ahead_messages(self.conversation.messages()), max_tokens=1)

    def read_prompt(self, chat: AbortableChatClient, prepared: Prepared) -> None:
        """Have the model read a turn's whole prompt before the turn is certain (the voice
        loop, during the endpoint's silence): the answer's request, with the same messages,
        then finds it in llama.cpp's cache."""
        for _ in chat.stream(prepared.messages, max_tokens=1):
            pass

    def chat(self) -> ChatClient | None:
        if self._chat is None and self.runtime.llm.config is not None:
            self._chat = ChatClient(self.runtime.llm.config)
        return self._chat

    def close(self) -> None:
        if self._chat is not None:
            self._chat.close()
            self._chat = None
