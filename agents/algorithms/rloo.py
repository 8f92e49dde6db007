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

from agents.algorithms.base import Advantages, Algorithm, Minibatch, Scores, register
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
    trains_entropy = False  # logged only

    def prepare(self, rollout: Rollout, scores: Scores) -> Advantages:
        rewards = rollout.rewards
        if scores.ref_logprobs is not None:
            kl = ((scores.old_logprobs - scores.ref_logprobs) * rollout.action_mask).sum(1)
            rewards = rewards - self.config.kl_coef * kl
        per_episode = rloo_advantages(rewards, rollout.group)
        return Advantages(per_episode[:, None] * rollout.action_mask)

    def loss(self, outputs: TokenOutputs, batch: Minibatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return policy_loss_with_kl(outputs, batch, self.config.clip_eps, kl_coef=0.0)
