"""GRPO: group relative policy optimisation (Shao et al. 2024, DeepSeekMath), no critic.

Per iteration:

1. Each start (a problem, or a restart state) is rolled out ``group_size`` times.
2. Advantages: every token of episode ``i`` gets ``(r_i - mean(group)) / (std(group) + eps)``,
   the episode's reward against its own group's (``group_std_norm=False`` drops the division,
   as Dr. GRPO does, Liu et al. 2025). Groups whose rewards are all equal give 0.
3. Loss: PPO's clipped surrogate, averaged over the minibatch's tokens, plus
   ``kl_coef`` x the k3 estimate of KL(pi || pi_ref) as a loss term (0 skips the reference).
"""

from __future__ import annotations

import torch

from agents.algorithms.base import Advantages, Algorithm, Minibatch, Scores, register
from agents.algorithms.core import group_moments, policy_loss_with_kl
from agents.policy import TokenOutputs
from agents.rollout import Rollout

__all__ = ["GRPO", "grpo_advantages"]


def grpo_advantages(
    rewards: torch.Tensor, group: torch.Tensor, std_norm: bool = True, eps: float = 1e-4
) -> torch.Tensor:
    """``(B,)`` group-relative advantages of ``(B,)`` episode rewards."""
    mean, std, _ = group_moments(rewards, group)
    advantages = rewards - mean
    return advantages / (std + eps) if std_norm else advantages


@register
class GRPO(Algorithm):
    """Group-relative advantages, clipped surrogate, KL to the reference in the loss."""

    name = "grpo"
    needs_groups = True
    trains_entropy = False  # logged only

    def prepare(self, rollout: Rollout, scores: Scores) -> Advantages:
        per_episode = grpo_advantages(rollout.rewards, rollout.group, self.config.group_std_norm)
        return Advantages(per_episode[:, None] * rollout.action_mask)

    def loss(self, outputs: TokenOutputs, batch: Minibatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return policy_loss_with_kl(outputs, batch, self.config.clip_eps, self.config.kl_coef, "k3")
