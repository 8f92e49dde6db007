"""Your own RL algorithm: plain REINFORCE with a moving-average baseline, on the tiny preset.

An algorithm is two methods on top of :class:`agents.algorithms.Algorithm`: ``prepare`` turns a
rollout (tokens, masks, the environment's rewards) and the learner's scores of it (old
log-probabilities, values, reference log-probabilities, as needed) into per-token advantages,
and ``loss`` scores a minibatch. Rollouts through the environment, restart-and-explore,
generation engines, scoring, minibatching, TensorBoard logging and checkpoints come from the
library. ``@register`` makes it a valid ``algo`` for :func:`agents.train.train_rl`.

    python examples/custom_algorithm.py --iterations 10
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch

from agents.algorithms import Advantages, Algorithm, Minibatch, Scores, register
from agents.algorithms.core import masked_mean
from agents.config import preset
from agents.policy import TokenOutputs
from agents.rollout import Rollout
from agents.train import stage_one, train_rl


@register
class ReinforceWithBaseline(Algorithm):
    """REINFORCE (Williams 1992): every written token's log-probability is pushed by the
    episode's reward minus a moving average of past rewards."""

    name = "reinforce_baseline"
    momentum = 0.9

    def __init__(self, policy, config) -> None:
        super().__init__(policy, config)
        self.baseline = 0.0

    def prepare(self, rollout: Rollout, scores: Scores) -> Advantages:
        advantages = rollout.rewards - self.baseline
        self.baseline = self.momentum * self.baseline + (1 - self.momentum) * rollout.rewards.mean().item()
        return Advantages(advantages[:, None] * rollout.action_mask)

    def loss(self, outputs: TokenOutputs, batch: Minibatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss = -masked_mean(outputs.logprobs * batch.advantages, batch.action_mask)
        return loss, {"policy_loss": loss.detach(), "baseline": torch.tensor(self.baseline)}

    def state_dict(self) -> dict:  # saved in checkpoints, so --resume continues exactly
        return {**super().state_dict(), "baseline": self.baseline}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.baseline = state["baseline"]


def main(model: str | None = None, out: str = "runs/custom", iterations: int = 10, eval_per_level: int = 100) -> dict:
    """Train the tiny format-tuned policy (built by stage one when ``model`` is None) with it."""
    config = replace(
        preset("tiny"), out=out, algo=ReinforceWithBaseline.name, iterations=iterations, eval_per_level=eval_per_level
    )
    model = model or str(
        stage_one(replace(config, out="runs/tiny"))
    )  # the same stage one as `satori train --preset tiny`
    result = train_rl(config, model)
    for name in ("before", "after"):
        print(
            f"{name:>6} RL: held-out accuracy {result[name]['accuracy']:.3f}"
            if result[name]
            else f"{name}: not evaluated"
        )
    rewards = " ".join(f"{h['reward/total']:.2f}" for h in result["history"])
    print(f"reward per iteration: {rewards}")
    print(f"TensorBoard: {Path(out) / 'rl' / 'tb'}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a format-tuned policy (default: build runs/tiny with stage one)")
    parser.add_argument("--out", default="runs/custom")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--eval-per-level", type=int, default=100)
    args = parser.parse_args()
    main(args.model, args.out, args.iterations, args.eval_per_level)
