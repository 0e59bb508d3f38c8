"""A low-rank (LoRA) adaptation of Whisper's decoder, merged into a copy of the model.

Whisper tiny.en as packaged mishears the rare names that spoken questions to a Wikipedia-style
collection are made of ("gyre haakon ronne" → "Gaia can run").  ``s2r train --decoder`` adapts
its decoder on the cached encoder frames of the training speech; only low-rank updates
``W += B @ A`` of the decoder's linear layers are learnt, so the shipped delta is ~2.6 MB
instead of a 75 MB model, and the encoder (and so the e2e head's input) is unchanged.

At run time the delta is checked against the sha256 in its card, added to the CTranslate2
weights of the Whisper model it was trained on, and the result written once into the cache; the
integrated S2R decode loads that copy.  The cascade and document transcripts keep the packaged
model.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.speech.checkpoint import load_checked, sha256_of
from assistant.speech.ct2_file import cached_model_dir, read_model, write_model

FORMAT = "s2r-whisper-decoder-lora"
DEFAULT_ADAPTER = Path(__file__).parent / "bundled" / "whisper-decoder-lora-v2.npz"
BUNDLED_ADAPTER = "bundled"  # the decoder_adapter setting that names DEFAULT_ADAPTER

# A decoder layer's linear maps (Hugging Face names) → (CTranslate2 weight, row block).  CT2
# fuses self-attention's q, k, v into one matrix and cross-attention's k, v into another; a
# map's rows are block ``i`` of its output size within that matrix.
LINEARS: dict[str, tuple[str, int]] = {
    "self_attn.q_proj": ("self_attention/linear_0", 0),
    "self_attn.k_proj": ("self_attention/linear_0", 1),
    "self_attn.v_proj": ("self_attention/linear_0", 2),
    "self_attn.out_proj": ("self_attention/linear_1", 0),
    "encoder_attn.q_proj": ("attention/linear_0", 0),
    "encoder_attn.k_proj": ("attention/linear_1", 0),
    "encoder_attn.v_proj": ("attention/linear_1", 1),
    "encoder_attn.out_proj": ("attention/linear_2", 0),
    "fc1": ("ffn/linear_0", 0),
    "fc2": ("ffn/linear_1", 0),
}


class DecoderAdapterError(RuntimeError):
    """The decoder adapter is missing, corrupt, or made for another Whisper model."""


def ct2_rows(layer: int, linear: str, out_features: int) -> tuple[str, slice]:
    """The CT2 weight name and row slice holding ``linear`` of decoder layer ``layer``."""
    name, block = LINEARS[linear]
    return (f"decoder/layer_{layer}/{name}/weight",
            slice(block * out_features, (block + 1) * out_features))


@dataclass(frozen=True)
class DecoderAdapter:
    """Low-rank factors ``{layer_i.linear}.a`` (rank × in) and ``.b`` (out × rank, already
    scaled) and the card (the ``.json`` beside the ``.npz``)."""

    factors: dict[str, np.ndarray]
    card: dict

    @classmethod
    def load(cls, path: Path | str) -> DecoderAdapter:
        """Load ``path`` after checking it against the sha256 in its card."""
        factors, card = load_checked(
            Path(path), "decoder adapter", "set S2R_DECODER_ADAPTER to one made by `s2r train "
            "--decoder`, to none, or reinstall s2r", DecoderAdapterError, FORMAT)
        return cls(factors, card)

    @property
    def sha256(self) -> str:
        return str(self.card["sha256"])

    @property
    def reads_context(self) -> bool:
        """Whether it was trained with previous-text prompts (``--context-share``), so the
        hybrid's second decode may run on it too."""
        return float(self.card.get("train_config", {}).get("context_share", 0.0)) > 0

    def deltas(self) -> dict[tuple[int, str], np.ndarray]:
        """``(layer, linear)`` → the float32 update ``B @ A`` of that map's weight."""
        out = {}
        for key in self.factors:
            if key.endswith(".a"):
                layer, linear = key[: -len(".a")].split(".", 1)
                a = self.factors[key].astype(np.float32)
                b = self.factors[key[:-2] + ".b"].astype(np.float32)
                out[int(layer.removeprefix("layer_")), linear] = b @ a
        return out

    def merge_into(self, source: Path, target: Path) -> None:
        """Write ``source``'s model with the updates added into ``target`` (other files
        copied).  Refuses a model other than the one the adapter was trained on."""
        base = self.card.get("base_sha256")
        actual = sha256_of(source / "model.bin")
        if actual != base:
            raise DecoderAdapterError(
                f"decoder adapter {self.card.get('version')} was trained on Whisper model "
                f"{self.card.get('base')} (sha256 {str(base)[:12]}…), not on "
                f"{source} ({actual[:12]}…): set S2R_DECODER_ADAPTER=none or train one for it")
        model = read_model(source / "model.bin")
        for (layer, linear), delta in self.deltas().items():
            name, rows = ct2_rows(layer, linear, delta.shape[0])
            if name not in model.variables:
                raise DecoderAdapterError(f"{source}/model.bin has no {name}")
            weight = np.array(model.variables[name])
            if weight[rows].shape != delta.shape:
                raise DecoderAdapterError(f"{name} rows {rows.start}-{rows.stop}: adapter shape "
                                          f"{delta.shape} does not fit {weight[rows].shape}")
            weight[rows] = (weight[rows].astype(np.float32) + delta).astype(weight.dtype)
            model.variables[name] = weight
        for item in source.iterdir():
            if item.is_file() and item.name != "model.bin":
                shutil.copy(item, target / item.name)
        write_model(model, target / "model.bin")


def adapted_model_dir(source: Path, adapter: DecoderAdapter, cache_dir: Path) -> Path:
    """A CTranslate2 Whisper directory like ``source`` with ``adapter`` merged into its
    decoder; written once into ``cache_dir``."""
    return cached_model_dir(source, f"adapter-{adapter.sha256[:16]}",
                            Path(cache_dir) / "whisper-adapted", adapter.merge_into)
