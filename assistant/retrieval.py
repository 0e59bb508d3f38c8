"""Query paths: text → embedding → search, and the spoken cascade (Whisper → text search)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from assistant.runtime import Runtime
from assistant.store.base import TEXT_VECTOR, Hit


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]
    transcript: str | None = None  # what the spoken query was heard as
    timings_ms: dict[str, float] = field(default_factory=dict)


class Retriever:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def search_text(self, query: str, top_k: int = 10, kind: str | None = None) -> SearchResult:
        t0 = time.perf_counter()
        vector = self.runtime.embedder.embed_one(query)
        t1 = time.perf_counter()
        hits = self.runtime.store.search(vector, using=TEXT_VECTOR, top_k=top_k, kind=kind)
        t2 = time.perf_counter()
        return SearchResult(hits, None, {"embed": (t1 - t0) * 1e3, "search": (t2 - t1) * 1e3})

    def search_audio_cascade(self, audio: np.ndarray, top_k: int = 10, kind: str | None = None
                             ) -> SearchResult:
        """The plain cascade: full-window Whisper transcript, then text retrieval."""
        t0 = time.perf_counter()
        transcript = self.runtime.transcriber.transcribe(audio).text
        t1 = time.perf_counter()
        if not transcript:
            return SearchResult([], "", {"asr": (t1 - t0) * 1e3})
        result = self.search_text(transcript, top_k, kind)
        return SearchResult(result.hits, transcript, {"asr": (t1 - t0) * 1e3, **result.timings_ms})
