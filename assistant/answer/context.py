"""From retrieved chunks and a question to the chat messages the model sees.

On a CPU, reading the prompt is most of the wait before the first word of an answer, so the
model is not shown whole chunks: ``focus`` keeps the few sentences of the top sources that are
closest to the question (by the retrieval embedder), within a small token budget, each source
numbered in rank order so the model can cite it as ``[n]``.  Token counts are estimated at four
characters per token (the usual rule of thumb for English BPE vocabularies), which keeps the
budget independent of whichever model sits behind the endpoint.

The messages are ordered for llama.cpp's prompt cache: the system prompt and the conversation
so far come first and are byte-identical from turn to turn, and this turn's sources and question
come last, so only they are read anew.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

import prompts
from assistant.answer.chat_client import Message
from assistant.retrieval.store.base import Hit
from assistant.speech.audio import wav_bytes
from assistant.text import split_sentences

CHARS_PER_TOKEN = 4
# How much less close (cosine) to the question than the best sentence a source's own best may
# be and still be shown ahead of the best source's other sentences.
NEAR_BEST = 0.2
CITATION = re.compile(r"\[(\d{1,2})\]")


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass(frozen=True)
class Focused:
    """The sources the model is shown (renumbered from 1), the excerpt of each, and how close
    the closest sentence came to the question (cosine; the abstention signal)."""

    sources: list[Hit]
    excerpts: list[str]
    relevance: float


def scored_sentences(question: str, hits: Sequence[Hit],
                     embed: Callable[[list[str]], np.ndarray]) -> list[tuple[int, int, str, float]]:
    """(hit index, sentence index, sentence, cosine to the question) for every sentence of
    ``hits`` with at least three words, in document order."""
    candidates = [(i, j, sentence)
                  for i, hit in enumerate(hits)
                  for j, sentence in enumerate(split_sentences(hit.payload.get("text") or ""))
                  if len(sentence.split()) >= 3]
    if not candidates or not question.strip():
        return []
    vectors = embed([question] + [sentence for _, _, sentence in candidates])
    scores = vectors[1:] @ vectors[0]
    return [(i, j, sentence, float(score))
            for (i, j, sentence), score in zip(candidates, scores, strict=True)]


def focus(question: str, hits: Sequence[Hit], embed: Callable[[list[str]], np.ndarray],
          budget_tokens: int) -> Focused:
    """Within ``budget_tokens`` (each source's header counts once): first the closest sentence
    of every source that is near the best one (within ``NEAR_BEST``), in rank order, so that
    no plausible source is lost to a neighbour's second sentence; then the closest remaining
    sentences.  A source far below the best gets no room before the best source's other
    sentences.  Shown in the sources' rank and their own order."""
    scored = sorted(scored_sentences(question, hits, embed), key=lambda c: -c[3])
    best_of_each = {c[0]: c for c in reversed(scored)}  # each source's closest sentence
    top = scored[0][3] if scored else 0.0
    first = [best_of_each[i] for i in sorted(best_of_each)
             if best_of_each[i][3] >= top - NEAR_BEST]
    chosen: dict[int, list[tuple[int, str]]] = {}
    used = 0
    for i, j, sentence, _ in first + scored:
        if (j, sentence) in chosen.get(i, []):
            continue
        cost = estimate_tokens(sentence) + (0 if i in chosen else estimate_tokens(
            render_source(len(hits), hits[i], "")))
        if used + cost > budget_tokens:
            continue
        chosen.setdefault(i, []).append((j, sentence))
        used += cost
    kept = sorted(chosen)
    return Focused([hits[i] for i in kept],
                   [" ".join(sentence for _, sentence in sorted(chosen[i])) for i in kept], top)


def _span(hit: Hit) -> str:
    start, end = hit.payload.get("start"), hit.payload.get("end")
    return f" ({start:.1f}–{end:.1f} s)" if start is not None and end is not None else ""


def render_source(number: int, hit: Hit, text: str | None = None) -> str:
    """Source ``number`` as the model reads it: title, span, and ``text`` (default: the whole
    chunk)."""
    payload = hit.payload
    text = payload.get("text") or "" if text is None else text
    return prompts.render("source", number=number, title=payload.get("title") or "untitled",
                          span=_span(hit), text=text.strip())


def user_turn(question: str, sources: Sequence[Hit], excerpts: Sequence[str] | None = None
              ) -> str:
    if not sources:
        return prompts.render("no_sources", question=question)
    texts = excerpts if excerpts is not None else [None] * len(sources)
    rendered = "\n\n".join(render_source(i, hit, text)
                           for i, (hit, text) in enumerate(zip(sources, texts, strict=True), 1))
    return prompts.render("grounded_answer", sources=rendered, question=question)


@dataclass(frozen=True)
class AudioPart:
    """The spoken question itself, for models that accept OpenAI ``input_audio`` parts."""

    samples: np.ndarray

    def content(self) -> dict:
        data = base64.b64encode(wav_bytes(self.samples)).decode("ascii")
        return {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}


def build_messages(question: str, sources: Sequence[Hit], history: Sequence[Message] = (),
                   audio: AudioPart | None = None, excerpts: Sequence[str] | None = None
                   ) -> list[Message]:
    """System prompt, earlier turns, then this turn with its numbered sources (their
    ``excerpts`` when given, else whole chunks): the stable prefix first."""
    text = user_turn(question, sources, excerpts)
    content: str | list[dict] = text
    if audio is not None:
        content = [{"type": "text", "text": text}, audio.content()]
    return [*prefix_messages(history), {"role": "user", "content": content}]


def prefix_messages(history: Sequence[Message] = ()) -> list[Message]:
    """What every prompt of a conversation begins with: the system prompt, then the history."""
    return [{"role": "system", "content": prompts.load("system")}, *history]


def read_ahead_messages(history: Sequence[Message] = ()) -> list[Message]:
    """A request whose only use is to have llama.cpp read (and keep) the prompt prefix."""
    return [*prefix_messages(history), {"role": "user", "content": ""}]


def cited_numbers(answer: str, source_count: int) -> list[int]:
    """The source numbers an answer cites, in first-mention order, ignoring ones out of range."""
    seen: list[int] = []
    for match in CITATION.finditer(answer):
        number = int(match.group(1))
        if 1 <= number <= source_count and number not in seen:
            seen.append(number)
    return seen
