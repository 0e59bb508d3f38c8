"""From retrieved chunks and a question to the chat messages the model sees.

The retrieved chunks are numbered in rank order so the model can cite them as ``[n]``.  They
must fit a token budget: the lowest-ranked chunks are dropped first, and a single chunk that is
too long on its own is cut, never the question.  Token counts are estimated at four characters
per token (the usual rule of thumb for English BPE vocabularies), which keeps the budget
independent of whichever model sits behind the endpoint.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

import prompts
from assistant.audio import wav_bytes
from assistant.generator import Message
from assistant.store.base import Hit

CHARS_PER_TOKEN = 4
CITATION = re.compile(r"\[(\d{1,2})\]")


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def fit_budget(hits: Sequence[Hit], budget_tokens: int) -> list[Hit]:
    """Best-first hits whose rendered sources fit ``budget_tokens``; the rest is dropped."""
    kept: list[Hit] = []
    used = 0
    for hit in hits:
        cost = estimate_tokens(render_source(len(kept) + 1, hit))
        if used + cost > budget_tokens:
            if not kept:  # the best chunk alone is too long: keep its beginning
                room = budget_tokens * CHARS_PER_TOKEN
                text = (hit.payload.get("text") or "")[:max(room - 80, 0)]
                kept.append(Hit(hit.id, hit.score, {**hit.payload, "text": text + " …"}))
            break
        kept.append(hit)
        used += cost
    return kept


def _span(hit: Hit) -> str:
    start, end = hit.payload.get("start"), hit.payload.get("end")
    return f" ({start:.1f}–{end:.1f} s)" if start is not None and end is not None else ""


def render_source(number: int, hit: Hit) -> str:
    payload = hit.payload
    return prompts.render("source", number=number, title=payload.get("title") or "untitled",
                          span=_span(hit), text=(payload.get("text") or "").strip())


def user_turn(question: str, sources: Sequence[Hit]) -> str:
    if not sources:
        return prompts.render("no_sources", question=question)
    rendered = "\n\n".join(render_source(i, hit) for i, hit in enumerate(sources, 1))
    return prompts.render("grounded_answer", sources=rendered, question=question)


@dataclass(frozen=True)
class AudioPart:
    """The spoken question itself, for models that accept OpenAI ``input_audio`` parts."""

    samples: np.ndarray

    def content(self) -> dict:
        data = base64.b64encode(wav_bytes(self.samples)).decode("ascii")
        return {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}


def build_messages(question: str, sources: Sequence[Hit], history: Sequence[Message] = (),
                   audio: AudioPart | None = None) -> list[Message]:
    """System prompt, earlier turns, then this turn with its numbered sources."""
    text = user_turn(question, sources)
    content: str | list[dict] = text
    if audio is not None:
        content = [{"type": "text", "text": text}, audio.content()]
    return [{"role": "system", "content": prompts.load("system")}, *history,
            {"role": "user", "content": content}]


def cited_numbers(answer: str, source_count: int) -> list[int]:
    """The source numbers an answer cites, in first-mention order, ignoring ones out of range."""
    seen: list[int] = []
    for match in CITATION.finditer(answer):
        number = int(match.group(1))
        if 1 <= number <= source_count and number not in seen:
            seen.append(number)
    return seen
