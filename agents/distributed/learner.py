"""One rank of the sharded learner: the policy and critic under FSDP2, the algorithm, its optimiser.

Every rank is built the same way from the same checkpoint and seed, then sharded; the algorithm
is the same class as in one process, given a :class:`~agents.distributed.parallel.TorchDistributed`
so that scoring and every minibatch are split over the ranks. The ranks are started by Ray
(:mod:`agents.distributed.ray_train`) or by ``torchrun`` (:mod:`agents.distributed.torchrun`);
either way the process group exists before a :class:`ShardedLearner` is made.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from agents.algorithms import ALGORITHMS
from agents.checkpoint import rng_state, set_rng_state
from agents.distributed.fsdp import full_state_dict, load_sharded_state, reshard, shard_model, sharded_state
from agents.distributed.parallel import TorchDistributed
from agents.models import load_critic_start, load_policy
from agents.policy import ActorCritic
from agents.rollout import Rollout

__all__ = ["ShardedLearner", "learner_device"]


def learner_device(config: Any) -> torch.device:
    """This rank's device: its local GPU (``LOCAL_RANK``) when CUDA is asked for or available,
    else the CPU."""
    if config.device == "cpu" or (config.device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % max(torch.cuda.device_count(), 1))
    torch.cuda.set_device(device)
    return device


class ShardedLearner:
    """The learner on this rank.

    Args:
        config: the run's :class:`~agents.config.TrainConfig` (``offload_optimizer`` puts the
            parameters, gradients and optimiser state on the CPU).
        model_path: the starting policy (every rank loads it).
        forbidden_ids: token ids the policy never writes (from the environment).
    """

    def __init__(self, config: Any, model_path: str, forbidden_ids: list[int]) -> None:
        self.config = config
        self.device = learner_device(config)
        torch.manual_seed(config.seed)
        model, self.tokenizer = load_policy(model_path, device="cpu")
        if config.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        algorithm = ALGORITHMS[config.algo]
        critic = config.critic if algorithm.uses_critic else "none"
        start = load_critic_start(config) if critic == "separate" else None
        self.policy = ActorCritic(model, critic, forbidden_ids, critic_from=start).to(self.device)
        reference = self.policy.reference() if config.kl_coef > 0 else None
        mixed = self.device.type == "cuda" and config.bf16
        shard_model(self.policy, self.device, mixed_precision=mixed, offload=config.offload_optimizer)
        if reference is not None:
            shard_model(reference, self.device, mixed_precision=mixed)
        with torch.no_grad():  # FSDP initialises on the root's first forward: before the actor alone generates
            pad = torch.full((1, 2), self.tokenizer.pad_token_id, dtype=torch.long, device=self.device)
            self.policy(pad, torch.ones_like(pad), 1.0, with_entropy=False, with_values=algorithm.uses_critic)
        reshard(self.policy)  # the optimiser must hold the sharded parameters, not the root's gathered ones
        self.parallel = TorchDistributed()
        self.parallel.check_divides(config.episodes_per_iteration, "episodes_per_iteration")
        self.parallel.check_divides(config.minibatch_size, "minibatch_size")
        self.algorithm = algorithm(self.policy, config)
        self.algorithm.distribute(self.parallel, reference)

    @property
    def rank(self) -> int:
        return self.parallel.rank

    def update(self, rollout: Rollout) -> dict[str, float]:
        """Score, prepare and optimise on ``rollout`` (every rank gets the whole rollout)."""
        return self.algorithm.update(rollout)

    def actor_weights(self) -> dict[str, torch.Tensor]:
        """The actor's whole state dict on the CPU (names as in the unsharded causal LM) on rank
        0, ``{}`` elsewhere: what rollout engines load after each update. Every rank calls it."""
        full = full_state_dict(self.policy)
        return {name.removeprefix("actor."): tensor for name, tensor in full.items() if name.startswith("actor.")}

    def save(self, directory: str | Path) -> None:
        """This rank's part of a checkpoint into ``directory`` (which every rank sees): the model
        and optimiser shards through ``torch.distributed.checkpoint``, and this rank's RNG states."""
        import torch.distributed.checkpoint as dcp

        directory = Path(directory)
        dcp.save(sharded_state(self.policy, self.algorithm.optimizer), checkpoint_id=str(directory / "learner"))
        torch.save(rng_state(), directory / f"rng-rank{self.rank}.pt")

    def load(self, directory: str | Path, algorithm_state: dict[str, Any]) -> None:
        """Restore what :meth:`save` wrote (resharded for this layout) and the algorithm's own
        state (reward statistics, minibatch generator)."""
        directory = Path(directory)
        load_sharded_state(self.policy, self.algorithm.optimizer, str(directory / "learner"))
        self.algorithm.load_state_dict(algorithm_state)
        set_rng_state(torch.load(directory / f"rng-rank{self.rank}.pt", weights_only=True))
