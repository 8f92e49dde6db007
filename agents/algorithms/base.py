"""The interface every RL algorithm implements, the update loop they share, and the registry.

:meth:`Algorithm.update` takes one iteration's :class:`~agents.rollout.Rollout` (what the
environment produced: tokens, masks, episode rewards, ``group`` ids of episodes that share a
start, ``truncated``) through three steps, in order:

1. **score** (shared, :meth:`Algorithm.score`): the learner's view of the rollout as
   :class:`Scores`: old log-probabilities, the critic's values (when ``uses_critic``) and the
   reference policy's log-probabilities (when ``kl_coef > 0``), each only when needed;
2. **prepare** (the algorithm): per-token :class:`Advantages` (and ``returns`` for a critic)
   from the rollout and its scores;
3. **optimise** (shared): ``ppo_epochs`` passes of minibatches, each a :class:`Minibatch` of
   named tensors, gradients accumulated over micro-batches token-weighted, the algorithm's
   :meth:`Algorithm.loss` on each, gradient-norm clipping, the optimiser step.

It returns the ``train/*`` metrics (means over the minibatches) that the trainer logs to
TensorBoard. An algorithm subclass writes the math only (``prepare`` and ``loss``); class
attributes say what it needs: ``uses_critic`` (values), ``needs_groups`` (``group_size`` >= 2,
default 8). It knows nothing of engines, of how the rollout was made, or of distribution: a
sharded learner (:mod:`agents.distributed`) gives the base class a ``parallel`` that splits the
scoring and each minibatch over the processes, and every process prepares the same advantages
from the whole rollout.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

import numpy as np
import torch

from agents.device import autocast, padded_length
from agents.distributed.parallel import SingleProcess
from agents.policy import ActorCritic, TokenOutputs
from agents.rollout import Rollout
from agents.schedules import rl_schedule

__all__ = ["ALGORITHMS", "Advantages", "Algorithm", "Minibatch", "Scores", "length_buckets", "register"]

ALGORITHMS: dict[str, type[Algorithm]] = {}


def register(cls: type[Algorithm]) -> type[Algorithm]:
    """Class decorator: make an algorithm available as ``satori train --algo NAME``."""
    ALGORITHMS[cls.name] = cls
    return cls


@dataclass(frozen=True)
class Scores:
    """The learner's view of a rollout, each ``(B, T - 1)`` and aligned with ``action_mask``.

    Attributes:
        old_logprobs: log-probabilities of the written tokens under the policy that wrote them;
            None when no step needs them (one optimiser step on the whole rollout and no KL
            penalty: the update then uses its own, detached, and the ratio is 1).
        values: the critic's values (algorithms with ``uses_critic``), else None.
        ref_logprobs: the reference policy's log-probabilities (``kl_coef > 0``), else None.
    """

    old_logprobs: torch.Tensor | None = None
    values: torch.Tensor | None = None
    ref_logprobs: torch.Tensor | None = None


@dataclass(frozen=True)
class Advantages:
    """What :meth:`Algorithm.prepare` returns: per-token ``advantages`` ``(B, T - 1)``, and the
    critic's target ``returns`` for algorithms with a critic."""

    advantages: torch.Tensor
    returns: torch.Tensor | None = None


@dataclass(frozen=True)
class Minibatch:
    """Rows of a rollout for one forward/backward pass, on the learner's device, without the
    columns that are padding in every row. ``tokens`` and ``attention_mask`` are ``(b, t)``;
    the rest are per-token ``(b, t - 1)``, aligned with the token written next."""

    tokens: torch.Tensor
    attention_mask: torch.Tensor
    action_mask: torch.Tensor
    advantages: torch.Tensor
    old_logprobs: torch.Tensor | None = None
    returns: torch.Tensor | None = None
    values: torch.Tensor | None = None
    ref_logprobs: torch.Tensor | None = None


class Algorithm:
    """Base class: scoring and the shared update loop. See the module docstring.

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
            raise ValueError(
                f"{cls.name} compares the episodes of a group: group_size must be >= 2 (or 0 for 8), got {requested}"
            )
        return size

    def __init__(self, policy: ActorCritic, config: Any) -> None:
        self.policy, self.config = policy, config
        self.parallel = SingleProcess()
        groups = [{"params": policy.actor_parameters(), "lr": config.actor_lr}]
        if self.uses_critic:
            groups.append({"params": policy.critic_parameters(), "lr": config.critic_lr})
        self.optimizer = torch.optim.AdamW(groups, weight_decay=0.0, betas=(0.9, 0.95), eps=1e-8)
        self.scheduler = rl_schedule(self.optimizer, config)
        self.rng = np.random.default_rng(config.seed)
        self._reference: torch.nn.Module | None = None  # a frozen copy of the starting policy, made at first use

    def distribute(self, parallel: SingleProcess, reference: torch.nn.Module | None = None) -> None:
        """Split scoring and every minibatch over processes (a sharded learner calls this; see
        :mod:`agents.distributed.parallel`), with its own sharded ``reference`` for the KL
        penalty. The algorithm's math is unchanged."""
        self.parallel = parallel
        if reference is not None:
            self._reference = reference

    @property
    def trains_entropy(self) -> bool:
        """Whether :meth:`loss` differentiates the entropy. An algorithm whose loss only logs it
        says False (``trains_entropy = False``), and the update computes it without a gradient."""
        return True

    @property
    def uses_reference(self) -> bool:
        """The rollout needs the reference policy's log-probabilities."""
        return self.config.kl_coef > 0

    def needs_scoring(self, num_episodes: int) -> bool:
        """Whether a rollout of ``num_episodes`` must be scored before it is optimised on: for
        the critic's values, the reference's log-probabilities, or old log-probabilities when
        the rollout serves several optimiser steps. With one optimiser step on the whole
        rollout the policy being updated is the one that wrote it, so the old log-probabilities
        are the fresh ones, detached (the ratio is 1), and the scoring pass is skipped."""
        return self.uses_critic or self.needs_old_logprobs(num_episodes)

    def needs_old_logprobs(self, num_episodes: int) -> bool:
        """Whether scoring must give the old log-probabilities: the rollout serves several
        optimiser steps, or the KL to the reference is taken from them. Otherwise a scoring pass
        (for the critic's values) skips the policy's logits."""
        config = self.config
        return self.uses_reference or config.ppo_epochs > 1 or config.minibatch_size < num_episodes

    # -- the math (subclasses) -------------------------------------------------------------------

    def prepare(self, rollout: Rollout, scores: Scores) -> Advantages:
        """Per-token advantages (and returns, for a critic) of ``rollout``, each ``(B, T - 1)``."""
        raise NotImplementedError

    def loss(self, outputs: TokenOutputs, batch: Minibatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The minibatch loss (token-averaged) and detached statistics to log."""
        raise NotImplementedError

    # -- score, prepare, optimise (shared) ---------------------------------------------------------

    def update(self, rollout: Rollout, scores: Scores | None = None) -> dict[str, float]:
        """Score ``rollout`` (unless ``scores`` are given), prepare its advantages, then
        ``ppo_epochs`` passes of minibatch updates. Returns ``train/*`` metrics and
        ``perf/score_seconds``."""
        started = time.perf_counter()
        scores = self.score(rollout) if scores is None else scores
        scored = time.perf_counter()
        targets = self.prepare(rollout, scores)
        metrics = self._optimise(rollout, scores, targets)
        metrics["perf/score_seconds"] = scored - started
        return metrics

    @torch.no_grad()
    def score(self, rollout: Rollout) -> Scores:
        """The learner's log-probabilities of the written tokens (at the sampling temperature,
        with the same masked ids), the critic's values and the reference's log-probabilities,
        each only when :meth:`needs_scoring` says the update needs them."""
        if not self.needs_scoring(rollout.num_episodes):
            return Scores()
        if self.uses_reference and self._reference is None:
            self._reference = self.policy.reference()
        config, device, parallel = self.config, _device(self.policy), self.parallel
        with_logprobs = self.needs_old_logprobs(rollout.num_episodes)
        self.policy.eval()
        mine = parallel.shard(np.arange(rollout.num_episodes))
        lengths = rollout.attention_mask.sum(1).numpy()
        position = {row: index for index, row in enumerate(mine)}  # each row's place in this process's share
        pieces: dict[str, list[tuple[np.ndarray, torch.Tensor]]] = defaultdict(list)
        for rows in length_buckets(mine, lengths, config.micro_batch_size, device):
            width = min(padded_length(int(lengths[rows].max())), rollout.tokens.shape[1])  # this bucket's longest row
            tokens = rollout.tokens[rows, :width].to(device)
            mask = rollout.attention_mask[rows, :width].to(device)
            with autocast(device, config.bf16):
                out = self.policy(
                    tokens,
                    mask,
                    config.temperature,
                    with_entropy=False,
                    with_values=self.uses_critic,
                    with_logprobs=with_logprobs,
                )
                if self._reference is not None:
                    reference = self.policy.reference_logprobs(self._reference, tokens, mask, config.temperature)
                    pieces["ref_logprobs"].append((rows, reference.float()))
            if out.logprobs is not None:
                pieces["old_logprobs"].append((rows, out.logprobs.float()))
            if out.values is not None:
                pieces["values"].append((rows, out.values.float()))

        def whole(name: str) -> torch.Tensor | None:
            if not pieces[name]:
                return None
            # on the device in this process's row order, then to the CPU once (a copy per bucket would wait for each)
            full = torch.zeros(len(mine), rollout.tokens.shape[1] - 1, device=device)
            for rows, piece in pieces[name]:
                full[[position[row] for row in rows], : piece.shape[1]] = piece
            return parallel.gather(full.cpu(), rollout.num_episodes)

        return Scores(old_logprobs=whole("old_logprobs"), values=whole("values"), ref_logprobs=whole("ref_logprobs"))

    def _optimise(self, rollout: Rollout, scores: Scores, targets: Advantages) -> dict[str, float]:
        tensors = {
            "tokens": rollout.tokens,
            "attention_mask": rollout.attention_mask,
            "action_mask": rollout.action_mask,
            "advantages": targets.advantages,
            "returns": targets.returns,
            **{field.name: getattr(scores, field.name) for field in fields(Scores)},
        }
        tensors = {name: value for name, value in tensors.items() if value is not None}
        device, config, parallel = _device(self.policy), self.config, self.parallel
        stats: dict[str, list[torch.Tensor]] = defaultdict(list)  # kept on the device: no sync per micro-batch
        lengths = rollout.attention_mask.sum(1).numpy()
        real_tokens = padded_tokens = 0
        self.policy.train()
        for _ in range(config.ppo_epochs):
            order = self.rng.permutation(rollout.num_episodes)  # the same on every process
            for start in range(0, len(order), config.minibatch_size):
                rows = order[start : start + config.minibatch_size]
                tokens_in_minibatch = rollout.action_mask[rows].sum().clamp(min=1)
                mine = parallel.shard(rows)
                self.optimizer.zero_grad(set_to_none=True)
                for micro in length_buckets(mine, lengths, config.micro_batch_size, device):
                    batch = _select(tensors, micro, device)
                    real_tokens += int(lengths[micro].sum())
                    padded_tokens += batch.tokens.numel()
                    with autocast(device, config.bf16):
                        outputs = self.policy(
                            batch.tokens,
                            batch.attention_mask,
                            config.temperature,
                            with_entropy=True,
                            with_values=self.uses_critic,
                            entropy_grad=self.trains_entropy,
                        )
                    if batch.old_logprobs is None:  # not scored: one optimiser step, the ratio is 1
                        batch = replace(batch, old_logprobs=outputs.logprobs.detach())
                    loss, loss_stats = self.loss(outputs, batch)
                    # token-weighted accumulation over the whole minibatch, on every process
                    share = batch.action_mask.sum() / tokens_in_minibatch * parallel.gradient_scale
                    (loss * share).backward()
                    for key, value in loss_stats.items():
                        stats[key].append(_scalar(value, device))
                norm = torch.nn.utils.clip_grad_norm_(self.policy.parameters(), config.grad_clip)
                stats["grad_norm"].append(_scalar(norm, device))
                self.optimizer.step()
                self.scheduler.step()
        names = list(stats)
        if not names:
            return {}
        means = parallel.sum(torch.stack([torch.stack(stats[name]).mean() for name in names])) / parallel.world_size
        metrics = {f"train/{name}": mean for name, mean in zip(names, means.tolist())}
        metrics["perf/padding_share"] = 1 - real_tokens / max(padded_tokens, 1)  # of the tokens the update ran on
        return metrics

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


def _device(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


def _scalar(value: torch.Tensor | float, device: torch.device) -> torch.Tensor:
    """A logged statistic as a detached float32 scalar on ``device`` (read back once per update)."""
    if hasattr(value, "full_tensor"):  # a DTensor (the gradient norm of a sharded model)
        value = value.full_tensor()
    value = value.detach() if isinstance(value, torch.Tensor) else value
    return torch.as_tensor(value, dtype=torch.float32, device=device).reshape(())


CALL_COST_TOKENS = {"cpu": 64, "cuda": 2048}
"""What one more forward/backward call costs, in padded tokens' worth of work: on a CPU the tiny
preset's model costs about as much per call as 64 tokens; on a GPU a call costs far more than a
token, so buckets are split only for large savings."""


def length_buckets(rows: np.ndarray, lengths: np.ndarray, max_rows: int, device: torch.device) -> list[np.ndarray]:
    """``rows`` as micro-batches of at most ``max_rows`` rows of similar length, so that each is
    padded little (:func:`_select` cuts every micro-batch to its longest row).

    Sorted by length, the rows are cut into consecutive runs minimising the padded tokens plus
    :data:`CALL_COST_TOKENS` per micro-batch (dynamic programming over the cut points). The
    gradient is the same whichever micro-batches a minibatch is split into: it is accumulated
    over them weighted by tokens."""
    if len(rows) == 0:
        return []
    order = rows[np.argsort(-lengths[rows], kind="stable")]
    widths = [padded_length(int(length)) for length in lengths[order]]  # longest first
    call = CALL_COST_TOKENS.get(device.type, CALL_COST_TOKENS["cuda"])
    best, cut = [0.0] + [float("inf")] * len(order), [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        for start in range(max(0, end - max_rows), end):
            cost = best[start] + (end - start) * widths[start] + call
            if cost < best[end]:
                best[end], cut[end] = cost, start
    buckets, end = [], len(order)
    while end:
        buckets.append(order[cut[end] : end])
        end = cut[end]
    return buckets[::-1]


def _select(tensors: dict[str, torch.Tensor], rows: np.ndarray, device: torch.device) -> Minibatch:
    """Rows of every tensor, on ``device``, without the columns that are padding in all of them
    (``tokens``/``attention_mask`` are ``(B, T)``; the others are per-token ``(B, T - 1)``)."""
    width = min(padded_length(int(tensors["attention_mask"][rows].sum(1).max())), tensors["attention_mask"].shape[1])
    selected = {}
    for name, value in tensors.items():
        columns = width if name in ("tokens", "attention_mask") else width - 1
        selected[name] = value[rows][:, :columns].to(device)
    return Minibatch(**selected)
