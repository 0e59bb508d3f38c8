"""Builds each heavy part once, on first use, from one Settings object.

The CLI, the tests and the benchmarks all go through this, so a command that only needs the
store never loads Whisper, and nothing is loaded twice.
"""

from __future__ import annotations

from functools import cached_property

from assistant.settings import Settings


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def embedder(self):
        from assistant.embedder import TextEmbedder

        return TextEmbedder(self.settings)

    @cached_property
    def transcriber(self):
        from assistant.asr import Transcriber

        return Transcriber(self.settings)

    @cached_property
    def store(self):
        from assistant.store import open_store

        return open_store(self.settings, self.embedder.dim, self.embedder.model_id)

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()
            del self.__dict__["store"]
