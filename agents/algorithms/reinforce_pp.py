"""REINFORCE++ (Hu 2025): REINFORCE with PPO's tricks and no critic.

Per iteration, over the response tokens of the rollout:

1. Rewards: the episode reward on the last written token, minus ``kl_coef`` x the k1 estimate
   of KL(pi || pi_ref) on every token (token-level KL in the reward).
2. Returns: ``G_t = sum_{s >= t} gamma^(s - t) r_s``.
3. Advantages: the returns normalised over every response token of the batch (global
   normalisation: no per-prompt baseline, so groups of one are fine).
4. Loss: PPO's clipped surrogate, averaged over the minibatch's tokens.
"""

from __future__ import annotations

import torch

from agents.algorithms.base import Advantages, Algorithm, Minibatch, Scores, register
from agents.algorithms.core import KL_ESTIMATORS, masked_whiten, policy_loss_with_kl, token_rewards
from agents.policy import TokenOutputs
from agents.rollout import Rollout

__all__ = ["ReinforcePlusPlus", "discounted_returns"]


def discounted_returns(rewards: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """``(B, T)`` reward-to-go over the masked positions (0 elsewhere); ``rewards`` is 0 off the mask."""
    returns = torch.zeros_like(rewards)
    running = torch.zeros(rewards.shape[0], dtype=rewards.dtype)
    for t in reversed(range(rewards.shape[1])):
        running = rewards[:, t] + gamma * running
        returns[:, t] = running
    return returns * mask


@register
class ReinforcePlusPlus(Algorithm):
    """Token-level KL in the reward, reward-to-go, global advantage normalisation."""

    name = "reinforce_pp"
    trains_entropy = False  # logged only

    def prepare(self, rollout: Rollout, scores: Scores) -> Advantages:
        mask = rollout.action_mask
        kl = None
        if scores.ref_logprobs is not None:
            kl = KL_ESTIMATORS["k1"](scores.old_logprobs - scores.ref_logprobs)
        per_token = token_rewards(rollout.rewards, mask, kl, self.config.kl_coef)
        returns = discounted_returns(per_token, mask, self.config.gamma)
        return Advantages(masked_whiten(returns, mask) * mask)

    def loss(self, outputs: TokenOutputs, batch: Minibatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return policy_loss_with_kl(outputs, batch, self.config.clip_eps, kl_coef=0.0)
