"""Scripted agents that type whole COAT solutions into the batched environment.

* "oracle" writes a correct step-by-step solution: the top reward (0 under Satori's rule reward);
* "self-correcting" makes a mistake, ``<|reflect|>``s on it and ``<|explore|>``s a fix: also
  the top reward, with its reflection counted in ``info["actions"]``;
* "wrong" boxes an answer that is off by one: the bottom reward (-1).

Each agent writes its completions for a batch of problems, applied with the vector env's
``step_tokens`` fast path and verified in one batch.

    python examples/scripted_agents.py --episodes 64
"""

from __future__ import annotations

import argparse
import random

import numpy as np

from agents.data.synth import arithmetic_demo
from satori_env import Problem, SatoriMathVectorEnv
from satori_env.tasks.arithmetic import write_solution


def oracle(problem: Problem) -> str:
    return write_solution(problem)


def self_correcting(problem: Problem) -> str:
    """A column slip in one step, a ``<|reflect|>`` that finds it, an ``<|explore|>`` that redoes it."""
    return arithmetic_demo(problem, "fix", random.Random(problem.id)).text


def wrong(problem: Problem) -> str:
    return write_solution(problem).replace(f"\\boxed{{{problem.answer}}}", f"\\boxed{{{int(problem.answer) + 1}}}")


AGENTS = {"oracle": oracle, "self-correcting": self_correcting, "wrong": wrong}


def evaluate(agent, episodes: int, seed: int = 0) -> dict[str, float]:
    envs = SatoriMathVectorEnv(num_envs=episodes)
    envs.reset(seed=seed)
    tokenizer = envs.tokenizer
    completions = [tokenizer.encode(agent(env.problem)) + [tokenizer.eos_token_id] for env in envs.envs]
    _, rewards, terminated, _, infos = envs.step_tokens(completions)
    final = infos["final_info"]
    return {
        "mean reward": float(rewards.mean()),
        "accuracy": float(final["correct"].mean()),
        "reflect / episode": float(np.mean(final["actions"]["reflect"])),
        "terminated": float(terminated.mean()),
    }


def main(episodes: int = 64, seed: int = 0) -> dict[str, dict[str, float]]:
    results = {name: evaluate(agent, episodes, seed) for name, agent in AGENTS.items()}
    columns = list(next(iter(results.values())))
    print("| agent | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name, row in results.items():
        print(f"| {name} | " + " | ".join(f"{row[c]:.2f}" for c in columns) + " |")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.episodes, args.seed)
