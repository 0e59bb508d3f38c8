"""Builds each heavy part once, on first use, from one Settings object.

The CLI, the tests and the benchmarks all go through this, so a command that only needs the
store never loads Whisper, and nothing is loaded twice.  ``with_settings`` opens another store
(another data dir or collection) while sharing the loaded models.
"""

from __future__ import annotations

import hashlib
import logging
from functools import cached_property
from typing import TYPE_CHECKING, Any

from assistant.models import is_bundled_whisper
from assistant.settings import Settings

if TYPE_CHECKING:
    from assistant.answer.llm import LLMBackend
    from assistant.index.manifest import Manifest
    from assistant.retrieval.embedder import TextEmbedder
    from assistant.retrieval.sparse import CharGramEncoder, LexicalEncoder, SoundKeyEncoder
    from assistant.retrieval.store.base import Store
    from assistant.speech.decoder_vocab import DecoderVocabulary
    from assistant.speech.e2e import CTCHead
    from assistant.speech.integrated import IntegratedRecognizer
    from assistant.speech.whisper import Transcriber

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self, settings: Settings, *, embedder: TextEmbedder | None = None,
                 transcriber: Transcriber | None = None) -> None:
        self.settings = settings
        self._embedder = embedder
        self._transcriber = transcriber
        self._recognizer: IntegratedRecognizer | None = None
        self._query_recognizer: IntegratedRecognizer | None = None
        self._store: Store | None = None
        self._manifest: Manifest | None = None
        self._llm: LLMBackend | None = None
        self._e2e: CTCHead | None = None

    @property
    def embedder(self) -> TextEmbedder:
        if self._embedder is None:
            from assistant.retrieval.embedder import TextEmbedder

            self._embedder = TextEmbedder(self.settings)
        return self._embedder

    @property
    def transcriber(self) -> Transcriber:
        if self._transcriber is None:
            from assistant.speech.whisper import Transcriber

            self._transcriber = Transcriber(self.settings)
        return self._transcriber

    @cached_property
    def lexical(self) -> LexicalEncoder:
        from assistant.retrieval.sparse import LexicalEncoder

        return LexicalEncoder()

    @cached_property
    def char_grams(self) -> CharGramEncoder:
        from assistant.retrieval.sparse import CharGramEncoder

        return CharGramEncoder()

    @cached_property
    def sound_keys(self) -> SoundKeyEncoder:
        from assistant.retrieval.sparse import SoundKeyEncoder

        return SoundKeyEncoder()

    def sparse_encoder(self, name: str) -> LexicalEncoder | CharGramEncoder | SoundKeyEncoder:
        """The encoder of the sparse vector ``name`` (store.base.SPARSE_NAMES)."""
        from assistant.retrieval.store.base import CHARS_VECTOR, SOUND_VECTOR, SPARSE_VECTOR

        return getattr(self, {SPARSE_VECTOR: "lexical", CHARS_VECTOR: "char_grams",
                              SOUND_VECTOR: "sound_keys"}[name])

    @property
    def recognizer(self) -> IntegratedRecognizer:
        """The integrated S2R decode; it loads Whisper through ``transcriber`` (shared weights
        when the thread counts match)."""
        if self._recognizer is None:
            from assistant.speech.integrated import DecodeConfig, IntegratedRecognizer

            self._recognizer = IntegratedRecognizer(self.transcriber,
                                                    DecodeConfig.from_settings(self.settings))
        return self._recognizer

    @property
    def query_recognizer(self) -> IntegratedRecognizer:
        """The integrated S2R decode of spoken queries: with ``s2r_vocabulary=collection`` its
        decoder only says this collection's word pieces (``decoder_vocab``), else (or when the
        pruned model cannot be made) it is ``recognizer``."""
        if self._query_recognizer is None:
            from assistant.speech.ct2_file import CT2FormatError
            from assistant.speech.integrated import DecodeConfig, IntegratedRecognizer

            self._query_recognizer = self.recognizer
            try:  # a cache that cannot be written or an odd model costs speed, not the query
                vocabulary = self._decoder_vocabulary()
                if vocabulary is not None:
                    self._query_recognizer = IntegratedRecognizer(
                        self.transcriber, DecodeConfig.from_settings(self.settings), vocabulary)
            except (CT2FormatError, OSError, RuntimeError) as exc:
                log.warning("spoken queries use the full decoder vocabulary: %s", exc)
        return self._query_recognizer

    def forget_query_vocabulary(self) -> None:
        """The collection changed: the next spoken query reads its word pieces again."""
        self._query_recognizer = None

    def _decoder_vocabulary(self) -> DecoderVocabulary | None:
        """This collection's word pieces, collected once per collection state into the cache."""
        s = self.settings
        whisper = self.transcriber.model
        if s.tuning.s2r_vocabulary == "full":
            return None
        count = self.store.count()
        if not count:
            return None
        from assistant.speech.decoder_vocab import DecoderVocabulary, piece_count

        # size and recorded sources: a document replaced by one of as many chunks but other
        # words must not be decoded with the old words (written by another process, say)
        where = f"{self.transcriber.location.ref}\0{s.qdrant_url or s.data_dir.resolve()}" \
                f"\0{s.collection}\0{count}\0{self.manifest.fingerprint()}"
        path = (s.cache_dir / "decoder-vocab" /
                f"{s.collection}-{hashlib.sha256(where.encode()).hexdigest()[:16]}.npy")
        if path.exists():
            return DecoderVocabulary.load(path)
        log.info("reading the word pieces of %d chunks for the spoken-query decoder", count)
        vocabulary = DecoderVocabulary.from_texts(self.store.texts(), whisper.hf_tokenizer,
                                                  piece_count(self.transcriber.model_dir))
        vocabulary.save(path)
        return vocabulary

    @property
    def e2e_enabled(self) -> bool:
        """Off with ``e2e_model=none``, and by default with a Whisper model other than
        tiny.en: the bundled head reads tiny.en's 384-wide encoder frames only."""
        value = self.settings.e2e_model.strip()
        if value.lower() == "none":
            return False
        return bool(value) or is_bundled_whisper(self.settings.whisper_model)

    @property
    def e2e(self) -> CTCHead:
        """The e2e CTC head; raises ``E2EModelError`` if it is off, missing or corrupt."""
        if self._e2e is None:
            from assistant.speech.e2e import DEFAULT_MODEL, CTCHead, E2EModelError

            if not self.e2e_enabled:
                raise E2EModelError("the e2e model is off (S2R_E2E_MODEL=none)")
            self._e2e = CTCHead.load(self.settings.e2e_model or DEFAULT_MODEL)
        return self._e2e

    @property
    def store(self) -> Store:
        if self._store is None:
            from assistant.retrieval.store import open_store

            self._store = open_store(self.settings, self.embedder.dim, self.embedder.model_id)
        return self._store

    @property
    def manifest(self) -> Manifest:
        """Which sources of this collection are completely ingested (crash-safe re-runs)."""
        if self._manifest is None:
            from assistant.index.manifest import Manifest

            s = self.settings
            self._manifest = Manifest.for_collection(s.data_dir, s.qdrant_url or "embedded",
                                                     s.collection)
        return self._manifest

    @property
    def llm(self) -> LLMBackend:
        """The answer model; the first use may start the local model server (seconds)."""
        if self._llm is None:
            from assistant.answer.llm import open_llm

            self._llm = open_llm(self.settings)
        return self._llm

    def warm_up(self) -> None:
        """Load every model (and start the answer model) so the first question is not slow."""
        import numpy as np

        from assistant.speech.audio import SAMPLE_RATE

        self.embedder.embed(["warm up"])
        self.query_recognizer.recognize(np.zeros(SAMPLE_RATE, np.float32))
        self.store.stats()
        self.llm  # noqa: B018 (starts the local model server when one is used)

    def with_settings(self, **changes: Any) -> Runtime:
        """A runtime over changed settings (e.g. another data dir) sharing the loaded models."""
        settings = self.settings.replace(**changes)
        same_whisper = (settings.whisper_model, settings.tuning.whisper_compute_type,
                        settings.decoder_adapter) == (self.settings.whisper_model,
                                                      self.settings.tuning.whisper_compute_type,
                                                      self.settings.decoder_adapter)
        derived = Runtime(settings, embedder=self._embedder,
                          transcriber=self._transcriber if same_whisper else None)
        if same_whisper:
            derived._recognizer = self._recognizer
        if derived.settings.e2e_model == self.settings.e2e_model:
            derived._e2e = self._e2e
        return derived

    def close(self) -> None:
        if self._llm is not None:
            self._llm.close()
            self._llm = None
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._manifest is not None:
            self._manifest.close()
            self._manifest = None
