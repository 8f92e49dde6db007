"""Reward shaping: the same scripted trajectories scored under several reward presets.

Every number comes from the environment itself (``info["reward_terms"]`` at the end of each
episode), and a custom term takes four lines.

    python examples/reward_shaping.py
"""

from __future__ import annotations

import random

import gymnasium as gym

import satori_env  # noqa: F401  (registers SatoriMath-v0)
from agents.data.synth import arithmetic_demo
from satori_env import EXPLORE, Episode, RestartBuffer, Trajectory, load_problems
from satori_env.tasks.arithmetic import write_solution


def checked_and_right(episode: Episode) -> float:
    """A custom term: +1 when the response reflected at least once and ended right."""
    return 1.0 if episode.actions["reflect"] and episode.correct else 0.0


REWARDS = {
    "satori": "satori",
    "binary": "binary",
    "custom": {"rule": 1.0, "format": 0.5, "length": 0.2, "checked": (checked_and_right, 0.25)},
}


def scripted_cases(problem, tokenizer):
    """(name, restart state or None, text the policy writes) for one arithmetic problem."""
    right = write_solution(problem)
    answer, wrong_answer = problem.answer, str(int(problem.answer) + 1)
    wrong = right.replace(f"\\boxed{{{answer}}}", f"\\boxed{{{wrong_answer}}}")
    self_correcting = arithmetic_demo(problem, "fix", random.Random(0)).text
    buffer = RestartBuffer(tokenizer, max_backtrack=0)
    (from_wrong,) = buffer.derive(Trajectory(problem, tuple(tokenizer.encode(wrong)), correct=False))
    (from_right,) = buffer.derive(Trajectory(problem, tuple(tokenizer.encode(right)), correct=True))
    return [
        ("correct", None, right),
        ("wrong answer", None, wrong),
        ("self-correcting", None, self_correcting),
        ("restart from wrong, fixed", from_wrong, f"Recheck.{EXPLORE}The answer is \\boxed{{{answer}}}."),
        ("restart from right, broken", from_right, f"Recheck.{EXPLORE}The answer is \\boxed{{{wrong_answer}}}."),
        ("no COAT format", None, f"So the answer is \\boxed{{{answer}}}."),
        ("no answer", None, right.split("<|continue|>The answer")[0]),
    ]


def score(reward, problem, restart, text) -> dict[str, float]:
    env = gym.make("SatoriMath-v0", reward=reward, restart_buffer=RestartBuffer(max_backtrack=0))
    options = {"restart_state": restart} if restart is not None else {"problem": problem}
    env.reset(seed=0, options=options)
    tokenizer = env.unwrapped.tokenizer
    *_, info = env.unwrapped.step_tokens(tokenizer.encode(text) + [tokenizer.eos_token_id])
    return info["reward_terms"]


def main() -> dict[str, dict[str, dict[str, float]]]:
    problem = load_problems("arith:test", level=3, limit=1)[0]
    tokenizer = satori_env.SatoriMathEnv().tokenizer
    print(f"Problem: {problem.question} (answer {problem.answer})\n")
    table = {}
    for name, restart, text in scripted_cases(problem, tokenizer):
        table[name] = {preset: score(reward, problem, restart, text) for preset, reward in REWARDS.items()}
    columns = [(preset, term) for preset, terms in next(iter(table.values())).items() for term in terms]
    print(
        "| trajectory | "
        + " | ".join(f"{p}: {t}" for p, t in columns)
        + " | "
        + " | ".join(f"{p} total" for p in REWARDS)
        + " |"
    )
    print("|---" * (1 + len(columns) + len(REWARDS)) + "|")
    for name, by_preset in table.items():
        cells = [f"{by_preset[p][t]:+.2f}" for p, t in columns] + [
            f"{sum(by_preset[p].values()):+.2f}" for p in REWARDS
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")
    return table


if __name__ == "__main__":
    main()
