"""Speech recognition with faster-whisper (Whisper in CTranslate2).

This module owns the WhisperModel instances, so the cascade, corpus transcription and the S2R
paths share loaded weights instead of loading the model once each.  A second copy is loaded
only for a different thread count (the integrated S2R pass runs best on one thread), for the
integrated decode's adapted decoder (``decoder_adapter``), or for a decoder pruned to a
collection's word pieces (``decoder_vocab``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from assistant.models import is_bundled_whisper, resolve_whisper
from assistant.settings import Settings

if TYPE_CHECKING:
    from assistant.speech.decoder_vocab import DecoderVocabulary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Transcript:
    text: str
    avg_logprob: float  # mean token log-probability over segments (confidence)


class Transcriber:
    """Plain full-window Whisper transcription: the cascade baseline and corpus transcripts."""

    def __init__(self, settings: Settings) -> None:
        self.location = resolve_whisper(settings.whisper_model, settings.cache_dir)
        self.language = settings.tuning.asr_language or None
        self.beam_size = settings.tuning.asr_beam_size
        self.compute_type = settings.tuning.whisper_compute_type
        self.cache_dir = settings.cache_dir
        self.adapter_setting = settings.decoder_adapter.strip()
        self.custom_whisper = not is_bundled_whisper(settings.whisper_model)
        self.model = self._load(settings.cpu_threads)
        self._models = {settings.cpu_threads: self.model}
        self._decoders: dict[tuple[int, str, str], object] = {}
        self._decoder_dir: Path | None = None
        self._adapter_id = "none"
        self._adapter_reads_context = False

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

    @property
    def decoder_dir(self) -> Path:
        """The model the integrated decode runs: ``model_dir`` with the decoder adapter merged
        (a cached copy), or ``model_dir`` itself when the adapter is off.  Raises
        ``DecoderAdapterError`` for an adapter that is missing, corrupt or made for another
        model."""
        if self._decoder_dir is None:
            from assistant.speech.decoder_adapter import (
                BUNDLED_ADAPTER,
                DEFAULT_ADAPTER,
                DecoderAdapter,
                adapted_model_dir,
            )

            bundled = self.adapter_setting.lower() in ("", BUNDLED_ADAPTER)
            if self.adapter_setting.lower() == "none" or (bundled and self.custom_whisper):
                self._decoder_dir = self.model_dir  # the bundled adapter fits the bundled model
            else:
                adapter = DecoderAdapter.load(DEFAULT_ADAPTER if bundled else self.adapter_setting)
                self._decoder_dir = adapted_model_dir(self.model_dir, adapter, self.cache_dir)
                self._adapter_id = f"{adapter.card.get('version')}:{adapter.sha256[:12]}"
                self._adapter_reads_context = adapter.reads_context
                log.info("integrated decode: decoder adapter %s", self._adapter_id)
        return self._decoder_dir

    @property
    def adapter_id(self) -> str:
        """``version:sha256 prefix`` of the integrated decode's adapter, or ``none``."""
        self.decoder_dir  # noqa: B018 (resolves and merges the adapter once)
        return self._adapter_id

    @property
    def adapter_reads_context(self) -> bool:
        """Whether the adapter also serves decodes after a previous-text prompt."""
        self.decoder_dir  # noqa: B018
        return self._adapter_reads_context

    def decoder_model(self, threads: int, vocabulary: DecoderVocabulary | None = None,
                      adapted: bool = True):
        """The ``ctranslate2.models.Whisper`` of the integrated decode (``decoder_dir``, or
        with ``adapted=False`` the packaged model), run by ``threads`` threads, with the full
        vocabulary or pruned to ``vocabulary`` (written into the cache once, loaded once)."""
        source = self.decoder_dir if adapted else self.model_dir
        if vocabulary is None and source == self.model_dir:
            return self.model_with_threads(threads).model
        key = (threads, vocabulary.key if vocabulary else "", str(source))
        if key not in self._decoders:
            import ctranslate2

            from assistant.speech.decoder_vocab import pruned_model_dir

            path = pruned_model_dir(source, vocabulary, self.cache_dir) if vocabulary else source
            self._decoders[key] = ctranslate2.models.Whisper(
                str(path), device="cpu", compute_type=self.compute_type, intra_threads=threads)
        return self._decoders[key]

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
