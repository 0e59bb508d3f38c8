"""Answers without a language model: the sentences of the top sources closest to the question.

When no endpoint is configured and no local model is installed, s2r still answers, by quoting.
The answer is labelled as a quotation so nobody mistakes it for generated text, and it cites
its sources with the same ``[n]`` numbers a model would use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from assistant.chunking import split_sentences
from assistant.store.base import Hit

LABEL = "(No language model is configured; quoting the best-matching sources.)"
NOTHING_FOUND = "I don't know: the indexed sources do not say."
SOURCES_READ = 3
MAX_SENTENCES = 2


def extractive_answer(question: str, sources: Sequence[Hit],
                      embed: Callable[[list[str]], np.ndarray], label: str = LABEL) -> str:
    candidates = [(number, sentence)
                  for number, hit in enumerate(sources[:SOURCES_READ], 1)
                  for sentence in split_sentences(hit.payload.get("text") or "")
                  if len(sentence.split()) >= 3]
    if not candidates or not question.strip():
        return NOTHING_FOUND
    vectors = embed([question] + [sentence for _, sentence in candidates])
    scores = vectors[1:] @ vectors[0]
    best = sorted(np.argsort(-scores)[:MAX_SENTENCES])  # keep the sources' own order
    quoted = " ".join(f"{candidates[i][1]} [{candidates[i][0]}]" for i in best)
    return f"{label} {quoted}"
