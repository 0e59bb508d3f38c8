"""Which model answers: a configured endpoint, else the bundled local model, else none.

``open_llm`` is called once per process (lazily, by the runtime) and the result is shared by
the CLI, the voice loop and the HTTP service; ``None`` config means "answer extractively".
"""

from __future__ import annotations

from dataclasses import dataclass

from assistant.generator import ChatConfig
from assistant.local_llm import LocalLLMServer
from assistant.settings import Settings


@dataclass
class LLMBackend:
    config: ChatConfig | None  # None: no model; answers are extractive
    server: LocalLLMServer | None = None  # the child process, when s2r runs the model itself

    @property
    def description(self) -> str:
        if self.config is None:
            return "none (extractive answers)"
        if self.server is not None:
            return f"local {self.server.gguf.name} ({self.server.threads} threads)"
        return f"{self.config.url} ({self.config.model or 'default model'})"

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()


def open_llm(settings: Settings) -> LLMBackend:
    if settings.llm_url:
        return LLMBackend(ChatConfig.from_settings(settings))
    server = LocalLLMServer.from_settings(settings)
    if server is None:
        return LLMBackend(None)
    url = server.start()
    return LLMBackend(ChatConfig.from_settings(settings, url=url, model=server.model), server)
