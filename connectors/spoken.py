"""Spoken corpora: a recording becomes VAD segments, each with its time span and transcript."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from assistant.audio import AudioDecodeError, iter_audio_blocks
from assistant.vad import VadConfig, segment_stream


class _Transcribes(Protocol):
    def transcribe(self, audio: np.ndarray): ...


@dataclass(frozen=True)
class SpokenSegment:
    start: float
    end: float
    transcript: str  # "" when transcription is off


def read_spoken(path: Path, vad: VadConfig, transcriber: _Transcribes | None
                ) -> Iterator[SpokenSegment]:
    """Stream segments of one recording; raises AudioDecodeError if none holds speech."""
    found = False
    for segment in segment_stream(iter_audio_blocks(path), vad):
        text = transcriber.transcribe(segment.audio).text if transcriber else ""
        if transcriber and not text:
            continue  # VAD fired on noise Whisper heard nothing in
        found = True
        yield SpokenSegment(segment.start, segment.end, text)
    if not found:
        raise AudioDecodeError(f"{path}: no speech found (silent or noise only)")
