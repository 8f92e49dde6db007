"""PNG plots of what people look at: learning curves over seeds, COAT analysis of an evaluation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["plot_coat_analysis", "plot_learning_curves"]


def plot_learning_curves(
    curves: Mapping[str, Sequence[Sequence[float]]],
    path: str | Path,
    ylabel: str,
    xlabel: str = "iteration",
    title: str = "",
) -> Path:
    """One line per name (the mean over its runs) with the band between the runs' minimum and
    maximum; ``curves[name]`` is a list of runs, each a list of values per step. Returns ``path``."""
    plt = _pyplot()
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
    return _save(figure, path)


def plot_coat_analysis(coat: Mapping[str, Mapping], path: str | Path) -> Path:
    """Three panels per evaluation (``coat[benchmark]`` is
    :func:`agents.evaluation.benchmarks.coat_analysis`'s result): meta-actions per response, what
    reflect/explore steps did to the answer, and the response-length distribution."""
    plt = _pyplot()
    names = list(coat)
    figure, (actions, changes, lengths) = plt.subplots(1, 3, figsize=(15, 4.2))
    width = 0.8 / 3
    x = np.arange(len(names))
    for i, action in enumerate(("continue", "reflect", "explore")):
        actions.bar(x + (i - 1) * width, [coat[n]["actions_per_response"][action] for n in names], width, label=action)
    actions.set_title("meta-actions per response")
    kinds = ("wrong_to_right", "right_to_wrong", "kept", "no_answer_before")
    width = 0.8 / len(kinds)
    for i, kind in enumerate(kinds):
        counts = [sum(coat[n]["changes"][a][kind] for a in ("reflect", "explore")) for n in names]
        changes.bar(x + (i - 1.5) * width, counts, width, label=kind.replace("_", " "))
    changes.set_title("reflect/explore: the answer before -> after")
    for axes in (actions, changes):
        axes.set_xticks(x, names, rotation=30, ha="right")
        axes.legend(fontsize=8)
        axes.grid(alpha=0.3, axis="y")
    for name in names:
        lengths.hist(coat[name]["lengths"], bins=30, alpha=0.5, label=name)
    lengths.set_title("response length")
    lengths.set_xlabel("new tokens")
    lengths.legend(fontsize=8)
    return _save(figure, path)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
