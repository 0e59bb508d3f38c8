"""Builds each heavy part once, on first use, from one Settings object.

The CLI, the tests and the benchmarks all go through this, so a command that only needs the
store never loads Whisper, and nothing is loaded twice.  ``with_settings`` opens another store
(another data dir or collection) while sharing the loaded models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from assistant.settings import Settings

if TYPE_CHECKING:
    from assistant.asr import Transcriber
    from assistant.embedder import TextEmbedder
    from assistant.store.base import Store


class Runtime:
    def __init__(self, settings: Settings, *, embedder: TextEmbedder | None = None,
                 transcriber: Transcriber | None = None) -> None:
        self.settings = settings
        self._embedder = embedder
        self._transcriber = transcriber
        self._store: Store | None = None

    @property
    def embedder(self) -> TextEmbedder:
        if self._embedder is None:
            from assistant.embedder import TextEmbedder

            self._embedder = TextEmbedder(self.settings)
        return self._embedder

    @property
    def transcriber(self) -> Transcriber:
        if self._transcriber is None:
            from assistant.asr import Transcriber

            self._transcriber = Transcriber(self.settings)
        return self._transcriber

    @property
    def store(self) -> Store:
        if self._store is None:
            from assistant.store import open_store

            self._store = open_store(self.settings, self.embedder.dim, self.embedder.model_id)
        return self._store

    def with_settings(self, **changes: Any) -> Runtime:
        """A runtime over changed settings (e.g. another data dir) sharing the loaded models."""
        return Runtime(self.settings.replace(**changes), embedder=self._embedder,
                       transcriber=self._transcriber)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
