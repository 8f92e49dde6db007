"""Iterative self-improvement, as Satori's round 2: after RL, the policy's own verified COAT
trajectories are distilled back into the base model, and RL with RAE runs again from there.

Round 1 is ``satori train`` itself (``OUT/sft``, ``OUT/rl``). Round k >= 2 lives in
``OUT/round-k``:

* ``samples/part-NNNNN.jsonl``: the round-(k-1) policy sampled on training problems
  (``distill_problems`` problems, ``distill_samples`` samples each, the rollout temperature),
  written a part at a time, atomically, so a killed run keeps the parts it finished;
* ``distilled.jsonl``: what :func:`distill` kept (verified correct, deduplicated; optionally only
  trajectories in which a reflect or explore turned a wrong answer into a right one), as
  demonstrations (the format ``satori sft`` reads);
* ``sft_data.jsonl``: those plus a share of the original demonstrations; ``sft/``: the base model
  format-tuned on it (resumable from its checkpoints);
* ``rl/``: RL with RAE from that model, the restart buffer and curriculum state carried over
  from round k-1 (configurable), under its own TensorBoard run.

``OUT/rounds.json`` holds one row per round with the same held-out evaluation (round 0 is format
tuning alone). With ``--resume`` finished rounds are read back and the interrupted one continues
where it stopped.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from agents.config import TrainConfig
from agents.data.synth import Demonstration, read_demos, write_demos
from agents.engines import SamplingParams, load_engine
from agents.evaluation.episodes import evaluate
from agents.evaluation.metrics import change_outcomes
from satori_env import Problem, load_problems
from satori_env.atomic import atomic_write
from satori_env.verifier import Verifier, default_verifier

__all__ = ["DistillReport", "distill", "mix_demonstrations", "round_dir", "run_rounds", "sample_policy"]

PART_SIZE = 512  # samples per part file of a round's sampling


def round_dir(config: TrainConfig, k: int) -> Path:
    """Where round ``k`` writes (round 1: ``OUT`` itself, as a one-round run)."""
    return Path(config.out) if k == 1 else Path(config.out) / f"round-{k}"


def training_problems(config: TrainConfig, k: int) -> list[Problem]:
    """``distill_problems`` training problems for round ``k``'s sampling, drawn by the seed and
    the round: procedural levels in equal shares, or a random draw from ``config.tasks``."""
    seed = config.seed * 1_000 + k
    if config.tasks == "arith":
        levels = config.train_levels
        counts = [
            config.distill_problems // len(levels) + (i < config.distill_problems % len(levels))
            for i in range(len(levels))
        ]
        return [
            p
            for level, n in zip(levels, counts)
            if n
            for p in load_problems("arith:train", level=level, limit=n, seed=seed)
        ]
    problems = load_problems(config.tasks)
    return random.Random(seed).sample(problems, min(config.distill_problems, len(problems)))


def sample_policy(
    config: TrainConfig, model_path: str, problems: list[Problem], directory: Path, seed: int
) -> list[dict]:
    """``config.distill_samples`` sampled completions of every problem by the policy at
    ``model_path``, as evaluation records with the problem added. Parts already in ``directory``
    are read back, not sampled again (each part has its own seed, so a resumed run samples what
    an uninterrupted one would)."""
    starts = [p for p in problems for _ in range(config.distill_samples)]
    engine = tokenizer = None
    records: list[dict] = []
    for index, begin in enumerate(range(0, len(starts), PART_SIZE)):
        part = directory / f"part-{index:05d}.jsonl"
        if not part.exists():
            if engine is None:
                engine, tokenizer = load_engine(model_path, config.engine, config.device, config.prompt_template)
            chunk = starts[begin : begin + PART_SIZE]
            params = SamplingParams(config.max_new_tokens, config.temperature, config.top_p, seed * 1_000_003 + index)
            result = evaluate(
                engine, tokenizer, chunk, params=params, batch_size=config.episodes_per_iteration,
                prompt_template=config.prompt_template,
            )  # fmt: skip
            rows = [{**record, "problem": p.to_dict()} for record, p in zip(result.records, chunk)]
            atomic_write(part, "".join(json.dumps(row) + "\n" for row in rows).encode())
        records += [json.loads(line) for line in part.read_text().splitlines() if line.strip()]
    return records


@dataclass
class DistillReport:
    """What :func:`distill` did with a round's samples."""

    samples: int
    correct: int
    duplicates: int
    kept: int
    self_corrections: int

    @property
    def self_correction_share(self) -> float:
        """Share of the kept trajectories in which a reflect/explore turned a wrong answer right."""
        return self.self_corrections / self.kept if self.kept else 0.0


def distill(
    records: list[dict], only_self_corrections: bool = False, verifier: Verifier | None = None
) -> tuple[list[Demonstration], DistillReport]:
    """The demonstrations a round distils from sampled ``records`` (``problem`` as a dict,
    ``completion``, ``correct``, ``gold``): verified-correct ones only, each (problem,
    completion) once; with ``only_self_corrections`` only those in which a ``<|reflect|>`` or
    ``<|explore|>`` turned a wrong answer into a right one. Kind ``distilled`` or
    ``self_correction``; every token of the completion is trained."""
    correct = [r for r in records if r["correct"]]
    outcomes = change_outcomes(correct, verifier or default_verifier())
    seen: set[tuple[str, str]] = set()
    demos, duplicates, corrections = [], 0, 0
    for record, changes in zip(correct, outcomes):
        problem = Problem.from_dict(record["problem"])
        key = (problem.question, record["completion"].strip())
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        repaired = any(outcome == "wrong_to_right" for _, outcome in changes)
        if only_self_corrections and not repaired:
            continue
        corrections += repaired
        demos.append(
            Demonstration(problem, "self_correction" if repaired else "distilled", ((record["completion"], True),))
        )
    report = DistillReport(len(records), len(correct), duplicates, len(demos), corrections)
    return demos, report


def mix_demonstrations(
    distilled: list[Demonstration], originals: list[Demonstration], original_share: float, seed: int
) -> list[Demonstration]:
    """A round's format-tuning set: every distilled demonstration and original ones drawn by
    ``seed`` so that they make ``original_share`` of the whole (as many as there are, at most),
    shuffled."""
    if not 0 <= original_share < 1:
        raise ValueError(f"original_share must be in [0, 1), got {original_share}")
    wanted = round(len(distilled) * original_share / (1 - original_share))
    rng = random.Random(seed)
    mixed = list(distilled) + rng.sample(originals, min(wanted, len(originals)))
    rng.shuffle(mixed)
    return mixed


def run_rounds(config: TrainConfig, first: dict[str, Any]) -> dict[str, Any]:
    """Rounds 2..``config.rounds`` after round 1 (``first``: its RL result, whose ``before`` is
    round 0's evaluation). Returns the last round's result with ``"rounds"``: one row per round
    (the held-out evaluation after it, and for k >= 2 the distilled model's before RL and what the
    distillation kept), also written to ``OUT/rounds.json`` after every round."""
    from agents.train import train_round

    rows = [
        {"round": 0, "stage": "format tuning", "eval": first["before"]},
        {"round": 1, "stage": "RL", "eval": first["after"]},
    ]
    result = first
    for k in range(2, config.rounds + 1):
        here, previous = round_dir(config, k), round_dir(config, k - 1)
        records = sample_policy(
            config, str(previous / "rl" / "model"), training_problems(config, k), here / "samples", config.seed + k
        )
        distilled, report = distill(records, config.distill_only_self_corrections)
        if not distilled:
            raise ValueError(
                f"round {k}: none of {report.samples} samples of round {k - 1}'s policy was kept "
                f"({report.correct} correct{', none repairing' if config.distill_only_self_corrections else ''}); "
                "sample more (--distill-problems, --distill-samples) or drop --distill-only-self-corrections"
            )
        write_demos(distilled, here / "distilled.jsonl")
        originals = read_demos(_original_demos(config))
        mixed = mix_demonstrations(distilled, originals, config.distill_original_share, config.seed + k)
        write_demos(mixed, here / "sft_data.jsonl")
        result = train_round(config, k, here / "sft_data.jsonl", previous / "rl")
        rows.append(
            {
                "round": k,
                "stage": "RL",
                "eval": result["after"],
                "distilled_eval": result["before"],
                "distilled": report.kept,
                "originals": len(mixed) - report.kept,
                "samples": report.samples,
                "sampled_accuracy": report.correct / max(report.samples, 1),
                "duplicates": report.duplicates,
                "self_correction_share": report.self_correction_share,
            }
        )
        _write_rows(config, rows)
    return {**result, "rounds": rows}


def _write_rows(config: TrainConfig, rows: list[dict[str, Any]]) -> None:
    atomic_write(Path(config.out) / "rounds.json", json.dumps(rows, indent=2).encode())


def _original_demos(config: TrainConfig) -> Path:
    return Path(config.round_demos) if config.round_demos is not None else Path(config.out) / "demos.jsonl"


def round_config(config: TrainConfig, k: int) -> TrainConfig:
    """The configuration of round ``k``'s RL: the same run, written under ``OUT/round-k``."""
    return replace(config, out=str(round_dir(config, k)))
