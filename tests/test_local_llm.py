"""The embedded answer model: resolving the bundled GGUF files and running llama.cpp's
OpenAI-compatible server as a child process."""

from __future__ import annotations

import pytest

from assistant.generator import ChatClient, ChatConfig
from assistant.local_llm import LocalLLMError, LocalLLMServer
from assistant.models import ModelNotFoundError, resolve_llm_gguf
from assistant.settings import Settings


def test_bundled_models_resolve(tmp_path):
    assert resolve_llm_gguf("none", tmp_path) is None
    small = resolve_llm_gguf("smollm2", tmp_path)
    assert small.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    with small.open("rb") as fh:
        assert fh.read(4) == b"GGUF"


def test_bad_model_paths_are_clear_errors(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no such file"):
        resolve_llm_gguf(str(tmp_path / "missing.gguf"), tmp_path)
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ModelNotFoundError, match="not a GGUF"):
        resolve_llm_gguf(str(tmp_path / "notes.txt"), tmp_path)


def test_a_corrupt_model_fails_to_start_with_the_server_output(tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + bytes(64))
    server = LocalLLMServer.from_settings(Settings(cache_dir=tmp_path, llm_gguf=str(broken)))
    with pytest.raises(LocalLLMError, match="exited while starting"):
        server.start(timeout_s=60)
    assert not server.healthy()


def test_local_server_answers_and_stops(cache_dir):
    server = LocalLLMServer.from_settings(Settings(cache_dir=cache_dir, llm_gguf="smollm2",
                                                   llm_max_tokens=8))
    with server:
        assert server.url.startswith("http://127.0.0.1:") and server.healthy()
        chat = ChatClient(ChatConfig(url=server.url, model=server.model, max_tokens=8))
        answer = chat.complete([{"role": "user", "content": "Say hello."}])
        assert answer.text.strip() and answer.finish_reason in ("stop", "length")
        chat.close()
    assert not server.healthy()
