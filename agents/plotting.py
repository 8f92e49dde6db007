"""PNG plots of what people look at: learning curves over seeds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["plot_learning_curves"]


def plot_learning_curves(
    curves: Mapping[str, Sequence[Sequence[float]]], path: str | Path, ylabel: str, xlabel: str = "iteration", title: str = ""
) -> Path:
    """One line per name (the mean over its runs) with the band between the runs' minimum and
    maximum; ``curves[name]`` is a list of runs, each a list of values per step. Returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.2))
    for name, runs in curves.items():
        length = min(len(run) for run in runs)
        values = np.asarray([run[:length] for run in runs], dtype=float)
        steps = np.arange(1, length + 1)
        axes.plot(steps, values.mean(0), label=f"{name} ({len(runs)} run{'s' * (len(runs) > 1)})")
        if len(runs) > 1:
            axes.fill_between(steps, values.min(0), values.max(0), alpha=0.2)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    if title:
        axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
