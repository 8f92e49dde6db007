"""What RL with COAT and Restart-and-Explore adds beyond imitation, measured against more
imitation: five arms, the same seeds, problems and minutes.

    python examples/ablations.py --seeds 0 1 2 --per-level 1000   # the README's table (hours on a CPU)
    python examples/ablations.py --seeds 0 --per-level 200        # one seed, about an hour here

Per seed, one base model and one set of demonstrations (COAT, and the same problems as plain
chain of thought for the CoT arm):

| arm | what |
|---|---|
| SFT | format tuning to early stopping on held-out demonstrations |
| SFT, continued | the same run, same demonstrations, for as many more minutes as RL takes |
| SFT + RL | the tiny preset's RL from the SFT model: COAT + RAE |
| SFT + RL, no RAE | the same with ``restart_prob 0`` |
| CoT SFT + RL | format tuning on the chain-of-thought demonstrations, then the same RL |

Every arm's final policy answers the same held-out problems per level greedily (level 5 by
default is one no stage trains on; RL also sees level 4, which no demonstration shows); its own
wrong answers are restarted after ``<|reflect|>`` (how many it repairs); held-out accuracy
against minutes is measured along the way. Written: ``OUT/ablations.md`` (mean and range over
seeds, McNemar tests against SFT and SFT-continued on the same problems), ``OUT/curves.png``,
``OUT/results.json``. Every finished piece is kept under ``OUT/seed-S`` and skipped on a rerun
(one with another ``--per-level`` evaluates again, without training), and an interrupted run or
training stage resumes.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.config import preset
from agents.data.synth import synthesize, write_demos
from agents.engines import SamplingParams, load_engine
from agents.evaluation.episodes import evaluate, paired_verdicts
from agents.evaluation.metrics import mcnemar, spread
from agents.models import build_model
from agents.sft import SFTArgs, train_sft
from agents.train import train_rl
from satori_env import load_problems
from satori_env.atomic import atomic_write

ARMS = {
    "sft": "SFT",
    "sft_continued": "SFT, continued",
    "sft_rl": "SFT + RL (COAT + RAE)",
    "sft_rl_no_rae": "SFT + RL without RAE",
    "cot_sft_rl": "CoT SFT + RL",
}
EVAL_SEED = 1234  # the held-out problems: the same for every arm and seed (paired comparisons)


@dataclass
class Settings:
    """The comparison's budget and scale."""

    out: str = "runs/ablations"
    seeds: tuple[int, ...] = (0,)
    demos: int = 20000
    demo_levels: tuple[int, ...] = (1, 2, 3)
    rl_levels: tuple[int, ...] = (1, 2, 3, 4)  # RL also sees level 4, which no demonstration shows
    eval_levels: tuple[int, ...] = (1, 2, 3, 4, 5)  # level 5: no stage trains on it
    per_level: int = 200
    curve_per_level: int = 50
    sft_steps: int = 2000  # the cap: early stopping usually ends it first
    validation: int = 500
    validate_every: int = 100
    patience: int = 3
    chunk_minutes: float = 2.0
    rl_iterations: int = 25
    rl_chunk: int = 5
    rl_overrides: dict[str, Any] = field(default_factory=dict)
    threads: int = 0


def main(settings: Settings) -> dict[str, Any]:
    """Run (or read) every arm of every seed; write the report; return the results."""
    if settings.threads:
        torch.set_num_threads(settings.threads)
    out = Path(settings.out)
    results = {seed: run_seed(settings, seed, out / f"seed-{seed}") for seed in settings.seeds}
    table = write_report(settings, results, out)
    print(table)
    return results


# -- one seed -----------------------------------------------------------------------------------------


def run_seed(settings: Settings, seed: int, root: Path) -> dict[str, dict]:
    base = root / "base"
    if not (base / "config.json").exists():
        build_model("tiny", base, seed)
    for name, cot in (("demos.jsonl", False), ("demos_cot.jsonl", True)):
        if not (root / name).exists():
            write_demos(synthesize(settings.demos, levels=settings.demo_levels, seed=seed, cot=cot)[0], root / name)
    arms: dict[str, dict] = {}
    arms["sft"] = format_tune(settings, seed, base, root / "demos.jsonl", root / "sft", settings.patience)
    arms["sft_rl"] = reinforce(settings, seed, arms["sft"], root / "sft_rl", restart=True)
    rl_minutes = arms["sft_rl"]["minutes"] - arms["sft"]["minutes"]
    arms["sft_continued"] = format_tune(
        settings, seed, base, root / "demos.jsonl", root / "sft_continued", 0, after=arms["sft"], minutes=rl_minutes
    )
    arms["sft_rl_no_rae"] = reinforce(settings, seed, arms["sft"], root / "sft_rl_no_rae", restart=False)
    cot_sft = format_tune(settings, seed, base, root / "demos_cot.jsonl", root / "cot_sft", settings.patience)
    arms["cot_sft_rl"] = reinforce(settings, seed, cot_sft, root / "cot_sft_rl", restart=True)
    for name, arm in arms.items():
        if arm.get("final", {}).get("problems") != _problem_count(settings):  # none yet, or on other problems
            arm["final"] = final_evaluation(settings, arm["model"])
            _save(root / name / "arm.json", arm)
    return arms


def format_tune(
    settings: Settings,
    seed: int,
    base: Path,
    demos: Path,
    root: Path,
    patience: int,
    after: dict | None = None,
    minutes: float | None = None,
) -> dict:
    """Format tuning in chunks of ``chunk_minutes`` (a curve point after each): to early stopping
    (or the schedule's end), or, ``after`` an earlier arm, that arm's run continued for
    ``minutes`` more, its cosine schedule stretched over the steps those minutes allow at the
    earlier arm's pace."""
    done = _load(root / "arm.json")
    if done is not None:
        return done
    steps = settings.sft_steps
    if after is not None:
        done_steps = _load(Path(after["run"]) / "metrics.json")["steps"]
        steps = done_steps + max(1, round(minutes * done_steps / after["minutes"]))
    run = root / "run"
    progress = _load(root / "progress.json")
    if progress is None:
        if after is not None:  # continue the earlier arm's run from where it stopped
            shutil.copytree(Path(after["run"]), run, dirs_exist_ok=True)
            shutil.rmtree(run / "model", ignore_errors=True)
        progress = {
            "spent": 0.0,  # this arm's minutes
            "start": after["minutes"] if after is not None else 0.0,
            "curve": list(after["curve"]) if after is not None else [],
        }
    while True:
        chunk = settings.chunk_minutes if minutes is None else min(settings.chunk_minutes, minutes - progress["spent"])
        metrics = train_sft(
            SFTArgs(
                model=str(base), data=str(demos), out=str(run), steps=steps, seed=seed,
                validation=settings.validation, validate_every=settings.validate_every, patience=patience,
                max_minutes=max(chunk, 0.01), resume=True, eval_per_level=0, progress=False,
            )
        )  # fmt: skip
        progress["spent"] += metrics["train_seconds"] / 60
        total = progress["start"] + progress["spent"]
        progress["curve"].append([total, curve_accuracy(settings, run / "model")])
        _save(root / "progress.json", progress)
        if metrics["stop_reason"] != "time limit" or (minutes is not None and progress["spent"] >= minutes - 1e-3):
            break
    arm = {"model": str(run / "model"), "run": str(run), "minutes": total, "curve": progress["curve"]}
    _save(root / "arm.json", arm)
    return arm


def reinforce(settings: Settings, seed: int, start: dict, root: Path, restart: bool) -> dict:
    """The tiny preset's RL from ``start``'s policy in chunks of ``rl_chunk`` iterations."""
    done = _load(root / "arm.json")
    if done is not None:
        return done
    config = replace(
        preset("tiny"), out=str(root), seed=seed, eval_per_level=0, progress=False, checkpoint_every=settings.rl_chunk,
        resume=True, train_levels=settings.rl_levels, **settings.rl_overrides,
        **({} if restart else {"restart_prob": 0.0}),
    )  # fmt: skip
    curve = list(start["curve"])
    for iterations in range(settings.rl_chunk, settings.rl_iterations + 1, settings.rl_chunk):
        result = train_rl(replace(config, iterations=iterations), start["model"])
        seconds = sum(row["perf/iteration_seconds"] for row in result["history"])
        curve.append([start["minutes"] + seconds / 60, curve_accuracy(settings, root / "rl" / "model")])
    arm = {"model": str(root / "rl" / "model"), "minutes": curve[-1][0], "curve": curve, "start": start["model"]}
    _save(root / "arm.json", arm)
    return arm


# -- measuring -------------------------------------------------------------------------------------------


def _problems(settings: Settings, per_level: int) -> dict[int, list]:
    return {
        level: load_problems("arith:test", level=level, limit=per_level, seed=EVAL_SEED)
        for level in settings.eval_levels
    }


GREEDY = SamplingParams(max_new_tokens=192, temperature=0.0)


def curve_accuracy(settings: Settings, model_path: Path) -> float:
    """Greedy accuracy over the first ``curve_per_level`` held-out problems of every level."""
    engine, tokenizer = load_engine(str(model_path))
    problems = [p for group in _problems(settings, settings.curve_per_level).values() for p in group]
    return evaluate(engine, tokenizer, problems, params=GREEDY, batch_size=256).accuracy


def final_evaluation(settings: Settings, model_path: str) -> dict:
    """Verdicts per level on the held-out problems, and how many of its own wrong answers the
    policy repairs after ``<|reflect|>``."""
    engine, tokenizer = load_engine(model_path)
    verdicts = paired_verdicts(engine, tokenizer, _problems(settings, settings.per_level), params=GREEDY)
    return {**verdicts, "problems": _problem_count(settings)}


def _problem_count(settings: Settings) -> dict[str, int]:
    """What a final evaluation was run on: held-out problems per level."""
    return {str(level): settings.per_level for level in settings.eval_levels}


# -- the report --------------------------------------------------------------------------------------------


def _all(final: dict) -> list[bool]:
    return [v for level in sorted(final["verdicts"], key=int) for v in final["verdicts"][level]]


def write_report(settings: Settings, results: dict[int, dict[str, dict]], out: Path) -> str:
    """``OUT/ablations.md`` (returned), ``OUT/curves.png`` and ``OUT/results.json``."""
    levels = [str(level) for level in settings.eval_levels]
    header = ["arm", *(f"L{level}" for level in levels), "all", "vs SFT (z)", "vs SFT, continued (z)", "repairs", "min"]
    rows = []
    for arm, label in ARMS.items():
        finals = [results[seed][arm]["final"] for seed in settings.seeds]
        cells = [label]
        for level in levels:
            cells.append(spread([100 * float(np.mean(f["verdicts"][level])) for f in finals]))
        cells.append(spread([100 * float(np.mean(_all(f))) for f in finals]))
        for baseline in ("sft", "sft_continued"):
            if arm == baseline:
                cells.append("-")
                continue
            tests = [
                mcnemar(_all(results[s][baseline]["final"]), _all(results[s][arm]["final"])) for s in settings.seeds
            ]
            cells.append(
                f"{spread([100 * t.difference for t in tests], sign=True)} ({', '.join(f'{t.z:.1f}' for t in tests)})"
            )
        repairs = [f["repaired"] / f["repair_tried"] if f["repair_tried"] else 0.0 for f in finals]
        cells.append(spread([100 * r for r in repairs]) + " %")
        cells.append(f"{np.mean([results[s][arm]['minutes'] for s in settings.seeds]):.1f}")
        rows.append(cells)
    table = "\n".join("| " + " | ".join(line) + " |" for line in [header, ["---"] * len(header), *rows])
    note = (
        f"\n\nGreedy held-out accuracy (%), {settings.per_level} problems per level (arith:test, the same for every "
        f"arm and seed), mean and range over seeds {list(settings.seeds)}; demonstrations of levels "
        f"{list(settings.demo_levels)} only. vs: the difference in points on the same problems and McNemar's z per "
        "seed (|z| > 1.96: outside the paired noise). repairs: the share of its own wrong answers the policy gets "
        "right when restarted after <|reflect|>. min: training minutes on this machine.\n"
    )
    atomic_write(out / "ablations.md", (table + note).encode())
    atomic_write(out / "results.json", json.dumps({str(s): r for s, r in results.items()}).encode())
    plot_curves(results, out / "curves.png")
    return table + note


def plot_curves(results: dict[int, dict[str, dict]], path: Path) -> None:
    """Held-out accuracy against training minutes, one line per arm and seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5))
    colors = dict(zip(ARMS, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for index, seed in enumerate(sorted(results)):
        for arm, label in ARMS.items():
            curve = results[seed][arm]["curve"]
            minutes, accuracy = zip(*curve) if curve else ((), ())
            axes.plot(minutes, [100 * a for a in accuracy], color=colors[arm], marker=".", alpha=0.8,
                      label=label if index == 0 else None)  # fmt: skip
    axes.set_xlabel("training minutes (format tuning, then RL)")
    axes.set_ylabel("greedy held-out accuracy, % (all evaluated levels)")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _save(path: Path, value: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(value).encode())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = Settings()
    parser.add_argument("--out", default=defaults.out)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(defaults.seeds))
    parser.add_argument("--demos", type=int, default=defaults.demos)
    parser.add_argument("--per-level", type=int, default=defaults.per_level)
    parser.add_argument("--curve-per-level", type=int, default=defaults.curve_per_level)
    parser.add_argument("--rl-levels", type=int, nargs="+", default=list(defaults.rl_levels))
    parser.add_argument("--eval-levels", type=int, nargs="+", default=list(defaults.eval_levels))
    parser.add_argument("--sft-steps", type=int, default=defaults.sft_steps)
    parser.add_argument("--patience", type=int, default=defaults.patience)
    parser.add_argument("--rl-iterations", type=int, default=defaults.rl_iterations)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    main(
        Settings(
            out=args.out, seeds=tuple(args.seeds), demos=args.demos, per_level=args.per_level,
            curve_per_level=args.curve_per_level, rl_levels=tuple(args.rl_levels), eval_levels=tuple(args.eval_levels),
            sft_steps=args.sft_steps,
            patience=args.patience, rl_iterations=args.rl_iterations, threads=args.threads,
        )
    )  # fmt: skip
