"""Adapt Whisper's decoder to the training speech, for ``decoder_adapter``.

The decoder is ported from the CTranslate2 ``model.bin`` into a transformers ``WhisperDecoder``
(the packaged model has no other weights), its linear maps get low-rank (LoRA) updates, and only
those are trained: teacher forcing on the cached encoder frames of ``speech_data``'s shards, with
the spoken text as written (case, punctuation) as the target, so the transcript keeps Whisper's
style.  Embeddings and everything else stay frozen, so the delta stays small and the decoder
keeps what it knew.  Seeded and resumable like the e2e head (``state.pt`` every
``save_every`` steps).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from assistant.checkpoint import sha256_of
from assistant.ct2_file import read_model
from assistant.decoder_adapter import FORMAT, LINEARS, ct2_rows
from assistant.training.ctc_trainer import FrameCorpus, Utterance, batches
from assistant.training.resumable import RunState, optimizer_step, warmup_cosine

IGNORE = -100  # cross_entropy's ignore_index: prompt positions are given, not learnt

# Layer norms: Hugging Face name → CT2 name (weight = gamma, bias = beta).
_NORMS = {"self_attn_layer_norm": "self_attention/layer_norm",
          "encoder_attn_layer_norm": "attention/layer_norm",
          "final_layer_norm": "ffn/layer_norm"}


@dataclass(frozen=True)
class DecoderTrainConfig:
    rank: int = 32
    alpha: float = 64.0  # the update is scaled by alpha / rank
    epochs: int = 1
    lr: float = 1e-3
    batch_frames: int = 6_000  # padded encoder frames per step: ~16 utterances
    warmup_steps: int = 100
    validation_shards: int = 2
    validation_utterances: int = 400
    save_every: int = 200
    seed: int = 0


def port_decoder(model_bin: Path):
    """The decoder of a CT2 Whisper ``model.bin`` as a float32 transformers ``WhisperDecoder``."""
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperDecoder

    variables = read_model(model_bin).variables

    def get(name: str) -> torch.Tensor:
        return torch.from_numpy(np.asarray(variables[name], np.float32))

    layers = sum(1 for k in variables if k.startswith("decoder/layer_")
                 and k.endswith("/ffn/linear_0/weight"))
    vocab, width = variables["decoder/embeddings/weight"].shape
    config = WhisperConfig(
        vocab_size=vocab, d_model=width, decoder_layers=layers,
        decoder_attention_heads=int(variables["decoder/num_heads"]),
        decoder_ffn_dim=variables["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_target_positions=variables["decoder/position_encodings/encodings"].shape[0],
        scale_embedding=False)
    state = {"embed_tokens.weight": get("decoder/embeddings/weight"),
             "embed_positions.weight": get("decoder/position_encodings/encodings"),
             "layer_norm.weight": get("decoder/layer_norm/gamma"),
             "layer_norm.bias": get("decoder/layer_norm/beta")}
    for i in range(layers):
        for linear in LINEARS:
            out = config.decoder_ffn_dim if linear == "fc1" else width
            name, rows = ct2_rows(i, linear, out)
            state[f"layers.{i}.{linear}.weight"] = get(name)[rows]
            if not linear.endswith("k_proj"):  # Whisper's keys have no bias (CT2 stores zeros)
                state[f"layers.{i}.{linear}.bias"] = get(name.replace("/weight", "/bias"))[rows]
        for hf, ct2 in _NORMS.items():
            state[f"layers.{i}.{hf}.weight"] = get(f"decoder/layer_{i}/{ct2}/gamma")
            state[f"layers.{i}.{hf}.bias"] = get(f"decoder/layer_{i}/{ct2}/beta")
    decoder = WhisperDecoder(config)
    decoder.load_state_dict(state, strict=True)
    return decoder


class LoRALinear(nn.Module):
    """A frozen linear map plus a trainable low-rank update ``(alpha / rank) · B A``; B starts
    at zero, so training starts from the packaged model."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base.requires_grad_(False)
        self.a = nn.Parameter(torch.randn(rank, base.in_features) / math.sqrt(base.in_features))
        self.b = nn.Parameter(torch.zeros(base.out_features, rank))
        self.scale = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.a.T @ self.b.T) * self.scale


def add_lora(decoder, rank: int, alpha: float) -> None:
    """Freeze ``decoder`` and wrap each of its layers' ``LINEARS`` in ``LoRALinear``."""
    decoder.requires_grad_(False)
    for layer in decoder.layers:
        for linear in LINEARS:
            parent_name, _, child = linear.rpartition(".")
            parent = layer.get_submodule(parent_name) if parent_name else layer
            setattr(parent, child, LoRALinear(getattr(parent, child), rank, alpha))


def lora_factors(decoder) -> dict[str, np.ndarray]:
    """The learnt factors under ``decoder_adapter``'s names, B pre-scaled, float16."""
    factors = {}
    for i, layer in enumerate(decoder.layers):
        for linear in LINEARS:
            module = layer.get_submodule(linear)
            factors[f"layer_{i}.{linear}.a"] = module.a.detach().numpy().astype(np.float16)
            factors[f"layer_{i}.{linear}.b"] = (module.b.detach() * module.scale
                                                ).numpy().astype(np.float16)
    return factors


class TokenTargets:
    """Teacher-forcing sequences: the prompt the integrated decode gives, the spoken text's
    tokens, end of text."""

    def __init__(self, hf_tokenizer) -> None:
        from faster_whisper.tokenizer import Tokenizer

        tokenizer = Tokenizer(hf_tokenizer, False, task="transcribe", language="en")
        self.tokenizer = tokenizer
        self.prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
        self.eot = tokenizer.eot

    def labels(self, utterance: dict) -> list[int] | None:
        """The spoken text's token ids (with its leading space, as Whisper writes it)."""
        spoken = utterance.get("spoken")
        if spoken is None:
            raise ValueError("a training shard has no 'spoken' text: run `s2r train --decoder`, "
                             "which adds it to shards made by older versions")
        return self.tokenizer.encode(" " + spoken.strip()) or None

    def collate(self, corpus: FrameCorpus, batch: list[Utterance]):
        """(frames, input ids, next-token labels); short clips are padded with their last
        frame, the margin's silence."""
        longest = max(u.frames for u in batch)
        length = len(self.prompt) + max(len(u.labels) for u in batch)
        x = np.zeros((len(batch), longest, corpus.width), np.float32)
        ids = np.full((len(batch), length), self.eot, np.int64)
        labels = np.full((len(batch), length), IGNORE, np.int64)
        for i, utt in enumerate(batch):
            frames = corpus.frames(utt)
            x[i, : utt.frames] = frames
            x[i, utt.frames :] = frames[-1]
            sequence = [*self.prompt, *utt.labels]
            ids[i, : len(sequence)] = sequence
            labels[i, len(self.prompt) - 1 : len(sequence)] = [*utt.labels, self.eot]
        return torch.from_numpy(x), torch.from_numpy(ids), torch.from_numpy(labels)


def batch_loss(decoder, batch) -> torch.Tensor:
    frames, ids, labels = batch
    hidden = decoder(input_ids=ids, encoder_hidden_states=frames, use_cache=False
                     ).last_hidden_state
    logits = hidden @ decoder.embed_tokens.weight.T  # Whisper ties output and input embeddings
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                       ignore_index=IGNORE)


def validation_loss(decoder, corpus: FrameCorpus, targets: TokenTargets,
                    utts: list[Utterance]) -> float | None:
    if not utts:
        return None
    decoder.eval()
    with torch.no_grad():
        losses = [float(batch_loss(decoder, targets.collate(corpus, utts[i : i + 16])))
                  for i in range(0, len(utts), 16)]
    decoder.train()
    return round(float(np.mean(losses)), 4)


def train(model_bin: Path, hf_tokenizer, data_dir: Path, run_dir: Path,
          config: DecoderTrainConfig, threads: int = 0, progress: bool = True):
    """Train (or resume) in ``run_dir``; returns (decoder with LoRA, summary for the card)."""
    from tqdm import tqdm

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(config.seed)
    targets = TokenTargets(hf_tokenizer)
    corpus = FrameCorpus(data_dir, labels_of=targets.labels, tail_s=None)
    train_utts, valid_utts = corpus.split(config.validation_shards)
    valid_utts = valid_utts[: config.validation_utterances]
    decoder = port_decoder(model_bin)
    add_lora(decoder, config.rank, config.alpha)
    params = [p for p in decoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    steps_per_epoch = len(batches(train_utts, config.batch_frames, np.random.default_rng(0)))
    total_steps = steps_per_epoch * config.epochs
    schedule = warmup_cosine(optimizer, config.warmup_steps, total_steps)
    state = RunState(run_dir, asdict(config), decoder, optimizer, schedule)
    step, seconds = 0, 0.0
    history = {"validation_loss_before": None, "validation_loss": None, "loss": None}
    if (progress_so_far := state.load()) is not None:
        step, seconds, history = (progress_so_far[k] for k in ("step", "seconds", "history"))
    else:
        history["validation_loss_before"] = validation_loss(decoder, corpus, targets, valid_utts)

    bar = tqdm(total=total_steps, initial=step, desc="adapt decoder", unit="step",
               disable=not progress)
    decoder.train()
    losses: list[float] = []
    while step < total_steps:
        epoch = step // steps_per_epoch
        order = batches(train_utts, config.batch_frames,
                        np.random.default_rng([config.seed, epoch]))
        for batch in order[step - epoch * steps_per_epoch :]:
            started = time.perf_counter()
            loss = batch_loss(decoder, targets.collate(corpus, batch))
            optimizer_step(loss, optimizer, schedule, params, 1.0)
            step += 1
            seconds += time.perf_counter() - started
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
            if step % config.save_every == 0:
                state.save(step=step, seconds=seconds, history=history)
    bar.close()
    if losses:
        history["loss"] = round(float(np.mean(losses[-200:])), 4)
    history["validation_loss"] = validation_loss(decoder, corpus, targets, valid_utts)
    state.save(step=step, seconds=seconds, history=history)
    decoder.eval()
    return decoder, {
        "train_config": asdict(config), "utterances": len(train_utts),
        "validation_utterances": len(valid_utts), "steps": step,
        "train_seconds": round(seconds, 1), **history,
        "parameters": sum(p.numel() for p in params)}


def export(decoder, path: Path, model_bin: Path, card: dict) -> dict:
    """Write the adapter and its card (with the sha256s the runtime checks)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez(f, **lora_factors(decoder))
    full = {"format": FORMAT, **card, "base_sha256": sha256_of(model_bin),
            "sha256": sha256_of(path), "bytes": path.stat().st_size}
    path.with_suffix(".json").write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")
    return full
