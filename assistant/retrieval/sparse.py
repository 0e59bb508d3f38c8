"""The sparse lexical legs: BM25 weights of words and of character n-grams, as Qdrant sparse
vectors.

Dense embeddings blur rare names; an exact word match on "Mocha" or "Bardeen" is what BM25 is
good at.  Qdrant's own BM25 tokenizer (English stemming and stop words, via qdrant-edge) makes
the term-frequency side of documents; the collection's IDF modifier supplies the rest at query
time, for the embedded and the server store alike.  A spoken query's n-best hypotheses become
one sparse query in which each term weighs as much as the hypotheses that contain it.

Recognition errors break words, not sounds: "Bardine" for "Bardeen", "jonny cash" for "Johnny
Cash", a name run together or split.  Character 4-grams (word edges marked) still share most
of their grams with the right word, so ``CharGramEncoder`` gives a second, error-tolerant BM25
leg over the same readings.  Some errors keep the sounds but few letters ("organ" for
"Oregon", "zavier" for "Xavier"): ``SoundKeyEncoder`` matches words by their Metaphone keys.
"""

from __future__ import annotations

import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jellyfish
import qdrant_edge as qe

from assistant.text import terms

AVG_DOC_TOKENS = 64.0  # typical chunk length after stop-word removal (BM25 length norm)
# 4-grams alone retrieved as well as 3-, 4- and 5-grams together on the tuning set, with a
# third of the terms per chunk (benchmarks/results/tune-legs.md).
GRAM_SIZES = (4,)
AVG_DOC_GRAMS = 480.0  # grams of an average benchmark passage (480 characters)
AVG_DOC_SOUNDS = 300.0  # sound terms of an average benchmark passage (325 measured on dev's)
SOUND_GRAM = 3  # key n-grams across words: a name heard split or run together
BM25_K1 = 1.2
BM25_B = 0.75


@dataclass(frozen=True)
class SparseVector:
    indices: tuple[int, ...]
    values: tuple[float, ...]

    def __bool__(self) -> bool:
        return bool(self.indices)


class LexicalEncoder:
    def __init__(self, avg_len: float = AVG_DOC_TOKENS) -> None:
        self._bm25 = qe.Bm25(qe.Bm25Config(avg_len=avg_len, language="english"))

    def document(self, text: str) -> SparseVector:
        vector = self._bm25.embed_document(text)
        return SparseVector(tuple(vector.indices), tuple(vector.values))

    def query(self, texts: Sequence[str], weights: Sequence[float] | None = None
              ) -> SparseVector:
        """One sparse query from alternative readings, each term weighted by the total
        weight of the readings that contain it."""
        return _combine([self._bm25.embed_query(t).indices for t in texts], weights)


def _combine(readings: Sequence[Sequence[int]], weights: Sequence[float] | None) -> SparseVector:
    """Each term of any reading, weighted by the total weight of the readings holding it."""
    weights = weights if weights is not None else [1.0] * len(readings)
    total: dict[int, float] = defaultdict(float)
    for indices, weight in zip(readings, weights, strict=True):
        for index in set(indices):
            total[index] += float(weight)
    ordered = sorted(total)
    return SparseVector(tuple(ordered), tuple(total[i] for i in ordered))


def char_grams(text: str, sizes: Sequence[int] = GRAM_SIZES) -> Counter[str]:
    """Character n-grams of lower-cased words; a space marks each word's edges so that a
    gram at the start of a word differs from one inside it."""
    words = terms(text)
    padded = f" {' '.join(words)} " if words else ""
    return Counter(padded[i : i + n] for n in sizes for i in range(len(padded) - n + 1))


def word_grams(word: str, sizes: Sequence[int] = GRAM_SIZES) -> set[str]:
    """One word's distinct grams, as ``char_grams`` makes them; a shortcut for matching many
    single words (``coverage``) without the tokenizing and counting."""
    padded = f" {word} "
    return {padded[i : i + n] for n in sizes for i in range(len(padded) - n + 1)}


def sound_keys(text: str) -> Counter[str]:
    """Each word's Metaphone key (how it sounds: "oregon" and "organ" are both ORKN), and
    the n-grams of all keys run together, so a name heard as two words ("mozam beak") still
    shares most of them with the one word ("Mozambique")."""
    keys = [k for k in (jellyfish.metaphone(w) for w in terms(text)) if k]
    run = "".join(keys)
    return Counter([f"={k}" for k in keys]
                   + [run[i : i + SOUND_GRAM] for i in range(len(run) - SOUND_GRAM + 1)])


def gram_id(gram: str) -> int:
    """A stable 32-bit id (Python's ``hash`` differs between processes)."""
    return zlib.crc32(gram.encode("utf-8"))


class TermBm25Encoder:
    """BM25 over the terms that ``terms`` finds in a text: the document side saturates and
    length-normalizes their counts; the collection's IDF modifier weighs rare terms up at
    query time."""

    def __init__(self, terms: Callable[[str], Counter[str]], avg_len: float) -> None:
        self.terms = terms
        self.avg_len = avg_len

    def document(self, text: str) -> SparseVector:
        counts = Counter({gram_id(g): c for g, c in self.terms(text).items()})
        length = sum(counts.values())
        norm = BM25_K1 * (1 - BM25_B + BM25_B * length / self.avg_len)
        ordered = sorted(counts)
        return SparseVector(tuple(ordered),
                            tuple(counts[i] * (BM25_K1 + 1) / (counts[i] + norm)
                                  for i in ordered))

    def query(self, texts: Sequence[str], weights: Sequence[float] | None = None
              ) -> SparseVector:
        return _combine([[gram_id(g) for g in self.terms(t)] for t in texts], weights)


class CharGramEncoder(TermBm25Encoder):
    """BM25 over character n-grams (the ``chars`` leg)."""

    def __init__(self, avg_len: float = AVG_DOC_GRAMS) -> None:
        super().__init__(char_grams, avg_len)


class SoundKeyEncoder(TermBm25Encoder):
    """BM25 over Metaphone keys and their n-grams (the ``sound`` leg)."""

    def __init__(self, avg_len: float = AVG_DOC_SOUNDS) -> None:
        super().__init__(sound_keys, avg_len)
