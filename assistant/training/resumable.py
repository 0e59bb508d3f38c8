"""What makes a training run on 2 cores survivable: ``state.pt`` (model, optimizer, schedule
and progress) written atomically every few hundred steps and read back by a rerun, which must
use the same settings; plus the warm-up + cosine schedule both trainers use."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int
                  ) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(
        1.0, (s + 1) / warmup_steps) * 0.5 * (1 + math.cos(math.pi * min(
            1.0, s / max(1, total_steps)))))


class RunState:
    """``run_dir/state.pt`` for ``model`` trained with ``config`` (a dict of its settings)."""

    def __init__(self, run_dir: Path, config: dict, model: nn.Module,
                 optimizer: torch.optim.Optimizer,
                 schedule: torch.optim.lr_scheduler.LRScheduler) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / "state.pt"
        self.config, self.model, self.optimizer, self.schedule = config, model, optimizer, schedule

    def load(self) -> dict | None:
        """The saved progress (after restoring the model, optimizer and schedule), or None for
        a fresh run; a run made with other settings is refused."""
        if not self.path.exists():
            return None
        state = torch.load(self.path, weights_only=False)
        if state["config"] != self.config:
            raise ValueError(f"{self.path} was trained with other settings; use a new --run-dir")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        return {k: v for k, v in state.items()
                if k not in ("config", "model", "optimizer", "schedule")}

    def save(self, **progress) -> None:
        tmp = self.path.with_suffix(".tmp")
        torch.save({"config": self.config, "model": self.model.state_dict(),
                    "optimizer": self.optimizer.state_dict(),
                    "schedule": self.schedule.state_dict(), **progress}, tmp)
        tmp.replace(self.path)


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer,
                   schedule: torch.optim.lr_scheduler.LRScheduler, params, max_norm: float
                   ) -> None:
    optimizer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(params, max_norm)
    optimizer.step()
    schedule.step()
