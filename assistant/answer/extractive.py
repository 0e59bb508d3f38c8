"""Answers without a language model: the sentences of the top sources closest to the question.

When no endpoint is configured and no local model is installed, s2r still answers, by quoting.
The answer is labelled as a quotation so nobody mistakes it for generated text, and it cites
its sources with the same ``[n]`` numbers a model would use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from assistant.answer.context import scored_sentences
from assistant.retrieval.store.base import Hit

LABEL = "(No language model is configured; quoting the best-matching sources.)"
NOTHING_FOUND = "I don't know: the indexed sources do not say."
SOURCES_READ = 3
MAX_SENTENCES = 2


def extractive_answer(question: str, sources: Sequence[Hit],
                      embed: Callable[[list[str]], np.ndarray], label: str = LABEL) -> str:
    scored = scored_sentences(question, sources[:SOURCES_READ], embed)
    if not scored:
        return NOTHING_FOUND
    best = sorted(sorted(scored, key=lambda c: -c[3])[:MAX_SENTENCES])  # the sources' order
    quoted = " ".join(f"{sentence} [{i + 1}]" for i, _, sentence, _ in best)
    return f"{label} {quoted}"
