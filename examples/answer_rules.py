"""How often satori-env's answer rule (math-verify on the last answer of the whole completion)
and Satori's release's (the last box of the last 128 characters, its GSM8K and MATH checkers)
disagree: on every benchmark's reference solutions (written as a model asked to box its answer
writes them: ``satori_env.tasks.datasets.reference_response``), and optionally on a policy's own sampled
answers.

    python examples/answer_rules.py                                   # reference solutions
    python examples/answer_rules.py --model runs/tiny/rl/model --samples 1000   # and a policy's rollouts

Prints one markdown row per set: how many each rule accepts and how many only one of them does.
"""

from __future__ import annotations

import argparse

from satori_env import load_problems
from satori_env.tasks.datasets import reference_response
from satori_env.verifier import Verifier

SETS = ("gsm8k:test", "math500", "olympiadbench", "aime24", "minerva")  # AMC23 publishes no solutions


def compare(completions: list[str], problems: list, default: Verifier, release: Verifier) -> list[int]:
    """``[n, accepted by math-verify, by the release, by math-verify only, by the release only]``."""
    ours = [v.correct for v in default.check_problems(completions, problems)]
    theirs = [v.correct for v in release.check_problems(completions, problems)]
    return [
        len(problems),
        sum(ours),
        sum(theirs),
        sum(a and not b for a, b in zip(ours, theirs)),
        sum(b and not a for a, b in zip(ours, theirs)),
    ]


def policy_answers(model: str, samples: int, seed: int) -> tuple[list[str], list]:
    """``samples`` sampled completions of the policy at ``model`` on held-out procedural
    problems (levels 1-5), with the problems."""
    from agents.engines import SamplingParams, load_engine
    from agents.evaluation.episodes import evaluate

    engine, tokenizer = load_engine(model)
    problems = [
        p for level in range(1, 6) for p in load_problems("arith:test", level=level, limit=samples // 5, seed=seed)
    ]
    result = evaluate(engine, tokenizer, problems, params=SamplingParams(192, 0.7, 1.0, seed), batch_size=256)
    return [record["completion"] for record in result.records], problems


def main(model: str | None, samples: int, seed: int, workers: int) -> list[list[str]]:
    rows = []
    with Verifier(workers=workers) as default, Verifier(rule="satori-release", workers=workers) as release:
        for name in SETS:
            pairs = [(s, p) for p in load_problems(name) if (s := reference_response(p)) is not None]
            counts = compare([s for s, _ in pairs], [p for _, p in pairs], default, release)
            rows.append([f"{name} (reference solutions)", *map(str, counts)])
        if model is not None:
            completions, problems = policy_answers(model, samples, seed)
            rows.append(
                [f"{model} (sampled, arith:test L1-L5)", *map(str, compare(completions, problems, default, release))]
            )
    header = ["set", "n", "math-verify accepts", "release accepts", "math-verify only", "release only"]
    print("\n".join("| " + " | ".join(row) + " |" for row in [header, ["---"] * len(header), *rows]))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a policy whose sampled answers are judged by both rules too")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    main(args.model, args.samples, args.seed, args.workers)
