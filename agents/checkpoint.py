"""Training checkpoints: atomic, complete (model, tokenizer, optimiser, scheduler, RNG states,
trainer state), and resumable exactly.

Layout of a run directory::

    RUN/checkpoints/step-000200/   model (save_pretrained), tokenizer, trainer_state.pt
    RUN/checkpoints/step-000400/
    RUN/model/                     the final model

Each checkpoint directory is written with :func:`satori_env.atomic.atomic_directory`, so a
crash mid-save leaves the previous checkpoints whole; the newest ``keep`` are kept, and what a
killed save left behind is removed by :func:`clean_partial_writes` when a run starts or resumes.

``trainer_state.pt`` holds only plain data (tensors, numbers, strings, lists, dicts; RNG states
are stored in that form too) and is read with ``torch.load(weights_only=True)``: a checkpoint
received from someone else cannot run code when it is resumed.
"""

from __future__ import annotations

import pickle
import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from satori_env.atomic import atomic_directory, remove_partial_writes

__all__ = [
    "clean_partial_writes",
    "latest_checkpoint",
    "load_checkpoint",
    "load_trainer_state",
    "prune_checkpoints",
    "rng_state",
    "save_checkpoint",
    "save_trainer_state",
    "set_rng_state",
]

_STEP_DIR = re.compile(r"^step-(\d+)$")


def rng_state() -> dict[str, Any]:
    """The state of every random generator a run uses (Python, NumPy, torch CPU and CUDA), as
    plain data (no NumPy arrays), so that it loads with ``weights_only=True``."""
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"] = {"key": numpy_state["state"]["key"].tolist(), "pos": int(numpy_state["state"]["pos"])}
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    random.setstate(state["python"])
    numpy_state = dict(state["numpy"])
    numpy_state["state"] = {
        "key": np.asarray(numpy_state["state"]["key"], dtype=np.uint32),
        "pos": numpy_state["state"]["pos"],
    }
    np.random.set_state(numpy_state)
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
        save_trainer_state(tmp, step, state, optimizers, schedulers)
        if extra is not None:
            extra(tmp)
    prune_checkpoints(run_dir, keep)
    return target


def save_trainer_state(
    directory: Path,
    step: int,
    state: dict[str, Any],
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
    schedulers: dict[str, Any] | None = None,
) -> None:
    """``trainer_state.pt`` (plain data): the step, optimisers and schedulers (their state dicts),
    this process's RNG states and the trainer's ``state``."""
    torch.save(
        {
            "step": step,
            "optimizers": {name: opt.state_dict() for name, opt in (optimizers or {}).items()},
            "schedulers": {name: sched.state_dict() for name, sched in (schedulers or {}).items()},
            "rng": rng_state(),
            "state": state,
        },
        directory / "trainer_state.pt",
    )


def prune_checkpoints(run_dir: str | Path, keep: int = 2) -> None:
    """Delete all but the newest ``keep`` complete checkpoints of a run."""
    for old in _checkpoints(Path(run_dir) / "checkpoints")[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def _checkpoints(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _STEP_DIR.match(p.name))]
    return [p for _, p in sorted(found)]


def clean_partial_writes(run_dir: str | Path) -> list[Path]:
    """Remove what a save killed mid-write left in a run directory and its ``checkpoints/``
    (temporary checkpoint directories and files; see
    :func:`satori_env.atomic.remove_partial_writes`). Returns what was removed."""
    run_dir = Path(run_dir)
    return remove_partial_writes(run_dir) + remove_partial_writes(run_dir / "checkpoints")


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
        raise ValueError(
            f"{path} does not fit this model: missing {sorted(set(missing) - tied)}, unexpected {sorted(unexpected)}"
        )
    if tied:
        model.tie_weights()
    saved = load_trainer_state(path)
    for name, opt in optimizers.items():
        opt.load_state_dict(saved["optimizers"][name])
    for name, sched in schedulers.items():
        sched.load_state_dict(saved["schedulers"][name])
    return {**saved["state"], "step": saved["step"]}


def load_trainer_state(checkpoint: str | Path) -> dict[str, Any]:
    """A checkpoint's ``trainer_state.pt`` as plain data (refused unread when it holds anything
    else), with this process's RNG states restored from it."""
    saved = _load_trainer_state(Path(checkpoint) / "trainer_state.pt")
    set_rng_state(saved["rng"])
    return saved


def _load_trainer_state(path: Path) -> dict[str, Any]:
    """``trainer_state.pt`` as plain data; anything else is refused before it can run."""
    try:
        saved = torch.load(path, weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        if found is None:
            raise ValueError(f"{path} is not a readable checkpoint (corrupted or another format)") from None
        raise ValueError(
            f"{path} holds Python objects other than plain data (tensors, numbers, strings, lists, dicts), "
            f"such as {found[1][:100]}; it was not written by satori-env (or by an older version) and is "
            "refused unread, since unpickling it could run code"
        ) from None
    except (OSError, EOFError, RuntimeError) as error:
        raise ValueError(
            f"{path} is not a readable checkpoint (missing, truncated or corrupted): {str(error)[:200]}"
        ) from None
    if not isinstance(saved, dict) or not {"step", "optimizers", "schedulers", "rng", "state"} <= set(saved):
        raise ValueError(
            f"{path} is not a satori-env trainer state (expected keys step, optimizers, schedulers, rng, state)"
        )
    return saved
