"""RLOO: REINFORCE leave-one-out (Kool et al. 2019; Ahmadian et al. 2024), no critic.

Per iteration:

1. Each start is rolled out ``group_size`` (k) times.
2. Rewards: the environment's episode reward, minus ``kl_coef`` x the episode's summed k1
   estimate of KL(pi || pi_ref) when there is a reference (the KL is part of the reward).
3. Advantages: every token of episode ``i`` gets ``r_i - mean(r_j, j != i)``, its reward
   against the mean of the *other* k - 1 episodes of its group: an unbiased baseline.
4. Loss: PPO's clipped surrogate, averaged over the minibatch's tokens (with one epoch the
   ratio is 1 and this is plain REINFORCE with that baseline).
"""

from __future__ import annotations

import torch

from agents.algorithms.base import Algorithm, Minibatch, register
from agents.algorithms.core import group_moments, policy_loss_with_kl
from agents.policy import TokenOutputs
from agents.rollout import Rollout

__all__ = ["RLOO", "rloo_advantages"]


def rloo_advantages(rewards: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    """``(B,)`` leave-one-out advantages of ``(B,)`` episode rewards (groups of at least 2)."""
    mean, _, size = group_moments(rewards, group)
    if (size < 2).any():
        raise ValueError("RLOO needs at least two episodes per group (group_size >= 2)")
    others = (mean * size - rewards) / (size - 1)
    return rewards - others


@register
class RLOO(Algorithm):
    """Leave-one-out baseline, sequence-level KL in the reward, clipped surrogate."""

    name = "rloo"
    needs_groups = True

    def prepare(self, rollout: Rollout) -> None:
        rewards = rollout.rewards
        if rollout.ref_logprobs is not None:
            kl = ((rollout.old_logprobs - rollout.ref_logprobs) * rollout.action_mask).sum(1)
            rewards = rewards - self.config.kl_coef * kl
        scores = rloo_advantages(rewards, rollout.group)
        rollout.extra["advantages"] = scores[:, None] * rollout.action_mask

    def loss(self, outputs: TokenOutputs, batch: Minibatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return policy_loss_with_kl(outputs, batch, self.config.clip_eps, kl_coef=0.0)
