"""Iterative self-improvement on the tiny preset: round 0 (format tuning), round 1 (RL with RAE)
and each later round (the RL policy's verified answers distilled into the base model, then RL
again) side by side, per level, over seeds.

    python examples/rounds.py --seeds 0 1 2 --rounds 2             # the README's table (hours on a CPU)
    python examples/rounds.py --seeds 0 --rounds 2 --per-level 200 # one seed, about 35 minutes here

Each seed is one ``satori train --preset tiny --rounds R --resume`` run in ``OUT/seed-S`` (an
interrupted one continues; a finished one is read back). Every stage's model then answers the
same held-out problems per level greedily, so consecutive stages are compared on the same
problems (McNemar's test per seed). Written: ``OUT/rounds.md`` (mean and range over seeds; for
each later round the distilled set's size and self-correction share) and ``OUT/results.json``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.config import TrainConfig, preset
from agents.engines import SamplingParams, load_engine
from agents.evaluation.episodes import paired_verdicts
from agents.evaluation.metrics import mcnemar, spread
from agents.train import run
from satori_env import load_problems
from satori_env.atomic import atomic_write

EVAL_SEED = 1234  # the held-out problems: the same for every stage and seed (paired comparisons)
GREEDY = SamplingParams(max_new_tokens=192, temperature=0.0)


@dataclass
class Settings:
    """The runs and their evaluation."""

    out: str = "runs/rounds"
    seeds: tuple[int, ...] = (0,)
    rounds: int = 2
    per_level: int = 200
    eval_levels: tuple[int, ...] = (1, 2, 3, 4, 5)
    threads: int = 0
    overrides: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields other than the preset's


def train_config(settings: Settings, seed: int) -> TrainConfig:
    """One seed's run: the tiny preset with ``rounds``, resumable, in ``OUT/seed-S``."""
    out = str(Path(settings.out) / f"seed-{seed}")
    return replace(
        preset("tiny"),
        out=out,
        seed=seed,
        rounds=settings.rounds,
        resume=True,
        threads=settings.threads,
        **settings.overrides,
    )


def stages(out: Path, rounds: int) -> list[tuple[str, Path]]:
    """Every stage's policy of a run in ``out``: round 0's format tuning, round 1's RL, and
    each later round's distilled model and its RL."""
    found = [("round 0: SFT", out / "sft" / "model"), ("round 1: SFT + RL", out / "rl" / "model")]
    for k in range(2, rounds + 1):
        here = out / f"round-{k}"
        found += [
            (f"round {k}: distilled", here / "sft" / "model"),
            (f"round {k}: distilled + RL", here / "rl" / "model"),
        ]
    return found


def run_seed(settings: Settings, seed: int) -> dict:
    """Train (or read back) one seed's run, then evaluate every stage on the held-out problems."""
    config = train_config(settings, seed)
    out = Path(config.out)
    run(config)
    problems = {
        level: load_problems("arith:test", level=level, limit=settings.per_level, seed=EVAL_SEED)
        for level in settings.eval_levels
    }
    rows = json.loads((out / "rounds.json").read_text())
    cache = out / "held-out.json"  # every stage's verdicts, kept so that a later call reads them back
    evaluated = json.loads(cache.read_text()) if cache.exists() else {}
    asked = {str(level): len(group) for level, group in problems.items()}
    for name, model in stages(out, settings.rounds):
        if evaluated.get(name, {}).get("problems") == asked:
            continue
        engine, tokenizer = load_engine(str(model))
        evaluated[name] = {**paired_verdicts(engine, tokenizer, problems, params=GREEDY), "problems": asked}
        atomic_write(cache, json.dumps(evaluated).encode())
    return {"stages": {name: evaluated[name] for name, _ in stages(out, settings.rounds)}, "rounds": rows}


def write_report(settings: Settings, results: dict[int, dict], out: Path) -> str:
    """``OUT/rounds.md`` (returned) and ``OUT/results.json``."""
    levels = [str(level) for level in settings.eval_levels]
    names = list(results[settings.seeds[0]]["stages"])
    header = [
        "stage",
        *(f"L{level}" for level in levels),
        "all",
        "vs previous stage (z)",
        "repairs",
        "distilled (self-corr.)",
    ]
    lines = [header, ["---"] * len(header)]
    for index, name in enumerate(names):
        finals = [results[seed]["stages"][name] for seed in settings.seeds]
        cells = [name, *(spread([100 * float(np.mean(f["verdicts"][level])) for f in finals]) for level in levels)]
        cells.append(spread([100 * float(np.mean(_all(f))) for f in finals]))
        if index:
            tests = [
                mcnemar(_all(results[s]["stages"][names[index - 1]]), _all(results[s]["stages"][name]))
                for s in settings.seeds
            ]
            cells.append(
                f"{spread([100 * t.difference for t in tests], sign=True)} ({', '.join(f'{t.z:.1f}' for t in tests)})"
            )
        else:
            cells.append("-")
        cells.append(spread([100 * f["repaired"] / max(f["repair_tried"], 1) for f in finals]) + " %")
        cells.append(_distilled(settings, results, name))
        lines.append(cells)
    table = "\n".join("| " + " | ".join(line) + " |" for line in lines)
    note = (
        f"\n\nGreedy held-out accuracy (%), {settings.per_level} problems per level (arith:test, the same for every "
        f"stage and seed), mean and range over seeds {list(settings.seeds)}. vs previous stage: the difference in "
        "points on the same problems and McNemar's z per seed (|z| > 1.96: outside the paired noise). repairs: the "
        "share of its own wrong answers the policy gets right when restarted after <|reflect|>. distilled: the "
        "trajectories a round kept from its sampling (mean over seeds) and the share of them in which a reflect or "
        "explore turned a wrong answer into a right one.\n"
    )
    atomic_write(out / "rounds.md", (table + note).encode())
    atomic_write(out / "results.json", json.dumps({str(s): r for s, r in results.items()}).encode())
    return table + note


def _distilled(settings: Settings, results: dict[int, dict], name: str) -> str:
    if not name.endswith(": distilled"):
        return "-"
    k = int(name.split()[1].rstrip(":"))
    rows = [next(row for row in results[seed]["rounds"] if row["round"] == k) for seed in settings.seeds]
    kept = np.mean([row["distilled"] for row in rows])
    return f"{kept:.0f} ({spread([100 * row['self_correction_share'] for row in rows])} %)"


def _all(final: dict) -> list[bool]:
    return [v for level in sorted(final["verdicts"], key=int) for v in final["verdicts"][level]]


def main(settings: Settings) -> dict[int, dict]:
    """Run (or read) every seed, evaluate, write the report; return the results."""
    if settings.threads:
        torch.set_num_threads(settings.threads)
    results = {seed: run_seed(settings, seed) for seed in settings.seeds}
    print(write_report(settings, results, Path(settings.out)))
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = Settings()
    parser.add_argument("--out", default=defaults.out)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(defaults.seeds))
    parser.add_argument("--rounds", type=int, default=defaults.rounds)
    parser.add_argument("--per-level", type=int, default=defaults.per_level)
    parser.add_argument("--eval-levels", type=int, nargs="+", default=list(defaults.eval_levels))
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    main(
        Settings(
            out=args.out, seeds=tuple(args.seeds), rounds=args.rounds, per_level=args.per_level,
            eval_levels=tuple(args.eval_levels), threads=args.threads,
        )
    )  # fmt: skip
