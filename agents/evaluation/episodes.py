"""Evaluation through the environment: the same MDP, verifier and reward as training.

:func:`evaluate` runs an engine on a list of problems (or restart states) in a vector env and
reports accuracy (overall and per level), the share of well-formed COAT responses, response
length and meta-action rates. :func:`self_correction` measures how often a policy repairs an
injected slip: it starts from a prefix with a wrong step followed by ``<|reflect|>`` and counts
the episodes that still end right.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode
from tqdm import tqdm

from agents.engines import GenerationEngine, SamplingParams
from satori_env import Problem, RestartState, SatoriMathVectorEnv
from satori_env.coat import META_ACTIONS, REFLECT, get_template, is_well_formed

__all__ = ["GREEDY", "EvalResult", "evaluate", "paired_verdicts", "repair_own_mistakes", "self_correction"]

GREEDY = SamplingParams(temperature=0.0)
"""Greedy decoding (256 new tokens at most): the default of the evaluations."""


@dataclass
class EvalResult:
    """What :func:`evaluate` measured."""

    n: int
    accuracy: float
    well_formed: float
    mean_new_tokens: float
    actions_per_episode: dict[str, float]
    accuracy_by_level: dict[int, float]
    records: list[dict[str, Any]] = field(repr=False, default_factory=list)

    @classmethod
    def from_records(cls, records: list[dict[str, Any]]) -> EvalResult:
        """The measures of evaluation records (e.g. those of several workers, concatenated)."""
        by_level: dict[int, list[bool]] = defaultdict(list)
        for record in records:
            by_level[record["level"]].append(record["correct"])
        return cls(
            n=len(records),
            accuracy=float(np.mean([r["correct"] for r in records])),
            well_formed=float(np.mean([r["well_formed"] for r in records])),
            mean_new_tokens=float(np.mean([r["num_new_tokens"] for r in records])),
            actions_per_episode={name: float(np.mean([r["actions"][name] for r in records])) for name in META_ACTIONS},
            accuracy_by_level={level: float(np.mean(values)) for level, values in sorted(by_level.items())},
            records=records,
        )

    def row(self) -> dict[str, float]:
        """Flat numbers for a table or a log."""
        row = {
            "n": self.n,
            "accuracy": self.accuracy,
            "well_formed": self.well_formed,
            "mean_new_tokens": self.mean_new_tokens,
        }
        row.update({f"acc_L{level}": acc for level, acc in sorted(self.accuracy_by_level.items())})
        row.update({f"{name}_per_episode": rate for name, rate in self.actions_per_episode.items()})
        return row


def evaluate(
    engine: GenerationEngine,
    tokenizer: Any,
    problems: Sequence[Problem] = (),
    restart_states: Sequence[RestartState] = (),
    params: SamplingParams = GREEDY,
    batch_size: int = 128,
    prompt_template: Any = "compact",
    progress: bool = False,
    desc: str = "evaluate",
    verifier: Any = None,
) -> EvalResult:
    """Run ``engine`` once on each problem (or each restart state) and measure the episodes.
    A seeded ``params`` seeds each batch of ``batch_size`` episodes differently (seed + batch
    index), so no two batches share a random stream. ``verifier``: the environment's (None:
    the process-wide one; ``"satori-release"``: the release's answer rule)."""
    starts = [{"problem": p} for p in problems] + [{"restart_state": s} for s in restart_states]
    if not starts:
        raise ValueError("evaluate needs problems or restart states")
    template = get_template(prompt_template)
    size = min(batch_size, len(starts))
    envs = SatoriMathVectorEnv(
        num_envs=size,
        tokenizer=tokenizer,
        tasks=[_problem(starts[0])],  # every episode is pinned by its reset options
        max_new_tokens=params.max_new_tokens,
        max_prompt_tokens=max(
            len(tokenizer.encode(template.format(_problem(s).question))) + _prefix_length(s) for s in starts
        ),
        prompt_template=template,
        verifier=verifier,
        autoreset_mode=AutoresetMode.DISABLED,  # every batch starts with a reset to its problems
    )
    records: list[dict[str, Any]] = []
    bar = tqdm(total=len(starts), desc=desc, disable=not progress, unit="problem")
    for batch_index, begin in enumerate(range(0, len(starts), size)):
        chunk = starts[begin : begin + size]
        batch_params = params if params.seed is None else replace(params, seed=params.seed + batch_index)
        envs.reset_groups(1, starts=chunk + [chunk[-1]] * (size - len(chunk)))  # the vector env has a fixed size
        prompts = [tokens.tolist() for tokens in envs.tokens]
        *_, infos = envs.step_tokens(engine.generate(prompts, batch_params))  # every episode ends here
        for i in range(len(chunk)):
            records.append(
                {
                    "problem_id": infos["problem_id"][i],
                    "level": int(infos["level"][i]),
                    "correct": bool(infos["correct"][i]),
                    "well_formed": is_well_formed(infos["completion"][i]),
                    "num_new_tokens": int(infos["num_new_tokens"][i]),
                    "actions": {name: int(infos["actions"][name][i]) for name in META_ACTIONS},
                    "completion": infos["completion"][i],
                    "answer": infos["answer"][i],
                    "gold": infos["gold"][i],
                    "grader": _problem(chunk[i]).meta.get("grader"),  # None: checked as math
                }
            )
        bar.update(len(chunk))
    bar.close()
    return EvalResult.from_records(records)


def _problem(start: dict[str, Any]) -> Problem:
    return start["problem"] if "problem" in start else start["restart_state"].problem


def _prefix_length(start: dict[str, Any]) -> int:
    return len(start["restart_state"].prefix) if "restart_state" in start else 0


def self_correction(
    engine: GenerationEngine,
    tokenizer: Any,
    problems: Sequence[Problem],
    params: SamplingParams = GREEDY,
    at_end: bool = False,
    seed: int = 0,
    batch_size: int = 128,
    prompt_template: str = "compact",
) -> EvalResult:
    """Start each procedural problem from a prefix with an injected slip followed by
    ``<|reflect|>`` (right after the slip, or with ``at_end`` after a whole wrong solution);
    the accuracy of the result is the share of slips the policy repaired."""
    from agents.data.synth import injected_prefix

    rng = random.Random(seed)
    states = [
        RestartState(
            p, tuple(tokenizer.encode(injected_prefix(p, rng, at_end), add_special_tokens=False)), reflect_status=-1
        )
        for p in problems
    ]
    return evaluate(
        engine, tokenizer, restart_states=states, params=params, batch_size=batch_size, prompt_template=prompt_template
    )


def repair_own_mistakes(
    engine: GenerationEngine,
    tokenizer: Any,
    result: EvalResult,
    problems: Sequence[Problem],
    params: SamplingParams = GREEDY,
    batch_size: int = 128,
    prompt_template: str = "compact",
) -> EvalResult | None:
    """Restart every wrong, finished answer of ``result`` (an :func:`evaluate` of ``problems``,
    in order) from its own completion followed by ``<|reflect|>``: the accuracy is the share of
    its own mistakes the policy repairs (None when it made none). The completion text is encoded
    again, so a tokenizer that does not round-trip text changes the prefix slightly."""
    reflect = tokenizer.convert_tokens_to_ids(REFLECT)
    by_id = {p.id: p for p in problems}
    states = [
        RestartState(
            by_id[record["problem_id"]],
            tuple(tokenizer.encode(record["completion"], add_special_tokens=False)) + (reflect,),
            reflect_status=-1,
        )
        for record in result.records
        if not record["correct"] and record["answer"] is not None
    ]
    if not states:
        return None
    return evaluate(
        engine, tokenizer, restart_states=states, params=params, batch_size=batch_size, prompt_template=prompt_template
    )


def paired_verdicts(
    engine: GenerationEngine,
    tokenizer: Any,
    problems_by_level: dict[int, Sequence[Problem]],
    params: SamplingParams = GREEDY,
    batch_size: int = 256,
    prompt_template: str = "compact",
) -> dict[str, Any]:
    """Every verdict per level on fixed held-out problems (what a paired test such as
    :func:`~agents.evaluation.metrics.mcnemar` compares between policies), and how many of its
    own wrong answers the policy repairs after ``<|reflect|>`` (:func:`repair_own_mistakes`):
    ``{"verdicts": {"1": [...], ...}, "repaired": int, "repair_tried": int}``."""
    verdicts, repaired, tried = {}, 0, 0
    for level, problems in problems_by_level.items():
        result = evaluate(
            engine, tokenizer, problems, params=params, batch_size=batch_size, prompt_template=prompt_template
        )
        verdicts[str(level)] = [record["correct"] for record in result.records]
        repair = repair_own_mistakes(
            engine, tokenizer, result, problems, params=params, batch_size=batch_size, prompt_template=prompt_template
        )
        if repair is not None:
            repaired += sum(record["correct"] for record in repair.records)
            tried += repair.n
    return {"verdicts": verdicts, "repaired": repaired, "repair_tried": tried}
