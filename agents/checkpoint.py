"""Training checkpoints: atomic, complete (model, tokenizer, optimiser, scheduler, RNG states,
trainer state), and resumable exactly.

Layout of a run directory::

    RUN/checkpoints/step-000200/   model (save_pretrained), tokenizer, trainer_state.pt
    RUN/checkpoints/step-000400/
    RUN/model/                     the final model

Each checkpoint directory is written with :func:`satori_env.atomic.atomic_directory`, so a
crash mid-save leaves the previous checkpoints whole; the newest ``keep`` are kept.
"""

from __future__ import annotations

import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from satori_env.atomic import atomic_directory

__all__ = ["latest_checkpoint", "load_checkpoint", "rng_state", "save_checkpoint", "set_rng_state"]

_STEP_DIR = re.compile(r"^step-(\d+)$")


def rng_state() -> dict[str, Any]:
    """The state of every random generator a run uses (Python, NumPy, torch CPU and CUDA)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    model,
    tokenizer,
    optimizers: dict[str, torch.optim.Optimizer],
    schedulers: dict[str, Any],
    state: dict[str, Any],
    extra: Callable[[Path], None] | None = None,
    keep: int = 2,
) -> Path:
    """Write ``RUN/checkpoints/step-NNNNNN`` atomically and drop all but the newest ``keep``;
    ``extra(directory)`` may add files of its own (a restart buffer)."""
    root = Path(run_dir) / "checkpoints"
    target = root / f"step-{step:06d}"
    with atomic_directory(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        torch.save(
            {
                "step": step,
                "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
                "schedulers": {name: sched.state_dict() for name, sched in schedulers.items()},
                "rng": rng_state(),
                "state": state,
            },
            tmp / "trainer_state.pt",
        )
        if extra is not None:
            extra(tmp)
    for old in _checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def _checkpoints(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _STEP_DIR.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    found = _checkpoints(Path(run_dir) / "checkpoints")
    return found[-1] if found else None


def load_checkpoint(
    path: str | Path,
    model,
    optimizers: dict[str, torch.optim.Optimizer],
    schedulers: dict[str, Any],
) -> dict[str, Any]:
    """Restore weights, optimisers, schedulers and RNG states from ``path``; returns the trainer
    state saved with it (and ``"step"``)."""
    from safetensors.torch import load_file

    path = Path(path)
    weights = {}
    for shard in sorted(path.glob("*.safetensors")):
        weights.update(load_file(str(shard)))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    tied = {k for k in missing if "lm_head" in k and getattr(model.config, "tie_word_embeddings", False)}
    if set(missing) - tied or unexpected:
        raise ValueError(f"{path} does not fit this model: missing {sorted(set(missing) - tied)}, unexpected {sorted(unexpected)}")
    if tied:
        model.tie_weights()
    saved = torch.load(path / "trainer_state.pt", weights_only=False)
    for name, opt in optimizers.items():
        opt.load_state_dict(saved["optimizers"][name])
    for name, sched in schedulers.items():
        sched.load_state_dict(saved["schedulers"][name])
    set_rng_state(saved["rng"])
    return {**saved["state"], "step": saved["step"]}
