"""Speech recognition with faster-whisper (Whisper in CTranslate2).

This module owns the WhisperModel instances, so the cascade, corpus transcription and the S2R
paths share loaded weights instead of loading the model once each.  A second copy is loaded
only for a different thread count (the integrated S2R pass runs best on one thread), or for a
decoder pruned to a collection's word pieces (``decoder_vocab``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from assistant.models import resolve_whisper
from assistant.settings import Settings

if TYPE_CHECKING:
    from assistant.decoder_vocab import DecoderVocabulary


@dataclass(frozen=True)
class Transcript:
    text: str
    avg_logprob: float  # mean token log-probability over segments (confidence)


class Transcriber:
    """Plain full-window Whisper transcription: the cascade baseline and corpus transcripts."""

    def __init__(self, settings: Settings) -> None:
        self.location = resolve_whisper(settings.whisper_model)
        self.language = settings.asr_language or None
        self.beam_size = settings.asr_beam_size
        self.compute_type = settings.whisper_compute_type
        self.cache_dir = settings.cache_dir
        self.model = self._load(settings.cpu_threads)
        self._models = {settings.cpu_threads: self.model}
        self._pruned: dict[tuple[int, str], object] = {}

    def _load(self, threads: int):
        from faster_whisper import WhisperModel

        return WhisperModel(self.location.ref, device="cpu", compute_type=self.compute_type,
                            cpu_threads=threads, local_files_only=self.location.is_local)

    def model_with_threads(self, threads: int):
        """The Whisper model run by ``threads`` CPU threads: ``model`` itself for its own count,
        else a copy loaded once (tiny.en in int8: ~40 MB)."""
        if threads not in self._models:
            self._models[threads] = self._load(threads)
        return self._models[threads]

    @property
    def model_dir(self) -> Path:
        """The model's local directory (a hub id resolves to its downloaded copy)."""
        if self.location.is_local:
            return Path(self.location.ref)
        from faster_whisper.utils import download_model

        return Path(download_model(self.location.ref, local_files_only=True))

    def decoder_model(self, threads: int, vocabulary: DecoderVocabulary | None = None):
        """The ``ctranslate2.models.Whisper`` run by ``threads`` threads, with the full
        vocabulary or pruned to ``vocabulary`` (written into the cache once, loaded once)."""
        if vocabulary is None:
            return self.model_with_threads(threads).model
        key = (threads, vocabulary.key)
        if key not in self._pruned:
            import ctranslate2

            from assistant.decoder_vocab import pruned_model_dir

            path = pruned_model_dir(self.model_dir, vocabulary, self.cache_dir)
            self._pruned[key] = ctranslate2.models.Whisper(
                str(path), device="cpu", compute_type=self.compute_type, intra_threads=threads)
        return self._pruned[key]

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
