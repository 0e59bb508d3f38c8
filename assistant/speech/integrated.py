"""Integrated S2R: one Whisper encoder pass sized to the utterance, a guarded n-best decode.

The cascade pads every question to Whisper's 30 s window and spends most of its time encoding
silence.  Here the encoder runs on the utterance plus a 2 s margin (the encoder accepts short
inputs), and beam search decodes from that.  Short windows have known failure modes (the
decoder repeats the sentence to fill the window, or drops words), so the decode is guarded:
no-repeat n-grams, a repetition penalty and a token cap by duration; if the 1-best still shows
a repeat, a high compression ratio, too many tokens or a hit cap, the padded 30 s pass runs
instead.  A spoken query's decoder may be pruned to the collection's word pieces
(``decoder_vocab``).  The n-best list, with its probabilities, feeds an error-robust query vector
(``query_vector``) and weighted sparse terms; the 1-best is the transcript for the generator.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from assistant.speech.audio import SAMPLE_RATE
from assistant.speech.decode_context import previous_text_prompt
from assistant.speech.whisper import Transcriber
from assistant.text import normalize_words

if TYPE_CHECKING:
    from assistant.speech.decoder_vocab import DecoderVocabulary

MAX_WINDOW_S = 30.0  # the encoder's positional range


@dataclass(frozen=True)
class DecodeConfig:
    beam_size: int = 5
    n_best: int = 5
    margin_s: float = 2.0  # zeros after the utterance: Whisper expects to "hear" speech end
    # A short clip's window is padded to at least this.  Whisper learnt 30 s windows: in a
    # window barely longer than the speech it hears words that are not there, most on clips
    # of a second or two.  10 s took the packaged decoder's WER below the padded cascade's on
    # every clean dev voice family and on real human speech (0.418 vs 0.472; 0.769 without it) in
    # 0.27x its time; 12 s heard better still (0.374) but cost 0.31x, 8 s only tied the
    # cascade (benchmarks/results/decode-defaults.md).
    min_window_s: float = 10.0
    # No n-gram ban: a spoken prompt may repeat a phrase ("... followed by the pound key"),
    # and a decode that loops instead trips the repeated-4-gram guard and falls back to the
    # padded pass (same WER as a ban of 3 on the dev families, decode-defaults.md).
    no_repeat_ngram_size: int = 0
    repetition_penalty: float = 1.1
    tokens_per_s: float = 4.0  # the cap: 4 tokens per second of speech + 10
    cap_extra_tokens: int = 10
    max_compression_ratio: float = 2.4
    max_tokens_per_s: float = 3.5  # fallback when the 1-best exceeds 3.5 × seconds + 8 tokens
    max_tokens_extra: int = 8
    threads: int = 1  # CPU threads of the pass (Tuning.s2r_threads says why one)

    @classmethod
    def from_settings(cls, settings) -> DecodeConfig:
        return cls(beam_size=settings.tuning.s2r_beam_size, n_best=settings.tuning.s2r_n_best,
                   margin_s=settings.tuning.s2r_margin_s, threads=settings.s2r_cpu_threads)


@dataclass(frozen=True)
class Hypothesis:
    text: str
    logprob: float  # total log-probability of the token sequence


@dataclass(frozen=True)
class EncoderPass:
    """Whisper's encoder output for one utterance: shared by the decode and the e2e head."""

    encoded: Any  # ctranslate2.StorageView (1, frames, width), 50 frames per second of window
    window_s: float
    seconds: float  # of speech; the rest of the window is the zero margin

    def frames(self) -> np.ndarray:
        return np.asarray(self.encoded)[0]

    def covers(self, audio: np.ndarray) -> bool:
        """Whether this pass heard all of ``audio`` (a long question's pass is cut)."""
        return audio.size / SAMPLE_RATE <= self.seconds


@dataclass
class Recognition:
    hypotheses: list[Hypothesis]  # best first
    fallback: str | None  # the guard that sent this clip to the padded pass, if any
    window_s: float  # encoder window actually used for the kept result
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.hypotheses[0].text if self.hypotheses else ""

    @property
    def logprob_per_word(self) -> float:
        """The 1-best's log-probability per word: how sure the decoder was of what it heard
        (-inf when it heard nothing)."""
        if not self.text:
            return float("-inf")
        return self.hypotheses[0].logprob / len(self.text.split())


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / max(1, len(zlib.compress(data)))


def repeats_word_ngram(text: str, n: int = 4) -> bool:
    words = text.lower().split()
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return len(grams) != len(set(grams))


class IntegratedRecognizer:
    """The reduced-window, guarded Whisper decode that serves both retrieval and transcript."""

    def __init__(self, transcriber: Transcriber, config: DecodeConfig | None = None,
                 vocabulary: DecoderVocabulary | None = None) -> None:
        from faster_whisper.tokenizer import Tokenizer

        self.config = config or DecodeConfig()
        self.whisper = transcriber.model  # features, tokenizer, lengths: alike in every copy
        self.vocabulary = vocabulary
        # ctranslate2.models.Whisper on its own thread count, its decoder adapted (the
        # bundled adapter) and maybe pruned
        self.model = transcriber.decoder_model(self.config.threads, vocabulary)
        self._transcriber = transcriber
        # The padded fallback's 30 s encoder pass is big enough to gain from every core.
        self.padded_encoder = transcriber.model.model
        multilingual = self.padded_encoder.is_multilingual
        self.tokenizer = Tokenizer(self.whisper.hf_tokenizer, multilingual, task="transcribe",
                                   language=transcriber.language if multilingual else "en")
        prompt = [*self.tokenizer.sot_sequence, self.tokenizer.no_timestamps]
        self.prompt = vocabulary.to_pruned(prompt) if vocabulary else prompt

    @property
    def context_model(self):
        """The model of ``decode_with_context``: the adapted decoder if its adapter was trained
        with previous-text prompts, else the packaged one (loaded at first use).  An adapter
        that learnt only to transcribe, given a prompt, often just goes on with it ("famed
        lutheran communion" → "and")."""
        return self._transcriber.decoder_model(
            self.config.threads, self.vocabulary,
            adapted=self._transcriber.adapter_reads_context)

    def encode(self, audio: np.ndarray, cut: bool = False) -> EncoderPass | None:
        """The one encoder pass on the utterance plus the margin.  When that exceeds the
        encoder's 30 s range: None (the decode then runs on padded windows), or with ``cut``
        a pass over the first 30 s less the margin."""
        if cut:
            audio = audio[: int((MAX_WINDOW_S - self.config.margin_s) * SAMPLE_RATE)]
        seconds = audio.size / SAMPLE_RATE
        if seconds + self.config.margin_s > MAX_WINDOW_S:
            return None
        window = max(seconds + self.config.margin_s, min(self.config.min_window_s, MAX_WINDOW_S))
        return EncoderPass(self._encode_features(self.model, self._features(audio, window)),
                           window, seconds)

    def recognize(self, audio: np.ndarray, encoder_pass: EncoderPass | None = None,
                  padded_fallback: bool = True) -> Recognition:
        """Decode ``audio``, reusing ``encoder_pass`` (from ``encode``) when given.  Without
        ``padded_fallback`` a decode that trips a guard gives no hypotheses (the caller has
        other readings and would rather not wait for the padded pass)."""
        seconds = audio.size / SAMPLE_RATE
        started = time.perf_counter()
        cap = int(self.config.tokens_per_s * seconds + self.config.cap_extra_tokens)
        encoder_pass = encoder_pass or self.encode(audio)
        if encoder_pass is not None:
            hypotheses, tokens = self._decode(encoder_pass.encoded, cap)
            reason = self._guard(hypotheses[0].text if hypotheses else "", tokens, seconds, cap)
            if reason is None:
                return Recognition(hypotheses, None, encoder_pass.window_s,
                                   {"asr": (time.perf_counter() - started) * 1e3})
        else:
            reason = "longer than one window"
        if not padded_fallback:
            return Recognition([], reason, encoder_pass.window_s if encoder_pass else 0.0,
                               {"asr": (time.perf_counter() - started) * 1e3})
        padded = self._encode_features(self.padded_encoder, self._features(audio, MAX_WINDOW_S))
        hypotheses, _ = self._decode(padded, cap=None)
        return Recognition(hypotheses, reason, MAX_WINDOW_S,
                           {"asr": (time.perf_counter() - started) * 1e3})

    def decode_with_context(self, audio: np.ndarray, encoder_pass: EncoderPass, context: str
                            ) -> list[Hypothesis]:
        """A second decode of the same encoder pass with ``context`` as Whisper's
        previous-text prompt: a decoder that has just "read" a rare name spells it when it
        hears it ("Apiaceae", not "APSE").  A decode that trips a guard gives nothing."""
        prompt = previous_text_prompt(self.tokenizer, context)
        if self.vocabulary:  # the context's pieces come from the collection; drop any other
            prompt = self.vocabulary.to_pruned(prompt, skip_unknown=True)
        seconds = audio.size / SAMPLE_RATE
        cap = int(self.config.tokens_per_s * seconds + self.config.cap_extra_tokens)
        hypotheses, tokens = self._decode(encoder_pass.encoded, cap, [*prompt, *self.prompt],
                                          self.context_model)
        text = hypotheses[0].text if hypotheses else ""
        return [] if self._guard(text, tokens, seconds, cap) else hypotheses

    def _features(self, audio: np.ndarray, window_s: float) -> np.ndarray:
        """Log-mel of the audio zero-padded (or cut) to ``window_s`` seconds."""
        n = int(window_s * SAMPLE_RATE)
        clip = np.zeros(n, np.float32)
        clip[: min(n, audio.size)] = audio[:n]
        features = self.whisper.feature_extractor(clip, padding=0)
        frames = int(window_s * 100) // 2 * 2  # 100 frames/s; the encoder halves (stride 2)
        return np.ascontiguousarray(features[:, :frames])

    @staticmethod
    def _encode_features(model, features: np.ndarray):
        import ctranslate2

        return model.encode(ctranslate2.StorageView.from_array(features[None]))

    def _decode(self, encoded, cap: int | None, prompt: list[int] | None = None, model=None
                ) -> tuple[list[Hypothesis], int]:
        """n-best hypotheses (deduplicated, best first) and the 1-best's token count, from
        ``model`` (default: the adapted decoder)."""
        c = self.config
        prompt = prompt or self.prompt
        new_tokens = cap if cap is not None else self.whisper.max_length - len(prompt) - 1
        result = (model or self.model).generate(
            encoded, [prompt],
            beam_size=c.beam_size, num_hypotheses=min(c.n_best, c.beam_size),
            return_scores=True,
            no_repeat_ngram_size=c.no_repeat_ngram_size, repetition_penalty=c.repetition_penalty,
            # max_length counts the prompt; this build stops at about half of it, so ask twice
            max_length=min(self.whisper.max_length, 2 * (len(prompt) + new_tokens)),
            suppress_blank=True, length_penalty=1.0,
        )[0]
        # Beams often differ only in case or punctuation: merge those (summing probability)
        # so the n-best list holds different words.
        merged: dict[tuple[str, ...], Hypothesis] = {}
        for ids, score in zip(result.sequences_ids, result.scores, strict=True):
            ids = ids[:new_tokens]
            text = self.tokenizer.decode(self.vocabulary.from_pruned(ids) if self.vocabulary
                                         else ids).strip()
            total = float(score) * len(ids)  # score is the length-normalised log-probability
            key = tuple(normalize_words(text))
            if key in merged:
                kept = merged[key]
                total = float(np.logaddexp(kept.logprob, total))
                text = kept.text
            merged[key] = Hypothesis(text, total)
        tokens = len(result.sequences_ids[0]) if result.sequences_ids else 0
        return list(merged.values()), tokens

    def _guard(self, text: str, tokens: int, seconds: float, cap: int) -> str | None:
        c = self.config
        if tokens >= cap:
            return "token cap hit"
        if tokens > c.max_tokens_per_s * seconds + c.max_tokens_extra:
            return "too many tokens for the duration"
        if repeats_word_ngram(text):
            return "repeated word 4-gram"
        if compression_ratio(text) > c.max_compression_ratio:
            return "compression ratio"
        return None


def nbest_weights(hypotheses: list[Hypothesis], temperature: float = 1.0) -> np.ndarray:
    """Posterior-like weights of the n-best list (softmax over sequence log-probabilities)."""
    if not hypotheses:
        return np.zeros(0)
    scores = np.array([h.logprob for h in hypotheses]) / temperature
    weights = np.exp(scores - scores.max())
    return weights / weights.sum()


def query_vector(texts: list[str], weights: np.ndarray, embed) -> np.ndarray:
    """The readings' embeddings averaged by their weights (``nbest_weights`` for an n-best
    list): a word the recogniser is unsure of contributes in proportion to how likely each
    reading is."""
    fused = weights @ embed(texts)
    return fused / max(float(np.linalg.norm(fused)), 1e-12)
