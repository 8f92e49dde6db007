"""The math the algorithms share: masked statistics, KL estimators, the clipped surrogate."""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["KL_ESTIMATORS", "RunningMoments", "clipped_policy_loss", "masked_mean", "masked_whiten"]


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
