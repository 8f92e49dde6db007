"""The interface every RL algorithm implements, the update loop they share, and the registry.

An algorithm gets a :class:`~agents.rollout.Rollout` (tokens, masks, the environment's
rewards, ``group`` ids of episodes that share a start, and the learner's ``old_logprobs`` /
``values`` (when ``uses_critic``) / ``ref_logprobs`` (when ``kl_coef > 0``)) and returns a dict
of ``train/*`` metrics (means over the minibatches), which the trainer logs to TensorBoard.
Subclasses write the math in two methods:

* :meth:`Algorithm.prepare`: per-token ``advantages`` (and ``returns`` for a critic) from the
  rollout, stored in ``rollout.extra``;
* :meth:`Algorithm.loss`: the loss of a minibatch given the policy's fresh outputs.

:meth:`Algorithm.update` runs the epochs, minibatches and gradient accumulation, clips the
gradient norm and steps the optimiser. Class attributes say what the rollout needs:
``uses_critic`` (values), ``needs_groups`` (``group_size`` >= 2, default 8).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, ClassVar

import numpy as np
import torch

from agents.device import autocast, padded_length
from agents.policy import ActorCritic, TokenOutputs
from agents.rollout import Rollout

__all__ = ["ALGORITHMS", "Algorithm", "Minibatch", "register"]

ALGORITHMS: dict[str, type[Algorithm]] = {}


def register(cls: type[Algorithm]) -> type[Algorithm]:
    """Class decorator: make an algorithm available as ``satori train --algo NAME``."""
    ALGORITHMS[cls.name] = cls
    return cls


class Minibatch(dict):
    """Rows of a rollout's tensors (``tokens``, ``attention_mask``, ``action_mask``,
    ``old_logprobs``, ``advantages``, and ``returns`` / ``values`` / ``ref_logprobs`` when present)."""

    def __getattr__(self, name: str) -> torch.Tensor:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Algorithm:
    """Base class: the shared update loop. See the module docstring.

    Args:
        policy: the actor-critic being trained.
        config: the run's flat configuration (an :class:`agents.config.TrainConfig`).
    """

    name: ClassVar[str] = ""
    uses_critic: ClassVar[bool] = False  # the rollout needs the critic's values
    needs_groups: ClassVar[bool] = False  # advantages compare episodes of one group

    @classmethod
    def group_size(cls, requested: int) -> int:
        """Episodes per start: ``requested``, or the default when it is 0 (8 for algorithms that
        compare the episodes of a group, else 1)."""
        size = requested or (8 if cls.needs_groups else 1)
        if size < 1 or (cls.needs_groups and size < 2):
            raise ValueError(f"{cls.name} compares the episodes of a group: group_size must be >= 2 (or 0 for 8), got {requested}")
        return size

    def __init__(self, policy: ActorCritic, config: Any) -> None:
        self.policy, self.config = policy, config
        groups = [{"params": policy.actor_parameters(), "lr": config.actor_lr}]
        if self.uses_critic:
            groups.append({"params": policy.critic_parameters(), "lr": config.critic_lr})
        self.optimizer = torch.optim.AdamW(groups, weight_decay=0.0, betas=(0.9, 0.95), eps=1e-8)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: 1.0)
        self.rng = np.random.default_rng(config.seed)

    @property
    def uses_reference(self) -> bool:
        """The rollout needs the reference policy's log-probabilities."""
        return self.config.kl_coef > 0

    def needs_scoring(self, num_episodes: int) -> bool:
        """Whether the learner must score a rollout of ``num_episodes`` before :meth:`update`:
        for the critic's values, the reference's log-probabilities, or old log-probabilities
        when the rollout serves several optimiser steps. With one optimiser step on the whole
        rollout the policy being updated is the one that was scored, so the old
        log-probabilities are the fresh ones, detached (the ratio is 1), and the scoring pass
        is skipped."""
        config = self.config
        return self.uses_critic or self.uses_reference or config.ppo_epochs > 1 or config.minibatch_size < num_episodes

    # -- the math (subclasses) -------------------------------------------------------------------

    def prepare(self, rollout: Rollout) -> None:
        """Compute ``rollout.extra["advantages"]`` (and ``["returns"]``), each ``(B, T - 1)``."""
        raise NotImplementedError

    def loss(self, outputs: TokenOutputs, batch: Minibatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The minibatch loss (token-averaged) and detached statistics to log."""
        raise NotImplementedError

    # -- the loop (shared) ------------------------------------------------------------------------

    def update(self, rollout: Rollout) -> dict[str, float]:
        """Prepare advantages, then ``ppo_epochs`` passes of minibatch updates."""
        self.prepare(rollout)
        tensors = {
            "tokens": rollout.tokens,
            "attention_mask": rollout.attention_mask,
            "action_mask": rollout.action_mask,
            **{
                k: v
                for k, v in (("old_logprobs", rollout.old_logprobs), ("values", rollout.values), ("ref_logprobs", rollout.ref_logprobs))
                if v is not None
            },
            **rollout.extra,
        }
        device = next(self.policy.parameters()).device
        config = self.config
        stats: dict[str, list[torch.Tensor]] = defaultdict(list)  # kept on the device: no sync per micro-batch
        self.policy.train()
        for _ in range(config.ppo_epochs):
            order = self.rng.permutation(rollout.num_episodes)
            for start in range(0, len(order), config.minibatch_size):
                rows = order[start : start + config.minibatch_size]
                tokens_in_minibatch = rollout.action_mask[rows].sum().clamp(min=1)
                self.optimizer.zero_grad(set_to_none=True)
                for micro in np.array_split(rows, max(1, -(-len(rows) // config.micro_batch_size))):
                    batch = _select(tensors, micro, device)
                    with autocast(device, config.bf16):
                        outputs = self.policy(
                            batch.tokens, batch.attention_mask, config.temperature, with_entropy=True, with_values=self.uses_critic
                        )
                    if "old_logprobs" not in batch:  # not scored: one optimiser step, the ratio is 1
                        batch["old_logprobs"] = outputs.logprobs.detach()
                    loss, loss_stats = self.loss(outputs, batch)
                    share = batch.action_mask.sum() / tokens_in_minibatch  # token-weighted accumulation
                    (loss * share).backward()
                    for key, value in loss_stats.items():
                        stats[key].append(_scalar(value, device))
                norm = torch.nn.utils.clip_grad_norm_(self.policy.parameters(), config.grad_clip)
                stats["grad_norm"].append(_scalar(norm, device))
                self.optimizer.step()
                self.scheduler.step()
        names = list(stats)
        means = torch.stack([torch.stack(stats[name]).mean() for name in names]).tolist() if names else []
        return {f"train/{name}": mean for name, mean in zip(names, means)}

    # -- checkpoints -------------------------------------------------------------------------------

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"adamw": self.optimizer}

    def schedulers(self) -> dict[str, Any]:
        return {"schedule": self.scheduler}

    def state_dict(self) -> dict[str, Any]:
        """Algorithm state beyond the optimiser (e.g. reward statistics, the minibatch RNG)."""
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


def _scalar(value: torch.Tensor | float, device: torch.device) -> torch.Tensor:
    """A logged statistic as a detached float32 scalar on ``device`` (read back once per update)."""
    value = value.detach() if isinstance(value, torch.Tensor) else value
    return torch.as_tensor(value, dtype=torch.float32, device=device).reshape(())


def _select(tensors: dict[str, torch.Tensor], rows: np.ndarray, device: torch.device) -> Minibatch:
    """Rows of every tensor, on ``device``, without the columns that are padding in all of them
    (``tokens``/``attention_mask`` are ``(B, T)``; the other 2-D tensors are per-token ``(B, T - 1)``)."""
    width = min(padded_length(int(tensors["attention_mask"][rows].sum(1).max())), tensors["attention_mask"].shape[1])
    batch = Minibatch()
    for key, value in tensors.items():
        value = value[rows]
        if key in ("tokens", "attention_mask"):
            value = value[:, :width]
        elif value.dim() == 2:
            value = value[:, : width - 1]
        batch[key] = value.to(device)
    return batch
