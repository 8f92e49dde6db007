"""PPO on the token-level MDP (Schulman et al. 2017), as Satori trains its policy.

Per iteration, over the response tokens of the rollout:

1. Rewards: 0 on every token but the last written one, which gets the environment's episode
   reward (normalised by running statistics when ``normalize_reward``); minus
   ``kl_coef * KL`` on every token when there is a reference policy.
2. Advantages: generalised advantage estimation (Schulman et al. 2016) with ``gamma`` and
   ``lam``, against the critic's values; whitened over the batch. The episode's last token is
   terminal: a truncated response is judged by the environment as it stands (its reward *is*
   the outcome), so no value is bootstrapped after it.
3. Loss: clipped surrogate + ``vf_coef`` x clipped value loss - ``entropy_coef`` x entropy,
   for ``ppo_epochs`` passes of minibatches.
"""

from __future__ import annotations

from typing import Any

import torch

from agents.algorithms.base import Advantages, Algorithm, Minibatch, Scores, register
from agents.algorithms.core import (
    KL_ESTIMATORS,
    RunningMoments,
    clipped_policy_loss,
    masked_mean,
    masked_whiten,
    token_rewards,
)
from agents.policy import TokenOutputs
from agents.rollout import Rollout

__all__ = ["PPO", "gae"]


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over the masked positions of ``(B, T)`` tensors.

    ``A_t = sum_k (gamma * lam)^k delta_{t+k}`` with ``delta_t = r_t + gamma V_{t+1} - V_t``; the
    value after the last masked position is 0 (the episode ends there). Returns
    ``(advantages, returns = advantages + values)``, zero off the mask.
    """
    values = values * mask
    advantages = torch.zeros_like(rewards)
    running = torch.zeros(rewards.shape[0], dtype=rewards.dtype, device=rewards.device)
    for t in reversed(range(rewards.shape[1])):
        next_value = values[:, t + 1] if t + 1 < rewards.shape[1] else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    advantages = advantages * mask
    return advantages, (advantages + values) * mask


@register
class PPO(Algorithm):
    """Proximal policy optimisation with a critic (shared trunk or separate, see ``critic``)."""

    name = "ppo"
    uses_critic = True

    def __init__(self, policy, config: Any) -> None:
        super().__init__(policy, config)
        self.reward_moments = RunningMoments()

    @property
    def trains_entropy(self) -> bool:
        return self.config.entropy_coef != 0

    def prepare(self, rollout: Rollout, scores: Scores) -> Advantages:
        config, mask = self.config, rollout.action_mask
        rewards = rollout.rewards
        if config.normalize_reward:
            self.reward_moments.update(rewards)
            rewards = (rewards - self.reward_moments.mean) / max(self.reward_moments.std, 1e-6)
        kl = None
        if scores.ref_logprobs is not None:
            kl = KL_ESTIMATORS[config.kl_estimator](scores.old_logprobs - scores.ref_logprobs)
        per_token = token_rewards(rewards, mask, kl, config.kl_coef)
        advantages, returns = gae(per_token, scores.values, mask, config.gamma, config.lam)
        if config.whiten_advantages:
            advantages = masked_whiten(advantages, mask) * mask
        return Advantages(advantages, returns)

    def loss(self, outputs: TokenOutputs, batch: Minibatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        config, mask = self.config, batch.action_mask
        policy_loss, stats = clipped_policy_loss(
            outputs.logprobs, batch.old_logprobs, batch.advantages, mask, config.clip_eps
        )
        values = outputs.values
        clipped = batch.values + torch.clamp(values - batch.values, -config.value_clip, config.value_clip)
        value_loss = 0.5 * masked_mean(
            torch.maximum((values - batch.returns) ** 2, (clipped - batch.returns) ** 2), mask
        )
        entropy = masked_mean(outputs.entropy, mask)
        loss = policy_loss + config.vf_coef * value_loss - config.entropy_coef * entropy
        with torch.no_grad():
            residual = masked_mean((batch.returns - values) ** 2, mask)
            spread = masked_mean((batch.returns - masked_mean(batch.returns, mask)) ** 2, mask)
            stats.update(
                policy_loss=policy_loss.detach(),
                value_loss=value_loss.detach(),
                entropy=entropy.detach(),
                explained_variance=1 - residual / spread.clamp(min=1e-8),
            )
        return loss, stats

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "reward_moments": self.reward_moments.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.reward_moments.load_state_dict(state["reward_moments"])
