"""Train the e2e CTC head on cached encoder frames, and export it for numpy inference.

Training is seeded and resumable: ``state.pt`` (model, optimizer, step, epoch) is written after
every epoch and every ``save_every`` steps; a rerun continues from it.  The Whisper encoder is
frozen (its output is cached by ``speech_data``), so each step costs only the small head; that
is what makes the recipe run on 2 cores.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from assistant.speech.checkpoint import sha256_of
from assistant.speech.e2e import FORMAT, FRAMES_PER_S, VOCAB, encode_labels, greedy_decode
from assistant.training.resumable import RunState, optimizer_step, warmup_cosine

TAIL_S = 1.0  # frames kept after the speech: the head is trained and run on the same span


@dataclass(frozen=True)
class HeadDesign:
    """``conv_layers`` = 0 is a linear probe on the frames; more layers see more context."""

    conv_layers: int = 2
    channels: int = 256
    kernel: int = 5


@dataclass(frozen=True)
class TrainConfig:
    design: HeadDesign = HeadDesign()
    epochs: int = 1  # the shipped head: 1 epoch over 48,577 utterances (~12 min on 2 cores)
    lr: float = 2e-3
    weight_decay: float = 0.01
    batch_frames: int = 4_000  # padded frames per step: ~12 utterances
    warmup_steps: int = 200
    validation_shards: int = 1
    save_every: int = 500
    seed: int = 0


class CTCHeadModel(nn.Module):
    """The torch twin of ``assistant.speech.e2e.CTCHead`` (same layers, same parameter names on
    export)."""

    def __init__(self, width: int, design: HeadDesign) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.convs = nn.ModuleList()
        channels = width
        for _ in range(design.conv_layers):
            self.convs.append(nn.Conv1d(channels, design.channels, design.kernel,
                                        padding=design.kernel // 2))
            channels = design.channels
        self.out = nn.Linear(channels, len(VOCAB))
        self.act = nn.GELU(approximate="tanh")

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, width) → log-probabilities (B, T, V)."""
        x = self.norm(frames)
        if len(self.convs):
            x = x.transpose(1, 2)
            for conv in self.convs:
                x = self.act(conv(x))
            x = x.transpose(1, 2)
        return torch.log_softmax(self.out(x), dim=-1)

    def numpy_weights(self) -> dict[str, np.ndarray]:
        """Parameters under the names ``CTCHead`` reads (``convs.1.weight`` → ``conv1.weight``)."""
        return {re.sub(r"^convs\.(\d+)\.", r"conv\1.", name):
                value.detach().cpu().numpy().astype(np.float32)
                for name, value in self.state_dict().items()}


@dataclass
class Utterance:
    shard: int
    start: int  # first frame in the shard's array
    frames: int  # frames used: the speech plus TAIL_S
    labels: list[int]
    spoken: str = ""  # the text as written, where the shard has it


class FrameCorpus:
    """Every complete shard in ``data_dir``, memory-mapped.  ``labels_of`` turns a shard's
    utterance record into training labels (default: the CTC head's characters; None or empty
    skips it); each utterance keeps the frames of its speech plus ``tail_s`` (None: all)."""

    def __init__(self, data_dir: Path,
                 labels_of: Callable[[dict], list[int] | None] | None = None,
                 tail_s: float | None = TAIL_S) -> None:
        labels_of = labels_of or (lambda utt: encode_labels(utt["text"]))
        self.arrays: dict[int, np.ndarray] = {}
        self.utterances: list[Utterance] = []
        for card in sorted(data_dir.glob("shard-*[0-9].json")):
            index = int(card.stem.split("-")[1])
            info = json.loads(card.read_text(encoding="utf-8"))
            self.arrays[index] = np.load(card.with_suffix(".npy"), mmap_mode="r")
            start = 0
            for length, utt in zip(info["lengths"], info["utterances"], strict=True):
                used = length if tail_s is None else min(
                    length, math.ceil((utt["seconds"] + tail_s) * FRAMES_PER_S))
                labels = labels_of(utt)
                if labels and len(labels) < used:
                    self.utterances.append(Utterance(index, start, used, labels,
                                                     utt.get("spoken") or ""))
                start += length
        if not self.utterances:
            raise FileNotFoundError(f"no training shards in {data_dir}: run `s2r train` "
                                    "(its data step makes them)")

    @property
    def width(self) -> int:
        return next(iter(self.arrays.values())).shape[1]

    def frames(self, utt: Utterance) -> np.ndarray:
        return np.asarray(self.arrays[utt.shard][utt.start : utt.start + utt.frames],
                          dtype=np.float32)

    def split(self, validation_shards: int) -> tuple[list[Utterance], list[Utterance]]:
        """(training, validation): the last ``validation_shards`` shards are held out, when
        there are more shards than that."""
        shards = sorted(self.arrays)
        held = set(shards[-validation_shards:]) if 0 < validation_shards < len(shards) else set()
        train = [u for u in self.utterances if u.shard not in held]
        return train, [u for u in self.utterances if u.shard in held]


def batches(utts: list[Utterance], batch_frames: int, rng: np.random.Generator
            ) -> list[list[Utterance]]:
    """Length-sorted batches of about ``batch_frames`` padded frames, in random order."""
    order = sorted(utts, key=lambda u: u.frames)
    out: list[list[Utterance]] = []
    current: list[Utterance] = []
    for utt in order:
        if current and (len(current) + 1) * utt.frames > batch_frames:
            out.append(current)
            current = []
        current.append(utt)
    if current:
        out.append(current)
    return [out[i] for i in rng.permutation(len(out))]


def _collate(corpus: FrameCorpus, batch: list[Utterance]):
    longest = max(u.frames for u in batch)
    x = np.zeros((len(batch), longest, corpus.width), np.float32)
    for i, utt in enumerate(batch):
        x[i, : utt.frames] = corpus.frames(utt)
    targets = torch.tensor([c for u in batch for c in u.labels], dtype=torch.long)
    return (torch.from_numpy(x), targets, torch.tensor([u.frames for u in batch]),
            torch.tensor([len(u.labels) for u in batch]))


def character_error_rate(model: CTCHeadModel, corpus: FrameCorpus, utts: list[Utterance]
                         ) -> float:
    from assistant.eval.metrics import edit_distance

    errors = total = 0
    model.eval()
    with torch.no_grad():
        for utt in utts:
            log_probs = model(torch.from_numpy(corpus.frames(utt))[None])[0].numpy()
            reference = "".join(VOCAB[i] for i in utt.labels)
            errors += edit_distance(list(greedy_decode(log_probs)), list(reference))
            total += len(reference)
    model.train()
    return errors / max(1, total)


def train(data_dir: Path, run_dir: Path, config: TrainConfig, threads: int = 0,
          progress: bool = True) -> dict:
    """Train (or resume) in ``run_dir``; returns the training summary for the model card."""
    from tqdm import tqdm

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(config.seed)
    corpus = FrameCorpus(data_dir)
    train_utts, valid_utts = corpus.split(config.validation_shards)
    model = CTCHeadModel(corpus.width, config.design)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    steps_per_epoch = len(batches(train_utts, config.batch_frames, np.random.default_rng(0)))
    total_steps = steps_per_epoch * config.epochs
    schedule = warmup_cosine(optimizer, config.warmup_steps, total_steps)
    state = RunState(run_dir, asdict(config), model, optimizer, schedule)
    step, epoch, seconds, history = 0, 0, 0.0, []
    if (progress_so_far := state.load()) is not None:
        step, epoch, seconds, history = (progress_so_far[k] for k in (
            "step", "epoch", "seconds", "history"))

    def save(epoch_done: int) -> None:
        state.save(step=step, epoch=epoch_done, seconds=seconds, history=history)

    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    bar = tqdm(total=total_steps, initial=step, desc="train e2e head", unit="step",
               disable=not progress)
    while epoch < config.epochs:
        order = batches(train_utts, config.batch_frames,
                        np.random.default_rng([config.seed, epoch]))
        skip = step - epoch * steps_per_epoch  # a resumed epoch continues where it stopped
        losses = []
        for batch in order[skip:]:
            started = time.perf_counter()
            x, targets, in_lens, out_lens = _collate(corpus, batch)
            log_probs = model(x).transpose(0, 1)  # (T, B, V) for CTCLoss
            loss = ctc(log_probs, targets, in_lens, out_lens)
            optimizer_step(loss, optimizer, schedule, model.parameters(), 5.0)
            step += 1
            seconds += time.perf_counter() - started
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
            if step % config.save_every == 0:
                save(epoch)
        epoch += 1
        cer = character_error_rate(model, corpus, valid_utts) if valid_utts else None
        history.append({"epoch": epoch, "loss": round(float(np.mean(losses)), 4) if losses
                        else None, "validation_cer": None if cer is None else round(cer, 4)})
        bar.write(f"epoch {epoch}: {history[-1]}")
        save(epoch)
    bar.close()
    torch.save(model.state_dict(), run_dir / "model.pt")
    return {"design": asdict(config.design), "train_config": asdict(config),
            "utterances": len(train_utts), "validation_utterances": len(valid_utts),
            "frames": int(sum(u.frames for u in train_utts)), "steps": step,
            "train_seconds": round(seconds, 1), "history": history,
            "parameters": sum(p.numel() for p in model.parameters()), "width": corpus.width}


def export(model: CTCHeadModel, path: Path, card: dict) -> dict:
    """Write the numpy checkpoint and its card (with the sha256 the runtime checks)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez(f, **model.numpy_weights())
    full = {"format": FORMAT, "vocab": list(VOCAB), "tail_s": TAIL_S, **card,
            "sha256": sha256_of(path), "bytes": path.stat().st_size}
    path.with_suffix(".json").write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")
    return full
