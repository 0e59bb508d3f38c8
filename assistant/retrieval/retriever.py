"""Query paths: text → dense, BM25, character-4-gram and sound legs → one fused search, whose
top hits a short question reorders by how much of it each covers (``coverage``); spoken
questions through integrated S2R (the default: one reduced-window encoder pass, the n-best
list's weighted legs), the e2e CTC head, their hybrid, or the plain cascade baseline."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from assistant.retrieval.coverage import rerank_by_coverage
from assistant.retrieval.store.base import (
    CHARS_VECTOR,
    RRF_WEIGHTS,
    SOUND_VECTOR,
    SPARSE_VECTOR,
    SPEECH_VECTOR,
    TEXT_VECTOR,
    Hit,
    QueryLeg,
)
from assistant.runtime import Runtime
from assistant.speech.decode_context import candidate_context
from assistant.speech.integrated import (
    EncoderPass,
    Hypothesis,
    Recognition,
    nbest_weights,
    query_vector,
)
from assistant.speech.vad import VadConfig, contains_speech


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]
    transcript: str | None = None  # what the spoken query was heard as
    timings_ms: dict[str, float] = field(default_factory=dict)


def hybrid_readings(recognition: Recognition, spelling: str, share: float
                    ) -> tuple[list[str], np.ndarray]:
    """The decode's n-best readings with their posterior weights, plus the e2e spelling as
    one more reading weighted ``share`` (all of it when the decode heard nothing)."""
    readings = [(h.text, w) for h, w in zip(recognition.hypotheses,
                                            nbest_weights(recognition.hypotheses), strict=True)
                if h.text]
    texts = [text for text, _ in readings]
    weights = np.array([w for _, w in readings])
    if spelling:
        share = share if texts else 1.0
        texts.append(spelling)
        weights = np.append(weights / max(weights.sum(), 1e-12) * (1 - share), share)
    return texts, weights


def short_question(texts: list[str], max_words: int) -> bool:
    """Whether a question read as ``texts`` (best reading first) has at most ``max_words``
    words (0 = any length): on a long one the right words carry the search alone."""
    return bool(texts) and (not max_words or len(texts[0].split()) <= max_words)


class Retriever:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def search_text(self, query: str, top_k: int = 10, kind: str | None = None) -> SearchResult:
        """The text retriever: the query's MiniLM vector, BM25 terms and character 4-grams,
        fused in Qdrant (``fusion``: DBSF by default)."""
        t0 = time.perf_counter()
        legs = self.readings_legs([query], np.ones(1))
        return self._search(legs, top_k, kind, None, {"embed": (time.perf_counter() - t0) * 1e3},
                            ([query], np.ones(1)))

    def _silent(self, audio: np.ndarray) -> SearchResult | None:
        """An empty result for a query without speech (nothing to recognise), else None."""
        t0 = time.perf_counter()
        if contains_speech(audio, VadConfig.from_settings(self.runtime.settings)):
            return None
        return SearchResult([], "", {"vad": (time.perf_counter() - t0) * 1e3})

    def search_audio_cascade(self, audio: np.ndarray, top_k: int = 10, kind: str | None = None
                             ) -> SearchResult:
        """The plain cascade: full-window Whisper transcript, then text retrieval."""
        if (silent := self._silent(audio)) is not None:
            return silent
        t0 = time.perf_counter()
        transcript = self.runtime.transcriber.transcribe(audio).text
        t1 = time.perf_counter()
        if not transcript:
            return SearchResult([], "", {"asr": (t1 - t0) * 1e3})
        result = self.search_text(transcript, top_k, kind)
        return SearchResult(result.hits, transcript, {"asr": (t1 - t0) * 1e3, **result.timings_ms})

    def search_spoken(self, audio: np.ndarray, top_k: int = 10, kind: str | None = None
                      ) -> SearchResult:
        """A spoken question through the configured path (``spoken_retriever``)."""
        path = {"s2r": self.search_audio, "hybrid": self.search_audio_hybrid,
                "e2e": self.search_audio_e2e, "cascade": self.search_audio_cascade}
        return path[self.runtime.settings.spoken_retriever](audio, top_k, kind)

    def search_audio(self, audio: np.ndarray, top_k: int = 10, kind: str | None = None
                     ) -> SearchResult:
        """Integrated S2R: guarded reduced-window decode; the n-best list becomes a fused
        dense vector and a weighted BM25 query, searched together and fused by rank.  Audio
        without speech returns no hits and an empty transcript."""
        if (silent := self._silent(audio)) is not None:
            return silent
        recognition = self.runtime.query_recognizer.recognize(audio)
        if not recognition.hypotheses or not recognition.text:
            return SearchResult([], "", recognition.timings_ms)
        t0 = time.perf_counter()
        readings = ([h.text for h in recognition.hypotheses],
                    nbest_weights(recognition.hypotheses))
        legs = self.readings_legs(*readings)
        return self._search(legs, top_k, kind, recognition.text,
                            {**recognition.timings_ms, "embed": (time.perf_counter() - t0) * 1e3},
                            readings)

    def search_audio_e2e(self, audio: np.ndarray, top_k: int = 10, kind: str | None = None
                         ) -> SearchResult:
        """End-to-end: the encoder pass and the CTC head's spelling; no autoregressive
        decoding.  The spelling is matched by its character 4-grams against chunk text (its
        misspelt words match no BM25 term and blur the dense vector: 4-grams alone did best on
        the tuning set), and, embedded, against audio chunks' spellings (``speech``)."""
        if (silent := self._silent(audio)) is not None:
            return silent
        encoder_pass, timings = self._encode(audio)
        spelling, spelt = self._spell(encoder_pass)
        timings |= spelt
        if not spelling:
            return SearchResult([], "", timings)
        t0 = time.perf_counter()
        legs = self.readings_legs([spelling], np.ones(1),
                                  words=not self.runtime.settings.tuning.char_grams, speech=True)
        return self._search(legs, top_k, kind, spelling,
                            {**timings, "embed": (time.perf_counter() - t0) * 1e3},
                            ([spelling], np.ones(1)))

    def search_audio_hybrid(self, audio: np.ndarray, top_k: int = 10, kind: str | None = None
                            ) -> SearchResult:
        """Both S2R paths from one encoder pass, fused by ``hybrid_legs``.  Then, with
        ``hybrid_context_hits``, a second decode of the same pass reads the top hits' titles
        and rare words first (``decode_context``); its n-best list joins the first one's (or
        with ``hybrid_context_nbest=replace`` takes its place) and the search runs again
        (unless it trips a guard).  The transcript stays the first decode's 1-best: the second
        is heard with the candidates in mind.

        A first decode surer than ``hybrid_trust_logprob`` per word is searched by its n-best
        list alone: its words are most likely right, so the e2e spelling (then not even
        computed) could only blur them and a second reading only trade them for a candidate's
        (tune-trust-spelling.md)."""
        if (silent := self._silent(audio)) is not None:
            return silent
        settings, recognizer = self.runtime.settings, self.runtime.query_recognizer
        encoder_pass, timings = self._encode(audio)
        recognition = recognizer.recognize(
            audio, encoder_pass if encoder_pass.covers(audio) else None)
        timings |= recognition.timings_ms
        trusted = recognition.logprob_per_word > settings.tuning.hybrid_trust_logprob
        spelling = ""
        if not trusted:
            spelling, spelt = self._spell(encoder_pass)
            timings |= spelt
        t0 = time.perf_counter()
        legs = self.hybrid_legs(recognition, spelling, settings.tuning.hybrid_e2e_weight)
        if not legs:
            return SearchResult([], "", timings)
        context_hits = 0 if trusted or not encoder_pass.covers(audio) \
            else settings.tuning.hybrid_context_hits
        timings["embed"] = (time.perf_counter() - t0) * 1e3
        # coverage counts the words heard (the spelling only when the decode heard none)
        first = self._search(legs, max(top_k, context_hits), kind,
                             recognition.text or spelling, timings,
                             hybrid_readings(recognition, spelling, 0.0))
        if not (context_hits and first.hits):
            return SearchResult(first.hits[:top_k], first.transcript, first.timings_ms)
        t1 = time.perf_counter()
        second = self.reread(audio, encoder_pass, first.hits[:context_hits])
        timings = {**first.timings_ms, "asr_context": (time.perf_counter() - t1) * 1e3}
        if not second:
            return SearchResult(first.hits[:top_k], first.transcript, timings)
        t2 = time.perf_counter()
        if settings.tuning.hybrid_context_nbest == "join":
            second = recognition.hypotheses + second
        joined = replace(recognition, hypotheses=second)
        legs = self.hybrid_legs(joined, spelling, settings.tuning.hybrid_e2e_weight)
        timings["embed"] += (time.perf_counter() - t2) * 1e3
        result = self._search(legs, top_k, kind, first.transcript, {},
                              hybrid_readings(joined, spelling, 0.0))
        for step, ms in result.timings_ms.items():  # the second search and its reorder
            timings[step] = timings.get(step, 0.0) + ms
        return SearchResult(result.hits, first.transcript, timings)

    def reread(self, audio: np.ndarray, encoder_pass: EncoderPass, hits: list[Hit]
               ) -> list[Hypothesis]:
        """The hybrid's second decode of ``encoder_pass``, after reading the titles and rare
        words of ``hits`` (``decode_context``); nothing if it trips a guard."""
        recognizer = self.runtime.query_recognizer
        context = candidate_context([(h.payload.get("title") or "", h.payload.get("text") or "")
                                     for h in hits], recognizer.whisper.hf_tokenizer)
        return recognizer.decode_with_context(audio, encoder_pass, context)

    def hybrid_legs(self, recognition: Recognition, spelling: str, share: float
                    ) -> list[QueryLeg]:
        """The decode's n-best list gives the MiniLM vector and BM25 terms, as in ``s2r``; the
        e2e spelling joins it as one more reading, weighted ``share``, where a misspelling
        still helps: the character-4-gram leg, and the speech leg over audio chunks.  In the
        dense and BM25 legs the spelling's broken words only blur (tune-hybrid.md).  With
        ``char_grams`` off, the spelling searches only speech vectors."""
        heard, heard_weights = hybrid_readings(recognition, "", 0.0)
        texts, weights = hybrid_readings(recognition, spelling, share)
        if not texts:
            return []
        vectors = dict(zip(texts, self.runtime.embedder.embed(texts), strict=True))

        def embedded(batch: list[str]) -> np.ndarray:  # each reading embedded once, not twice
            return np.stack([vectors[text] for text in batch])

        legs = self.readings_legs(heard, heard_weights, chars=False, embed=embedded) \
            if heard else []
        return legs + self.readings_legs(texts, weights, words=False, speech=True,
                                         embed=embedded)

    def _encode(self, audio: np.ndarray) -> tuple[EncoderPass, dict[str, float]]:
        """The reduced-window encoder pass both S2R paths share, with its time."""
        t0 = time.perf_counter()
        encoder_pass = self.runtime.query_recognizer.encode(audio, cut=True)
        return encoder_pass, {"encode": (time.perf_counter() - t0) * 1e3}

    def _spell(self, encoder_pass: EncoderPass) -> tuple[str, dict[str, float]]:
        """The e2e head's spelling of ``encoder_pass``, with its time."""
        t0 = time.perf_counter()
        spelling = self.runtime.e2e.spell(encoder_pass.frames(), encoder_pass.seconds).text
        return spelling, {"e2e": (time.perf_counter() - t0) * 1e3}

    def readings_legs(self, texts: list[str], weights: np.ndarray, words: bool = True,
                      speech: bool = False, chars: bool | None = None,
                      embed: Callable[[list[str]], np.ndarray] | None = None) -> list[QueryLeg]:
        """Weighted readings of one question (a typed query, the n-best list, a spelling) →
        their weighted character n-grams (with ``chars``, by default the ``char_grams``
        setting) and, unless ``chars`` is False, their words' weighted sound keys (when
        ``sound_leg`` takes this question); and with ``words`` their fused MiniLM vector and
        weighted BM25 terms.  With ``speech`` the fused vector also searches audio chunks'
        speech vectors (their e2e spellings, the only trace of an untranscribed recording).
        ``embed`` replaces the embedder (e.g. with vectors already computed)."""
        settings = self.runtime.settings
        sound = chars is not False and self.sound_leg(texts)
        chars = settings.tuning.char_grams if chars is None else chars
        dense_weight, bm25_weight, chars_weight, sound_weight = RRF_WEIGHTS
        legs = [QueryLeg(CHARS_VECTOR, self.runtime.char_grams.query(texts, weights),
                         chars_weight)] if chars else []
        if sound:
            legs.append(QueryLeg(SOUND_VECTOR, self.runtime.sound_keys.query(texts, weights),
                                 sound_weight))
        if words:
            legs.append(QueryLeg(SPARSE_VECTOR, self.runtime.lexical.query(texts, weights),
                                 bm25_weight))
        if words or speech:
            dense = query_vector(texts, weights, embed or self.runtime.embedder.embed)
            legs += [QueryLeg(name, dense, dense_weight)
                     for name, wanted in ((TEXT_VECTOR, words), (SPEECH_VECTOR, speech))
                     if wanted]
        return legs

    def sound_leg(self, texts: list[str]) -> bool:
        """Whether a question read as ``texts`` (best reading first) searches by sound too:
        with ``sound_keys``, a question of at most ``sound_max_words`` words.  A long one has
        enough right words for the word legs, and one more leg only dilutes them."""
        settings = self.runtime.settings
        return settings.tuning.sound_keys and short_question(texts, settings.tuning.sound_max_words)

    def _search(self, legs: list[QueryLeg], top_k: int, kind: str | None, heard: str | None,
                timings: dict[str, float],
                readings: tuple[list[str], np.ndarray] | None = None) -> SearchResult:
        """The fused search; with ``readings`` (the question as heard, weighted) of a short
        question, its top ``coverage_depth`` hits are reordered by how much of it each covers
        (``coverage``), so that many are fetched even when fewer are wanted."""
        settings = self.runtime.settings
        covered = readings is not None and settings.tuning.coverage_weight > 0 \
            and short_question(readings[0], settings.tuning.coverage_max_words)
        depth = max(top_k, settings.tuning.coverage_depth) if covered else top_k
        t0 = time.perf_counter()
        hits = self.runtime.store.search_legs(legs, top_k=depth, kind=kind,
                                              fusion=settings.tuning.fusion)
        t1 = time.perf_counter()
        timings = {**timings, "search": (t1 - t0) * 1e3}
        if covered:
            hits = rerank_by_coverage(hits, *readings, settings.tuning.coverage_weight,
                                      settings.tuning.coverage_depth)[:top_k]
            timings["coverage"] = (time.perf_counter() - t1) * 1e3
        return SearchResult(hits, heard, timings)
