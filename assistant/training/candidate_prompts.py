"""Previous-text prompts for adapter training, like the ones the hybrid's second decode reads.

The hybrid's second decode first reads the titles and rare words of its first search's top hits
(``decode_context``).  A decoder adapted without ever seeing such a prompt often just goes on
with it ("famed lutheran communion" → "and"), so v1 left that decode to the packaged decoder.
Here a share of the training utterances is heard after such a prompt.  Its candidates are the
nearest neighbours of the utterance's article in the embedder's space: the kind of passages a
first search returns, names that sound or read alike.  The article itself is among them only
sometimes, as a first search misses it, and at a random place.  So the decoder learns to take a
name from the prompt when it hears it, and to leave the others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from assistant.speech.decode_context import candidate_context, previous_text_prompt
from assistant.training.whisper_tokens import WhisperTokens

PASSAGE_CHARS = 480  # about one chunk of the collection, as a search hit holds


def nearest_articles(passages: dict[str, str], embed: Callable[[list[str]], np.ndarray],
                     k: int, block: int = 1024) -> dict[str, list[str]]:
    """Each title → the ``k`` other titles whose "title. passage" embeds closest to its own."""
    titles = list(passages)
    k = min(k, len(titles) - 1)
    vectors = embed([f"{t}. {passages[t]}" for t in titles]).astype(np.float32)
    neighbours: dict[str, list[str]] = {}
    for start in range(0, len(titles), block):
        scores = vectors[start : start + block] @ vectors.T
        for row, title in enumerate(titles[start : start + block]):
            scores[row, start + row] = -np.inf  # not itself
            best = np.argpartition(-scores[row], k)[:k]
            neighbours[title] = [titles[i] for i in best[np.argsort(-scores[row, best])]]
    return neighbours


class CandidatePrompts:
    """Draws the previous-text prompt (``sot_prev`` + tokens) heard before an utterance."""

    def __init__(self, passages: dict[str, str], neighbours: dict[str, list[str]],
                 article_of: dict[str, str], hf_tokenizer, hits: int = 5,
                 include: float = 0.7) -> None:
        self.passages = passages
        self.neighbours = neighbours
        self.article_of = article_of  # spoken text → the title of the article it is about
        self.hf_tokenizer = hf_tokenizer
        self.tokenizer = WhisperTokens(hf_tokenizer)
        self.hits = hits
        self.include = include  # how often the utterance's own article is a candidate

    @classmethod
    def for_training(cls, wiki: dict[str, dict[str, str]], articles: Sequence[str],
                     texts: Sequence[str], embed: Callable[[list[str]], np.ndarray],
                     hf_tokenizer, neighbours: int = 8) -> CandidatePrompts:
        """Prompts for ``texts`` (about ``articles``, title by title), drawn among the
        training articles only: nothing of the eval split or an excluded tuning set."""
        passages = article_passages(wiki, sorted(set(articles)))
        return cls(passages, nearest_articles(passages, embed, neighbours),
                   dict(zip(texts, articles, strict=True)), hf_tokenizer)

    def candidates(self, spoken: str, rng: np.random.Generator) -> list[str]:
        """Titles of the drawn candidates, in prompt order ([] for an unknown text)."""
        title = self.article_of.get(spoken)
        if title is None or title not in self.neighbours:
            return []
        pool = self.neighbours[title]
        chosen = [pool[i] for i in rng.choice(len(pool), min(self.hits, len(pool)),
                                              replace=False)]
        if rng.random() < self.include:
            slot = int(rng.integers(len(chosen))) if chosen else 0
            chosen[slot : slot + 1] = [title]
        return chosen

    def prompt(self, spoken: str, rng: np.random.Generator) -> list[int]:
        """``sot_prev`` and the context's last tokens, as ``decode_with_context`` builds them."""
        titles = self.candidates(spoken, rng)
        if not titles:
            return []
        return previous_text_prompt(self.tokenizer, candidate_context(
            [(t, self.passages[t]) for t in titles], self.hf_tokenizer))


def article_passages(wiki: dict[str, dict[str, str]], titles: Sequence[str]) -> dict[str, str]:
    """Each title's opening ``PASSAGE_CHARS`` characters (cut at a word), as a hit's text."""
    out = {}
    for title in titles:
        text = wiki[title].get("extract", "")
        out[title] = text if len(text) <= PASSAGE_CHARS else \
            text[:PASSAGE_CHARS].rsplit(" ", 1)[0]
    return out
