"""End-to-end S2R: a CTC head on the Whisper encoder frames, no autoregressive decoding.

The speech side learns only a local mapping (encoder frames → characters, one frame at a time plus a
few frames of context); the frozen text embedder keeps the semantics. So the speech vector is the
text embedder's vector of what the head spelled, and words never heard in training can still be
spelled from sound, which a global "speech → sentence vector" adapter could not do (MRR@10 0.03 in
an early probe, benchmarks/results/e2e-ablation.md). A spelling is searched by its character
4-grams, which a misspelt word still mostly shares with the right one (``retrieval``).

At query time the head runs in numpy from a small versioned ``.npz`` checkpoint whose sha256
is checked against its card (``.json``); torch is needed only to train it (``s2r train``).
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.speech.checkpoint import load_checked

BLANK = "_"
# index 0 is the CTC blank; the rest are what the head can spell
VOCAB = (BLANK, " ", "'", *"abcdefghijklmnopqrstuvwxyz0123456789")
_INDEX = {c: i for i, c in enumerate(VOCAB)}
FORMAT = "s2r-e2e-ctc"
FRAMES_PER_S = 50  # Whisper encoder frames per second of audio
DEFAULT_MODEL = Path(__file__).parent / "bundled" / "e2e-ctc-v1.npz"


class E2EModelError(RuntimeError):
    """The e2e checkpoint is missing, corrupt or of another format; the message says which."""


def normalize_text(text: str) -> str:
    """What the head is trained to spell: lowercase ASCII letters, digits, apostrophes and
    single spaces (accents folded, everything else a word break)."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", folded).split())


def encode_labels(text: str) -> list[int]:
    return [_INDEX[c] for c in normalize_text(text)]


def greedy_decode(log_probs: np.ndarray) -> str:
    """Best path: the arg-max per frame, repeats merged, blanks dropped."""
    best = log_probs.argmax(axis=-1)
    keep = np.ones_like(best, dtype=bool)
    keep[1:] = best[1:] != best[:-1]
    chars = [VOCAB[i] for i in best[keep] if i != 0]
    return " ".join("".join(chars).split())


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-5) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    """The tanh form, as the torch model uses (``approximate="tanh"``)."""
    return 0.5 * x * (1.0 + np.tanh(0.7978845608028654 * (x + 0.044715 * x**3)))


def _conv1d_same(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """x (T, C_in), weight (C_out, C_in, K) with odd K, zero 'same' padding → (T, C_out)."""
    k = weight.shape[2]
    padded = np.pad(x, ((k // 2, k // 2), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, k, axis=0)  # (T, C_in, K)
    return windows.reshape(x.shape[0], -1) @ weight.reshape(weight.shape[0], -1).T + bias


@dataclass(frozen=True)
class Spelling:
    text: str
    confidence: float  # mean over non-blank frames of the best character's probability


class CTCHead:
    """The exported head: LayerNorm, zero or more (conv1d + GELU) layers, a linear layer to
    the vocabulary.  ``card`` is the checkpoint's metadata (the ``.json`` beside it)."""

    def __init__(self, weights: dict[str, np.ndarray], card: dict) -> None:
        self.weights = {k: v.astype(np.float32) for k, v in weights.items()}
        self.card = card
        self.n_conv = sum(1 for k in weights if k.startswith("conv") and k.endswith(".weight"))

    @classmethod
    def load(cls, path: Path | str) -> CTCHead:
        """Load ``path`` (``.npz``) after checking it against the sha256 in ``path``'s card."""
        weights, card = load_checked(
            Path(path), "e2e model", "set S2R_E2E_MODEL to a checkpoint made by `s2r train`, "
            "or reinstall s2r", E2EModelError, FORMAT)
        if tuple(card.get("vocab", ())) != VOCAB:
            raise E2EModelError(f"{path}: not an {FORMAT} checkpoint for this vocabulary")
        return cls(weights, card)

    def log_probs(self, frames: np.ndarray) -> np.ndarray:
        """Encoder frames (T, 384) → per-frame log-probabilities over ``VOCAB`` (T, V)."""
        w = self.weights
        x = _layer_norm(frames.astype(np.float32), w["norm.weight"], w["norm.bias"])
        for i in range(self.n_conv):
            x = _gelu(_conv1d_same(x, w[f"conv{i}.weight"], w[f"conv{i}.bias"]))
        logits = x @ w["out.weight"].T + w["out.bias"]
        logits -= logits.max(-1, keepdims=True)
        return logits - np.log(np.exp(logits).sum(-1, keepdims=True))

    @property
    def width(self) -> int:
        return int(self.weights["norm.weight"].shape[0])

    @property
    def sha256(self) -> str:
        return str(self.card["sha256"])

    def spell(self, frames: np.ndarray, seconds: float | None = None) -> Spelling:
        """Greedy CTC spelling of encoder frames.  With ``seconds`` (of speech), only the
        frames up to the card's ``tail_s`` after it are read, as in training."""
        if frames.shape[-1] != self.width:
            raise E2EModelError(
                f"the e2e head was trained on {self.width}-wide Whisper encoder frames "
                f"({self.card.get('encoder', 'see its card')}); this Whisper model gives "
                f"{frames.shape[-1]}: set S2R_E2E_MODEL to a head trained for it, or to none")
        if seconds is not None:
            frames = frames[: math.ceil((seconds + float(self.card["tail_s"])) * FRAMES_PER_S)]
        log_probs = self.log_probs(frames)
        best = log_probs.max(-1)
        spoken = log_probs.argmax(-1) != 0
        confidence = float(np.exp(best[spoken]).mean()) if spoken.any() else 0.0
        return Spelling(greedy_decode(log_probs), confidence)


def spell_audio(recognizer, head: CTCHead, audio: np.ndarray) -> Spelling:
    """The reduced-window encoder pass (``IntegratedRecognizer.encode``, cut to one window when
    longer), then the head."""
    encoder_pass = recognizer.encode(audio, cut=True)
    return head.spell(encoder_pass.frames(), encoder_pass.seconds)
