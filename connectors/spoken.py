"""Spoken corpora: a recording becomes chunks of consecutive utterances, each with its time span,
transcript and (with a speller: the e2e head) spelling.

VAD gives utterances (often one sentence each); consecutive utterances are packed into chunks of
up to ``max_chunk_s`` seconds, so a chunk carries enough context to match a question, stays
inside one 30 s Whisper window, and still points to a precise span of the recording.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from assistant.speech.audio import AudioDecodeError, iter_audio_blocks
from assistant.speech.vad import VadConfig, segment_stream


class _Transcribes(Protocol):
    def transcribe(self, audio: np.ndarray): ...


Speller = Callable[[np.ndarray], str]


@dataclass(frozen=True)
class SpokenSegment:
    start: float
    end: float
    transcript: str  # "" when transcription is off
    spelling: str = ""  # what the e2e head spelled ("" without a speller)


def read_spoken(path: Path, vad: VadConfig, transcriber: _Transcribes | None,
                max_chunk_s: float = 20.0, speller: Speller | None = None
                ) -> Iterator[SpokenSegment]:
    """Stream chunks of one recording; raises AudioDecodeError if none holds speech."""
    group: list[SpokenSegment] = []
    found = False
    for utterance in _utterances(path, vad, transcriber, speller):
        if group and utterance.end - group[0].start > max_chunk_s:
            yield _join(group)
            group = []
        group.append(utterance)
        found = True
    if group:
        yield _join(group)
    if not found:
        raise AudioDecodeError(f"{path}: no speech found (silent or noise only)")


def _utterances(path: Path, vad: VadConfig, transcriber: _Transcribes | None,
                speller: Speller | None) -> Iterator[SpokenSegment]:
    for segment in segment_stream(iter_audio_blocks(path), vad):
        text = transcriber.transcribe(segment.audio).text if transcriber else ""
        if transcriber and not text:
            continue  # VAD fired on noise Whisper heard nothing in
        yield SpokenSegment(segment.start, segment.end, text,
                            speller(segment.audio) if speller else "")


def _join(group: list[SpokenSegment]) -> SpokenSegment:
    text = " ".join(s.transcript for s in group if s.transcript)
    spelling = " ".join(s.spelling for s in group if s.spelling)
    return SpokenSegment(group[0].start, group[-1].end, text, spelling)
