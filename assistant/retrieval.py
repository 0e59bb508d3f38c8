"""Query paths: text → embedding → search; spoken questions through integrated S2R (the
default: one reduced-window encoder pass, n-best fused vector) or the plain cascade baseline."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from assistant.runtime import Runtime
from assistant.s2r import nbest_weights, query_vector
from assistant.store.base import Hit
from assistant.vad import VadConfig, contains_speech


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]
    transcript: str | None = None  # what the spoken query was heard as
    timings_ms: dict[str, float] = field(default_factory=dict)


class Retriever:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def search_text(self, query: str, top_k: int = 10, kind: str | None = None) -> SearchResult:
        """The text retriever: MiniLM vector and BM25 terms of the query, fused by rank."""
        t0 = time.perf_counter()
        dense = self.runtime.embedder.embed_one(query)
        sparse = self.runtime.lexical.query([query])
        t1 = time.perf_counter()
        hits = self.runtime.store.search_fused(dense, sparse, top_k=top_k, kind=kind)
        t2 = time.perf_counter()
        return SearchResult(hits, None, {"embed": (t1 - t0) * 1e3, "search": (t2 - t1) * 1e3})

    def _silent(self, audio: np.ndarray) -> SearchResult | None:
        """An empty result for a query without speech (nothing to recognise), else None."""
        t0 = time.perf_counter()
        if contains_speech(audio, VadConfig.from_settings(self.runtime.settings)):
            return None
        return SearchResult([], "", {"vad": (time.perf_counter() - t0) * 1e3})

    def search_audio_cascade(self, audio: np.ndarray, top_k: int = 10, kind: str | None = None
                             ) -> SearchResult:
        """The plain cascade: full-window Whisper transcript, then text retrieval."""
        if (silent := self._silent(audio)) is not None:
            return silent
        t0 = time.perf_counter()
        transcript = self.runtime.transcriber.transcribe(audio).text
        t1 = time.perf_counter()
        if not transcript:
            return SearchResult([], "", {"asr": (t1 - t0) * 1e3})
        result = self.search_text(transcript, top_k, kind)
        return SearchResult(result.hits, transcript, {"asr": (t1 - t0) * 1e3, **result.timings_ms})

    def search_audio(self, audio: np.ndarray, top_k: int = 10, kind: str | None = None
                     ) -> SearchResult:
        """Integrated S2R: guarded reduced-window decode; the n-best list becomes a fused
        dense vector and a weighted BM25 query, searched together and fused by rank.  Audio
        without speech returns no hits and an empty transcript."""
        if (silent := self._silent(audio)) is not None:
            return silent
        recognition = self.runtime.recognizer.recognize(audio)
        if not recognition.hypotheses or not recognition.text:
            return SearchResult([], "", recognition.timings_ms)
        t0 = time.perf_counter()
        weights = nbest_weights(recognition.hypotheses)
        texts = [h.text for h in recognition.hypotheses]
        dense = query_vector(recognition.hypotheses, self.runtime.embedder.embed, weights)
        sparse = self.runtime.lexical.query(texts, weights)
        t1 = time.perf_counter()
        hits = self.runtime.store.search_fused(dense, sparse, top_k=top_k, kind=kind)
        t2 = time.perf_counter()
        return SearchResult(hits, recognition.text, {**recognition.timings_ms,
                                                     "embed": (t1 - t0) * 1e3,
                                                     "search": (t2 - t1) * 1e3})
