"""The sparse lexical leg: BM25 term weights as Qdrant sparse vectors.

Dense embeddings blur rare names; an exact word match on "Mocha" or "Bardeen" is what BM25 is
good at.  Qdrant's own BM25 tokenizer (English stemming and stop words, via qdrant-edge) makes
the term-frequency side of documents; the collection's IDF modifier supplies the rest at query
time, for the embedded and the server store alike.  A spoken query's n-best hypotheses become
one sparse query in which each term weighs as much as the hypotheses that contain it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import qdrant_edge as qe

AVG_DOC_TOKENS = 64.0  # typical chunk length after stop-word removal (BM25 length norm)


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
        weights = weights if weights is not None else [1.0] * len(texts)
        total: dict[int, float] = defaultdict(float)
        for text, weight in zip(texts, weights, strict=True):
            for index in self._bm25.embed_query(text).indices:
                total[index] += float(weight)
        ordered = sorted(total)
        return SparseVector(tuple(ordered), tuple(total[i] for i in ordered))
