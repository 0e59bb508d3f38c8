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

from assistant.speech.checkpoint import sha256_of
from assistant.speech.ct2_file import read_model
from assistant.speech.decoder_adapter import FORMAT, LINEARS, ct2_rows
from assistant.training.candidate_prompts import CandidatePrompts
from assistant.training.ctc_trainer import FrameCorpus, Utterance, batches
from assistant.training.resumable import RunState, optimizer_step, warmup_cosine
from assistant.training.whisper_tokens import WhisperTokens

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
    # share of utterances heard after a candidate-names prompt (``candidate_prompts``), so the
    # hybrid's second decode can run on the adapted decoder too
    context_share: float = 0.0
    init: str = ""  # an adapter (.npz) to start from instead of the packaged decoder
    max_steps: int = 0  # stop (and end the schedule) after this many steps; 0: all epochs


def port_decoder(model: Path):
    """The decoder of a CT2 Whisper ``model.bin`` as a float32 transformers
    ``WhisperDecoder``."""
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperDecoder

    variables = read_model(model).variables

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


def load_factors(decoder, path: Path) -> None:
    """Start ``decoder``'s LoRA factors from the adapter at ``path`` (same rank)."""
    from assistant.speech.decoder_adapter import DecoderAdapter

    factors = DecoderAdapter.load(path).factors
    for i, layer in enumerate(decoder.layers):
        for linear in LINEARS:
            module = layer.get_submodule(linear)
            a, b = (torch.from_numpy(factors[f"layer_{i}.{linear}.{k}"].astype(np.float32))
                    for k in "ab")
            if a.shape != module.a.shape:
                raise ValueError(f"--init {path}: rank {a.shape[0]}, not {module.a.shape[0]}")
            with torch.no_grad():
                module.a.copy_(a)
                module.b.copy_(b / module.scale)


def lora_factors(decoder) -> dict[str, np.ndarray]:
    """The learnt factors under ``decoder_adapter``'s names, B pre-scaled, float16."""
    factors = {}
    for i, layer in enumerate(decoder.layers):
        for linear in LINEARS:
            module = layer.get_submodule(linear)
            factors[f"layer_{i}.{linear}.a"] = module.a.detach().cpu().numpy().astype(np.float16)
            factors[f"layer_{i}.{linear}.b"] = (module.b.detach() * module.scale
                                                ).cpu().numpy().astype(np.float16)
    return factors


class TokenTargets:
    """Teacher-forcing sequences: with ``prompts``, for a ``share`` of utterances, a drawn
    previous-text prompt; then the prompt the integrated decode gives, the spoken text's
    tokens, end of text."""

    def __init__(self, hf_tokenizer, prompts: CandidatePrompts | None = None,
                 share: float = 0.0) -> None:
        tokenizer = WhisperTokens(hf_tokenizer)
        self.tokenizer = tokenizer
        self.prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
        self.eot = tokenizer.eot
        self.prompts = prompts
        self.share = share if prompts else 0.0

    def labels(self, utterance: dict) -> list[int] | None:
        """The spoken text's token ids (with its leading space, as Whisper writes it)."""
        spoken = utterance.get("spoken")
        if spoken is None:
            raise ValueError("a training shard has no 'spoken' text: run `s2r train --decoder`, "
                             "which adds it to shards made by older versions")
        return self.tokenizer.encode(" " + spoken.strip()) or None

    def collate(self, corpus: FrameCorpus, batch: list[Utterance],
                rng: np.random.Generator | None = None, share: float | None = None):
        """(frames, input ids, next-token labels); short clips are padded with their last
        frame, the margin's silence.  ``rng`` draws which utterances get a previous-text
        prompt (``share`` of them, default the configured one) and which."""
        share = self.share if share is None else share
        before = [self.prompts.prompt(u.spoken, rng) if rng is not None and share
                  and rng.random() < share else [] for u in batch]
        longest = max(u.frames for u in batch)
        length = max(len(p) + len(self.prompt) + len(u.labels)
                     for p, u in zip(before, batch, strict=True))
        x = np.zeros((len(batch), longest, corpus.width), np.float32)
        ids = np.full((len(batch), length), self.eot, np.int64)
        labels = np.full((len(batch), length), IGNORE, np.int64)
        for i, (prefix, utt) in enumerate(zip(before, batch, strict=True)):
            frames = corpus.frames(utt)
            x[i, : utt.frames] = frames
            x[i, utt.frames :] = frames[-1]
            given = [*prefix, *self.prompt]
            sequence = [*given, *utt.labels]
            ids[i, : len(sequence)] = sequence
            labels[i, len(given) - 1 : len(sequence)] = [*utt.labels, self.eot]
        return torch.from_numpy(x), torch.from_numpy(ids), torch.from_numpy(labels)


def batch_loss(decoder, batch) -> torch.Tensor:
    device = decoder.embed_tokens.weight.device  # a batch is collated on the CPU
    frames, ids, labels = (t.to(device, non_blocking=True) for t in batch)
    hidden = decoder(input_ids=ids, encoder_hidden_states=frames, use_cache=False
                     ).last_hidden_state
    # Logits only where a token is learnt: the 51,864-way output map is most of the cost, and
    # a previous-text prompt is several times longer than the text.
    scored = labels != IGNORE
    logits = hidden[scored] @ decoder.embed_tokens.weight.T  # Whisper ties the embeddings
    return nn.functional.cross_entropy(logits, labels[scored])


def validation_loss(decoder, corpus: FrameCorpus, targets: TokenTargets,
                    utts: list[Utterance], share: float = 0.0) -> float | None:
    """Mean teacher-forced loss on ``utts``; with ``share`` 1, each heard after a prompt
    (drawn from a fixed seed, the same for every evaluation)."""
    if not utts:
        return None
    rng = np.random.default_rng(12345)
    decoder.eval()
    with torch.no_grad():
        losses = [float(batch_loss(decoder, targets.collate(corpus, utts[i : i + 16], rng,
                                                            share)))
                  for i in range(0, len(utts), 16)]
    decoder.train()
    return round(float(np.mean(losses)), 4)


def train(model_bin: Path, hf_tokenizer, data_dir: Path, run_dir: Path,
          config: DecoderTrainConfig, threads: int = 0, progress: bool = True,
          prompts: CandidatePrompts | None = None):
    """Train (or resume) in ``run_dir``; returns (decoder with LoRA, summary for the card).
    ``prompts`` draws the previous-text prompts of ``config.context_share`` of utterances."""
    from tqdm import tqdm

    if threads:
        torch.set_num_threads(threads)
    if config.context_share and prompts is None:
        raise ValueError("context_share needs the candidate prompts to draw from")
    torch.manual_seed(config.seed)
    targets = TokenTargets(hf_tokenizer, prompts, config.context_share)
    corpus = FrameCorpus(data_dir, labels_of=targets.labels, tail_s=None)
    train_utts, valid_utts = corpus.split(config.validation_shards)
    valid_utts = valid_utts[: config.validation_utterances]
    decoder = port_decoder(model_bin)
    add_lora(decoder, config.rank, config.alpha)
    if config.init:
        load_factors(decoder, Path(config.init))
    params = [p for p in decoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    steps_per_epoch = len(batches(train_utts, config.batch_frames, np.random.default_rng(0)))
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)
    schedule = warmup_cosine(optimizer, config.warmup_steps, total_steps)
    state = RunState(run_dir, asdict(config), decoder, optimizer, schedule)
    step, seconds = 0, 0.0
    validate = {"validation_loss": 0.0} | (
        {"validation_loss_prompted": 1.0} if config.context_share else {})
    history: dict = {f"{name}{when}": None for name in validate
                     for when in ("_before", "")} | {"loss": None}
    if (progress_so_far := state.load()) is not None:
        step, seconds, history = (progress_so_far[k] for k in ("step", "seconds", "history"))
    else:
        for name, share in validate.items():
            history[f"{name}_before"] = validation_loss(decoder, corpus, targets, valid_utts,
                                                        share)

    bar = tqdm(total=total_steps, initial=step, desc="adapt decoder", unit="step",
               disable=not progress)
    decoder.train()
    losses: list[float] = []
    while step < total_steps:
        epoch = step // steps_per_epoch
        order = batches(train_utts, config.batch_frames,
                        np.random.default_rng([config.seed, epoch]))
        for batch in order[step - epoch * steps_per_epoch :]:
            if step >= total_steps:
                break
            started = time.perf_counter()
            batch_rng = np.random.default_rng([config.seed, epoch, step])
            loss = batch_loss(decoder, targets.collate(corpus, batch, batch_rng))
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
    for name, share in validate.items():
        history[name] = validation_loss(decoder, corpus, targets, valid_utts, share)
    state.save(step=step, seconds=seconds, history=history)
    decoder.eval()
    return decoder, {
        "train_config": asdict(config), "utterances": len(train_utts),
        "validation_utterances": len(valid_utts), "steps": step,
        "train_seconds": round(seconds, 1), **history,
        "parameters": sum(p.numel() for p in params)}


def export(decoder, path: Path, base_sha256: str, card: dict) -> dict:
    """Write the adapter and its card (with the sha256s the runtime checks: its own, and
    ``base_sha256``, that of the model.bin it was trained on)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez(f, **lora_factors(decoder))
    full = {"format": FORMAT, **card, "base_sha256": base_sha256,
            "sha256": sha256_of(path), "bytes": path.stat().st_size}
    path.with_suffix(".json").write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")
    return full
