"""Whisper's front end and encoder in PyTorch and NumPy, from the CTranslate2 weights, so an
accelerator machine can make the adapter's training frames without CTranslate2.

The integrated decode hears an utterance through one encoder pass over the speech plus its
margin (``s2r.IntegratedRecognizer.encode``).  ``log_mel`` computes the same features as
faster-whisper's extractor (``padding=0``), and ``WhisperEncoder`` runs many such windows of
different lengths in one batch: each row is masked past its own window (convolutions and
attention), so it gets the frames it would get alone.  ``compact``/``expand`` carry the weights
as int8 rows with one scale each (CTranslate2's own int8 scheme, which the CPU runtime uses
anyway): about half the float16 size, for moving the model to such a machine.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

N_FFT, HOP = 400, 160  # 25 ms windows every 10 ms at 16 kHz
SCALE_SUFFIX = "__scale"
_COMPACT_MIN_SIZE = 65_536  # smaller arrays stay float16


def log_mel(clip: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """Whisper's log-mel spectrogram of ``clip`` (float32 16 kHz, already padded to its
    window): ``(mels, len(clip) // HOP)``, clamped 8 decades below its own maximum."""
    padded = np.pad(clip.astype(np.float32), N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)
    power = np.abs(np.fft.rfft(frames * window, axis=-1).astype(np.complex64)[:-1]) ** 2
    mel = np.log10(np.maximum(filters @ power.T, 1e-10))
    return ((np.maximum(mel, mel.max() - 8.0) + 4.0) / 4.0).astype(np.float32)


def compact(variables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each large float array as int8 rows plus ``name + SCALE_SUFFIX`` (127 / the row's
    largest magnitude); small and non-float arrays as they are (floats in float16)."""
    out: dict[str, np.ndarray] = {}
    for name, value in variables.items():
        value = np.asarray(value)
        if value.dtype.kind != "f":
            out[name] = value
        elif value.ndim >= 2 and value.size >= _COMPACT_MIN_SIZE:
            rows = value.astype(np.float32).reshape(value.shape[0], -1)
            scale = 127.0 / np.maximum(np.abs(rows).max(axis=1), 1e-12)
            out[name] = np.round(rows * scale[:, None]).astype(np.int8).reshape(value.shape)
            out[name + SCALE_SUFFIX] = scale.astype(np.float32)
        else:
            out[name] = value.astype(np.float16)
    return out


def expand(packed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``compact``'s inverse: float32 arrays (int8 rows divided by their scales)."""
    out: dict[str, np.ndarray] = {}
    for name, value in packed.items():
        if name.endswith(SCALE_SUFFIX):
            continue
        scale = packed.get(name + SCALE_SUFFIX)
        if scale is not None:
            rows = value.reshape(value.shape[0], -1).astype(np.float32) / scale[:, None]
            out[name] = rows.reshape(value.shape)
        else:
            out[name] = value.astype(np.float32) if value.dtype.kind == "f" else value
    return out


class _EncoderLayer(nn.Module):
    def __init__(self, width: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.heads = heads
        self.attn_norm = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.ffn_norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, ffn)
        self.fc2 = nn.Linear(ffn, width)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = (t.view(batch, length, self.heads, -1).transpose(1, 2)
                   for t in self.qkv(self.attn_norm(x)).chunk(3, dim=-1))
        attended = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)
        x = x + self.out(attended.transpose(1, 2).reshape(batch, length, width))
        return x + self.fc2(nn.functional.gelu(self.fc1(self.ffn_norm(x))))


class WhisperEncoder(nn.Module):
    """The encoder of a CT2 Whisper model: log-mel windows → frames (50 per second)."""

    def __init__(self, variables: dict[str, np.ndarray]) -> None:
        super().__init__()

        def get(name: str) -> torch.Tensor:
            return torch.from_numpy(np.asarray(variables[f"encoder/{name}"], np.float32))

        mels = variables["encoder/conv1/weight"].shape[1]
        width = variables["encoder/conv1/weight"].shape[0]
        layers = sum(1 for k in variables if k.startswith("encoder/layer_")
                     and k.endswith("/ffn/linear_0/weight"))
        ffn = variables["encoder/layer_0/ffn/linear_0/weight"].shape[0]
        self.conv1 = nn.Conv1d(mels, width, 3, padding=1)
        self.conv2 = nn.Conv1d(width, width, 3, stride=2, padding=1)
        self.register_buffer("positions", torch.zeros(
            variables["encoder/position_encodings/encodings"].shape))
        self.layers = nn.ModuleList(_EncoderLayer(width, int(variables["encoder/num_heads"]), ffn)
                                    for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        state = {"positions": get("position_encodings/encodings"),
                 "conv1.weight": get("conv1/weight"), "conv1.bias": get("conv1/bias"),
                 "conv2.weight": get("conv2/weight"), "conv2.bias": get("conv2/bias"),
                 "norm.weight": get("layer_norm/gamma"), "norm.bias": get("layer_norm/beta")}
        ct2 = {"attn_norm": "self_attention/layer_norm", "qkv": "self_attention/linear_0",
               "out": "self_attention/linear_1", "ffn_norm": "ffn/layer_norm",
               "fc1": "ffn/linear_0", "fc2": "ffn/linear_1"}
        for i in range(layers):
            for ours, theirs in ct2.items():
                norm = theirs.endswith("layer_norm")
                state[f"layers.{i}.{ours}.weight"] = get(
                    f"layer_{i}/{theirs}/{'gamma' if norm else 'weight'}")
                state[f"layers.{i}.{ours}.bias"] = get(
                    f"layer_{i}/{theirs}/{'beta' if norm else 'bias'}")
        self.load_state_dict(state, strict=True)
        self.requires_grad_(False)

    def forward(self, mel: torch.Tensor, mel_frames: torch.Tensor) -> torch.Tensor:
        """``mel``: (batch, mels, longest) log-mel windows, each ``mel_frames[i]`` (even)
        long; returns (batch, longest // 2, width): row i's first ``mel_frames[i] // 2``
        frames are those of its window heard alone, the rest are padding."""
        steps = torch.arange(mel.shape[-1], device=mel.device)
        inside = (steps[None, :] < mel_frames[:, None])[:, None, :]
        x = nn.functional.gelu(self.conv1(mel * inside)) * inside
        x = nn.functional.gelu(self.conv2(x)).transpose(1, 2)
        x = x + self.positions[: x.shape[1]]
        frames = mel_frames // 2
        keys = torch.arange(x.shape[1], device=mel.device)[None, :] < frames[:, None]
        key_mask = torch.zeros(keys.shape, dtype=x.dtype, device=x.device
                               ).masked_fill(~keys, float("-inf"))[:, None, None, :]
        for layer in self.layers:
            x = layer(x, key_mask)
        return self.norm(x)
