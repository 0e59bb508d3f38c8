"""Reorder the fused top hits by how much of the question each one covers.

A question heard with one word wrong still has its other words right, and the fused search
then tends to rank first the article about the one clear word (its title, its whole topic)
ahead of the one that holds them all: "umbrella pedoners" (for "umbrella paid owners") found
"Umbrella" before "Economic inequality", whose text has all three words.  Coverage is a soft
AND over the question's content words: each word of each reading scores its best match among a
hit's words, or two of them run together (a name heard as one word, "steyoshospine"): 1 for the
same word or an inflection, else the share of character 4-grams they have in common, or 0.8
when they sound the same (one Metaphone key).  The squared matches are averaged per reading
(a near miss counts less than a hit), and the readings by their weights.  A long question has
enough right words for the fused legs; there coverage only reorders by how wordy a passage is
(benchmarks/results/tune-coverage.md).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache
from itertools import pairwise

import jellyfish

from assistant.retrieval.sparse import word_grams
from assistant.retrieval.store.base import Hit
from assistant.text import terms

# Words that say nothing about which passage is meant (a question's frame).
STOP_WORDS = frozenset(
    "a an and are as at be by for from how in into is it its of on or than that the then "
    "this to was were what when where which who whom whose with".split())
SOUND_MATCH = 0.8  # a different spelling of the same sounds: most likely the word, not sure
MIN_STEM = 5  # shorter words are not matched as inflections (``inflection``)


def content_words(text: str) -> list[str]:
    """The words of a reading that can tell passages apart (no stop words, three letters up)."""
    return [w for w in terms(text) if len(w) > 2 and w not in STOP_WORDS]


def inflection(word: str, other: str) -> bool:
    """Whether two words of five letters or more agree up to the shorter one's last letter
    ("gazelles" and "gazelle", "studies" and "study")."""
    stem = min(len(word), len(other)) - 1
    return stem + 1 >= MIN_STEM and word[:stem] == other[:stem]


class PassageWords:
    """A passage's words, and each pair of neighbours run together, indexed by their 4-grams
    and sound keys so a heard word finds its best counterpart without trying every one."""

    def __init__(self, text: str) -> None:
        words = terms(text)
        self.words = frozenset(words)
        self.units = list(dict.fromkeys(words + [a + b for a, b in pairwise(words)]))
        self.sizes: list[int] = []
        self.by_gram: dict[str, list[int]] = defaultdict(list)
        for i, unit in enumerate(self.units):
            grams = word_grams(unit)
            self.sizes.append(len(grams))
            for gram in grams:
                self.by_gram[gram].append(i)
        self.keys = {jellyfish.metaphone(u) for u in self.units} - {""}  # digits have none

    def match(self, word: str) -> float:
        """How well ``word`` matches its best counterpart here, in [0, 1]: 1 for the word
        itself or an inflection, else the larger of the share of 4-grams in common (Dice)
        and ``SOUND_MATCH`` for one with the same Metaphone key."""
        if word in self.words:
            return 1.0
        grams = word_grams(word)
        best = SOUND_MATCH if jellyfish.metaphone(word) in self.keys else 0.0  # '' never is
        shared = Counter(i for gram in grams for i in self.by_gram.get(gram, ()))
        for i, count in shared.items():
            if inflection(word, self.units[i]):
                return 1.0
            best = max(best, 2 * count / (len(grams) + self.sizes[i]))
        return best


@lru_cache(maxsize=256)
def passage_words(text: str) -> PassageWords:
    """Kept for the next search: a question's two searches, and the next question, mostly
    reorder the same passages."""
    return PassageWords(text)


def coverage(texts: Sequence[str], weights: Sequence[float], passage: str) -> float:
    """The readings' weighted mean of the mean squared match of their content words."""
    words, total = passage_words(passage), 0.0
    matches: dict[str, float] = {}  # readings of one question share most words
    for text, weight in zip(texts, weights, strict=True):
        wanted = content_words(text) if weight else []  # e.g. the hybrid's spelling at 0
        if wanted:
            for w in wanted:
                if w not in matches:
                    matches[w] = words.match(w)
            total += weight * sum(matches[w] ** 2 for w in wanted) / len(wanted)
    return total / max(float(sum(weights)), 1e-12)


def rerank_by_coverage(hits: list[Hit], texts: Sequence[str], weights: Sequence[float],
                       weight: float, depth: int) -> list[Hit]:
    """The first ``depth`` hits reordered by how much of the question read as ``texts``
    (weighted ``weights``) each one covers (``reorder``)."""
    return reorder(hits, [coverage(texts, weights, h.payload.get("text") or "")
                          for h in hits[:depth]], weight)


def reorder(hits: list[Hit], coverages: Sequence[float], weight: float) -> list[Hit]:
    """The first ``len(coverages)`` hits reordered by their fused score, rescaled to [0, 1]
    among them, plus ``weight`` × their coverage.  That sum becomes every hit's score; the
    rest keep their order, rescaled the same way (so at most 0) with no coverage."""
    depth = len(coverages)
    if depth < 2:
        return hits
    low = min(h.score for h in hits[:depth])
    spread = max(max(h.score for h in hits[:depth]) - low, 1e-12)
    head = [replace(h, score=(h.score - low) / spread + weight * c)
            for h, c in zip(hits, coverages, strict=False)]
    return sorted(head, key=lambda h: -h.score) + [
        replace(h, score=(h.score - low) / spread) for h in hits[depth:]]
