"""Device and precision, chosen at run time: the same code runs on a CPU and a GPU."""

from __future__ import annotations

import contextlib
from typing import Any

import torch

__all__ = ["PAD_MULTIPLE", "autocast", "choose_device", "padded_length", "rollout_autocast"]


def choose_device(device: str = "auto") -> torch.device:
    """ "auto" picks CUDA when there is a GPU, else the CPU; anything else is taken as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast where the device supports it (CUDA with bf16, or the CPU); else a no-op."""
    if not enabled:
        return contextlib.nullcontext()
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def rollout_autocast(config: Any, device: torch.device):
    """The precision a run's HF-engine rollouts sample in (``config.rollout_precision``): bf16
    autocast for "bf16", and for "auto" on a CPU when the learner runs in bf16 (the learner then
    scores the rollout in the precision that wrote it); else fp32."""
    precision = config.rollout_precision
    bf16 = precision == "bf16" or (precision == "auto" and config.bf16 and device.type == "cpu")
    return autocast(device, bf16 and config.engine == "hf")


PAD_MULTIPLE = 16  # few distinct batch shapes: kernel caches (oneDNN on CPUs) stay small


def padded_length(length: int, multiple: int = PAD_MULTIPLE) -> int:
    """``length`` rounded up to a multiple of ``multiple`` (the width batches are padded to)."""
    return -(-length // multiple) * multiple
