"""Learning-rate schedules shared by format tuning and the RL algorithms."""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["rl_schedule", "rl_optimizer_steps", "warmup_cosine"]


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup: int, total: int, min_ratio: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up to the peak learning rate, then cosine decay to ``min_ratio`` of it."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def rl_optimizer_steps(config: Any) -> int:
    """Optimiser steps of a whole RL run: iterations x epochs x minibatches per rollout."""
    return config.iterations * config.ppo_epochs * -(-config.episodes_per_iteration // config.minibatch_size)


def rl_schedule(optimizer: torch.optim.Optimizer, config: Any) -> torch.optim.lr_scheduler.LambdaLR:
    """The RL learning-rate schedule ``config.lr_schedule`` names: ``constant``, or
    ``cosine_with_min_lr`` (Satori's release: linear warm-up over ``lr_warmup_ratio`` of the
    run's optimiser steps, then cosine decay to ``min_lr_ratio`` of the peak)."""
    if config.lr_schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    total = rl_optimizer_steps(config)
    return warmup_cosine(optimizer, math.ceil(config.lr_warmup_ratio * total), total, config.min_lr_ratio)
