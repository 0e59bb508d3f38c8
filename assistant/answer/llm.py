"""Which model answers: a configured endpoint, else the bundled local model, else none.

``open_llm`` is called once per process (lazily, by the runtime) and the result is shared by
the CLI, the voice loop and the HTTP service; ``None`` config means "answer extractively".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from assistant.answer.chat_client import ChatClient, ChatConfig, LLMError
from assistant.answer.context import read_ahead_messages
from assistant.answer.local_llm import LocalLLMServer
from assistant.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class LLMBackend:
    config: ChatConfig | None  # None: no model; answers are extractive
    server: LocalLLMServer | None = None  # the child process, when s2r runs the model itself

    @property
    def description(self) -> str:
        if self.config is None:
            return "none (extractive answers)"
        if self.server is not None:
            server = self.server.server_binary or "xllamacpp"
            return f"local {self.server.gguf.name} ({self.server.threads} threads, {server})"
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
    config = ChatConfig.from_settings(settings, url=url, model=server.model)
    _read_system_prompt(config)
    return LLMBackend(config, server)


def _read_system_prompt(config: ChatConfig) -> None:
    """Have the new local server read the system prompt once, at start-up: it begins every
    prompt, so llama.cpp keeps it and the first question reads only its own part."""
    chat = ChatClient(config)
    try:
        chat.complete(read_ahead_messages(), max_tokens=1)
    except LLMError as exc:  # the first question will read it instead
        log.warning("the local model could not read the system prompt ahead: %s", exc)
    finally:
        chat.close()
