"""The math the algorithms share: masked statistics, KL estimators, the clipped surrogate."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from agents.algorithms.base import Minibatch
    from agents.policy import TokenOutputs

__all__ = [
    "KL_ESTIMATORS",
    "RunningMoments",
    "clipped_policy_loss",
    "group_moments",
    "masked_mean",
    "masked_whiten",
    "policy_loss_with_kl",
    "token_rewards",
]


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``x`` where ``mask`` is 1 (over everything, or along ``dim``)."""
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """Normalise ``x`` to unit variance (and zero mean) over the masked entries."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    whitened = (x - mean) * torch.rsqrt(var + 1e-8)
    return whitened if shift_mean else whitened + mean


# Estimators of KL(pi || pi_ref) from samples of pi, with log_ratio = log pi - log pi_ref.
# http://joschu.net/blog/kl-approx.html
KL_ESTIMATORS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "k1": lambda log_ratio: log_ratio,  # unbiased, high variance, can be negative
    "k2": lambda log_ratio: 0.5 * log_ratio**2,  # biased, low variance
    "k3": lambda log_ratio: torch.expm1(-log_ratio) + log_ratio,  # unbiased, low variance, >= 0
}


def clipped_policy_loss(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, clip: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped surrogate (Schulman et al. 2017), averaged over the masked tokens.

    Returns the loss and detached statistics: ``approx_kl`` (k3 of new vs old), ``clip_fraction``.
    """
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {
            "approx_kl": masked_mean(KL_ESTIMATORS["k3"](-log_ratio), mask),
            "clip_fraction": masked_mean(((ratio - 1.0).abs() > clip).float(), mask),
        }
    return loss, stats


def token_rewards(
    rewards: torch.Tensor, action_mask: torch.Tensor, kl: torch.Tensor | None = None, kl_coef: float = 0.0
) -> torch.Tensor:
    """``(B, T-1)`` per-token rewards: the episode reward on each row's last action token,
    minus ``kl_coef * kl`` on every action token."""
    positions = torch.arange(action_mask.shape[1]).expand_as(action_mask)
    last = (positions * action_mask).argmax(dim=1)  # index of the last written token
    out = torch.zeros_like(action_mask)
    out[torch.arange(len(rewards)), last] = rewards
    if kl is not None and kl_coef:
        out = out - kl_coef * kl * action_mask
    return out


def group_moments(values: torch.Tensor, group: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-episode ``(mean, std, size)`` of the episode's group (``group`` holds each episode's
    group index); ``std`` is the unbiased sample standard deviation (0 for a group of one)."""
    _, index, counts = torch.unique(group, return_inverse=True, return_counts=True)
    values = values.float()
    sums = torch.zeros(len(counts)).index_add_(0, index, values)
    means = sums / counts
    squares = torch.zeros(len(counts)).index_add_(0, index, (values - means[index]) ** 2)
    stds = torch.sqrt(squares / (counts - 1).clamp(min=1))
    return means[index], stds[index], counts[index].float()


def policy_loss_with_kl(
    outputs: TokenOutputs, batch: Minibatch, clip: float, kl_coef: float, estimator: str = "k3"
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The clipped surrogate of the minibatch's advantages plus ``kl_coef`` x the KL to the
    reference policy as a loss term (GRPO's placement; ``estimator`` names the estimator)."""
    mask = batch.action_mask
    loss, stats = clipped_policy_loss(outputs.logprobs, batch.old_logprobs, batch.advantages, mask, clip)
    stats["policy_loss"] = loss.detach()
    if kl_coef and batch.ref_logprobs is not None:
        kl = masked_mean(KL_ESTIMATORS[estimator](outputs.logprobs - batch.ref_logprobs), mask)
        loss = loss + kl_coef * kl
        stats["kl_to_reference"] = kl.detach()
    if outputs.entropy is not None:
        stats["entropy"] = masked_mean(outputs.entropy, mask).detach()
    return loss, stats


class RunningMoments:
    """Running mean and standard deviation of a stream of numbers (Chan et al. parallel update),
    for reward normalisation."""

    def __init__(self) -> None:
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def update(self, values: torch.Tensor) -> None:
        n = values.numel()
        if n == 0:
            return
        batch_mean = values.float().mean().item()
        batch_m2 = ((values.float() - batch_mean) ** 2).sum().item()
        delta = batch_mean - self.mean
        total = self.count + n
        self.mean += delta * n / total
        self.m2 += batch_m2 + delta**2 * self.count * n / total
        self.count = total

    @property
    def std(self) -> float:
        return (self.m2 / self.count) ** 0.5 if self.count > 1 else 1.0

    def state_dict(self) -> dict[str, float]:
        return {"count": self.count, "mean": self.mean, "m2": self.m2}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.count, self.mean, self.m2 = int(state["count"]), float(state["mean"]), float(state["m2"])
