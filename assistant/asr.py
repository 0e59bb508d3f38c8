"""Speech recognition with faster-whisper (Whisper in CTranslate2).

This module owns the one WhisperModel instance, so the cascade, corpus transcription and the
S2R paths share loaded weights instead of loading the model once each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from assistant.models import resolve_whisper
from assistant.settings import Settings


@dataclass(frozen=True)
class Transcript:
    text: str
    avg_logprob: float  # mean token log-probability over segments (confidence)


class Transcriber:
    """Plain full-window Whisper transcription: the cascade baseline and corpus transcripts."""

    def __init__(self, settings: Settings) -> None:
        from faster_whisper import WhisperModel

        self.location = resolve_whisper(settings.whisper_model)
        self.language = settings.asr_language or None
        self.beam_size = settings.asr_beam_size
        self.model = WhisperModel(
            self.location.ref,
            device="cpu",
            compute_type=settings.whisper_compute_type,
            cpu_threads=settings.cpu_threads,
            local_files_only=self.location.is_local,
        )

    def transcribe(self, audio: np.ndarray) -> Transcript:
        """Transcribe float32 16 kHz mono audio; empty text when nothing is recognised."""
        segments, _ = self.model.transcribe(
            audio,
            language=self.language,
            beam_size=self.beam_size,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        segments = list(segments)
        text = " ".join(s.text.strip() for s in segments).strip()
        logprob = float(np.mean([s.avg_logprob for s in segments])) if segments else float("-inf")
        return Transcript(text=text, avg_logprob=logprob)
