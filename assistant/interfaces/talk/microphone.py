"""Where the voice loop's audio comes from: a microphone, or a recording played at real-time
pace (``--input FILE`` or ``-`` for standard input), which is how the loop runs headless.

Both yield short float32 16 kHz blocks.  A recording is followed by a little silence so its
last turn is endpointed like a live one.
"""

from __future__ import annotations

import queue
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from assistant.speech.audio import SAMPLE_RATE, iter_audio_blocks

BLOCK_S = 0.03
Clock = Callable[[], float]


class NoInputDeviceError(RuntimeError):
    """No microphone (PortAudio finds no input device) or the chosen one does not exist."""


class FileInput:
    """A recording, delivered block by block no faster than real time on ``clock``."""

    def __init__(self, path: str, clock: Clock, tail_silence_s: float = 1.5,
                 realtime: bool = True) -> None:
        self.path = path
        self.clock = clock
        self.tail_silence_s = tail_silence_s
        self.realtime = realtime
        self.closed = False

    def _samples(self) -> Iterator[np.ndarray]:
        source = sys.stdin.buffer if self.path == "-" else Path(self.path)
        yield from iter_audio_blocks(source, block_seconds=1.0)
        yield np.zeros(int(self.tail_silence_s * SAMPLE_RATE), np.float32)

    def blocks(self) -> Iterator[np.ndarray]:
        step = int(BLOCK_S * SAMPLE_RATE)
        delivered = 0
        for chunk in self._samples():
            for i in range(0, len(chunk), step):
                if self.closed:
                    return
                block = chunk[i:i + step]
                delivered += len(block)
                if self.realtime:
                    wait = delivered / SAMPLE_RATE - self.clock()
                    if wait > 0:
                        time.sleep(wait)
                yield block

    def close(self) -> None:
        self.closed = True


def input_devices() -> list[tuple[int, str]]:
    """(index, name) of every PortAudio device with input channels."""
    import sounddevice

    return [(i, d["name"]) for i, d in enumerate(sounddevice.query_devices())
            if d.get("max_input_channels", 0) > 0]


def output_devices() -> list[tuple[int, str]]:
    import sounddevice

    return [(i, d["name"]) for i, d in enumerate(sounddevice.query_devices())
            if d.get("max_output_channels", 0) > 0]


class MicrophoneInput:
    """A live microphone through PortAudio; blocks arrive as the device delivers them."""

    def __init__(self, device: int | str | None = None) -> None:
        try:
            import sounddevice
        except OSError as exc:  # the Python package is there, the PortAudio library is not
            raise NoInputDeviceError(f"PortAudio is missing ({exc}): apt-get install "
                                     "libportaudio2, or use --input FILE") from exc
        if not input_devices():
            raise NoInputDeviceError("no audio input device found; connect a microphone, or "
                                     "play a recording with --input FILE")
        self._queue: queue.Queue[np.ndarray | None] = queue.Queue()
        try:
            self._stream = sounddevice.InputStream(
                samplerate=SAMPLE_RATE, channels=1, dtype="float32", device=device,
                blocksize=int(BLOCK_S * SAMPLE_RATE),
                callback=lambda data, *_: self._queue.put(data[:, 0].copy()))
        except (ValueError, sounddevice.PortAudioError) as exc:
            raise NoInputDeviceError(f"cannot open input device {device!r}: {exc} "
                                     "(see `s2r talk --list-devices`)") from exc
        self._stream.start()

    def blocks(self) -> Iterator[np.ndarray]:
        while (block := self._queue.get()) is not None:
            yield block

    def close(self) -> None:
        self._stream.stop()
        self._stream.close()
        self._queue.put(None)
