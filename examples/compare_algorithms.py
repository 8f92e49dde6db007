"""Every registered algorithm on the tiny preset, same budget and seeds: a markdown table of
held-out accuracy before and after RL, and a PNG of learning curves.

Each run starts from the same format-tuned policy (stage one of ``satori train --preset tiny``,
built when missing) and gets the same number of episodes. A finished run
(``OUT/ALGO/seedS/rl/metrics.json``) is read instead of trained again, so the script resumes, and
several copies with ``--threads 1`` and different ``--algos`` can share a small machine; a last
call with every algorithm writes the combined report.

    python examples/compare_algorithms.py --iterations 15 --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from agents.algorithms import ALGORITHMS
from agents.config import preset
from agents.plotting import plot_learning_curves
from agents.train import stage_one, train_rl


def main(
    algos: list[str] | None = None,
    seeds: tuple[int, ...] = (0,),
    iterations: int = 15,
    eval_per_level: int = 200,
    model: str | None = None,
    out: str = "runs/compare",
    threads: int = 0,
    **overrides,
) -> dict[str, list[dict]]:
    """Train each algorithm for each seed (``overrides``: more TrainConfig fields, the same for
    every run); write ``OUT/comparison.md``, ``OUT/results.json`` and ``OUT/learning_curves.png``;
    return the per-run results by algorithm."""
    if threads:
        torch.set_num_threads(threads)
    algos = algos or sorted(ALGORITHMS)
    unknown = sorted(set(algos) - set(ALGORITHMS))
    if unknown:
        raise ValueError(f"unknown algorithms {unknown}; valid algorithms: {sorted(ALGORITHMS)}")
    base = replace(preset("tiny"), iterations=iterations, eval_per_level=eval_per_level, progress=False, **overrides)
    model = model or str(stage_one(replace(base, out="runs/tiny")))
    runs: dict[str, list[dict]] = {}
    for algo in algos:
        for seed in seeds:
            config = replace(base, algo=algo, seed=seed, out=str(Path(out) / algo / f"seed{seed}"))
            metrics = Path(config.out) / "rl" / "metrics.json"
            result = (
                json.loads(metrics.read_text()) if metrics.exists() else train_rl(config, model)
            )  # finished runs are read
            runs.setdefault(algo, []).append(summarise(result, seed))
            print(f"{algo} seed {seed}: {runs[algo][-1]['before']} -> {runs[algo][-1]['after']}", flush=True)
    write_report(runs, Path(out), iterations, base.episodes_per_iteration, base.eval_levels)
    return runs


def summarise(result: dict, seed: int) -> dict:
    """What the report needs of one run's ``train_rl`` result."""
    history = result["history"]
    return {
        "seed": seed,
        "before": result["before"].get("accuracy"),
        "after": result["after"].get("accuracy"),
        "minutes": sum(h["perf/iteration_seconds"] for h in history) / 60,  # RL only, evaluation excluded
        "rollout_accuracy": [h["rollout/accuracy"] for h in history],
    }


def write_report(
    runs: dict[str, list[dict]], out: Path, iterations: int, episodes: int, eval_levels: tuple[int, ...] = (1, 2, 3)
) -> str:
    """The markdown table (also printed), the JSON of every run and the learning-curve PNG."""
    levels = ", ".join(str(level) for level in eval_levels)
    lines = [
        f"{iterations} iterations x {episodes} episodes per run; "
        f"greedy held-out accuracy (arith:test, levels {levels}).",
        "",
        "| algorithm | seeds | before RL | after RL | gain (mean) | gain (min..max) | RL minutes per run |",
        "|---|---|---|---|---|---|---|",
    ]
    for algo, results in runs.items():
        if results[0]["before"] is None:
            continue
        gains = [r["after"] - r["before"] for r in results]
        lines.append(
            f"| {algo} | {len(results)} | {np.mean([r['before'] for r in results]):.3f} | "
            f"{np.mean([r['after'] for r in results]):.3f} "
            f"| {np.mean(gains):+.3f} | {min(gains):+.3f}..{max(gains):+.3f} | "
            f"{np.mean([r['minutes'] for r in results]):.1f} |"
        )
    table = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    (out / "comparison.md").write_text(table + "\n")
    (out / "results.json").write_text(json.dumps(runs, indent=2))
    curves = {algo: [r["rollout_accuracy"] for r in results] for algo, results in runs.items()}
    plot_learning_curves(curves, out / "learning_curves.png", ylabel="rollout accuracy (sampled)", title="tiny preset")
    print(table)
    return table


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--algos", nargs="+", default=None, help=f"default: all registered ({', '.join(sorted(ALGORITHMS))})"
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--eval-per-level", type=int, default=200)
    parser.add_argument("--model", default=None, help="a format-tuned policy (default: build runs/tiny with stage one)")
    parser.add_argument("--out", default="runs/compare")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument(
        "--curriculum",
        default="adaptive",
        help="the tiny preset's curriculum: adaptive, uniform, or None (a uniform random mix)",
    )
    parser.add_argument("--train-levels", type=int, nargs="+", default=None, help="default: the tiny preset's")
    parser.add_argument("--eval-levels", type=int, nargs="+", default=None, help="default: the tiny preset's")
    args = parser.parse_args()
    curriculum = None if args.curriculum == "None" else args.curriculum
    levels = {
        name: tuple(value)
        for name, value in (("train_levels", args.train_levels), ("eval_levels", args.eval_levels))
        if value is not None
    }
    main(
        args.algos,
        tuple(args.seeds),
        args.iterations,
        args.eval_per_level,
        args.model,
        args.out,
        args.threads,
        curriculum=curriculum,
        **levels,
    )
