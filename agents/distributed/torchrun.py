"""``torchrun --nproc-per-node N -m agents.cli train --learner-ranks N ...``: one node, no Ray.

Every rank is a learner rank (FSDP2, :class:`~agents.distributed.learner.ShardedLearner`) and a
rollout shard: it generates its share of the episodes with its own sharded policy (the HF
engine, in step with the other ranks, since FSDP gathers parameters on every rank for each
forward pass), so no weights move after an update. Rank 0 plans the starts (one restart buffer,
one curriculum) and writes logs and checkpoints; the episodes are gathered on every rank, which
then update together.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from agents.algorithms import ALGORITHMS
from agents.distributed.group import open_process_group, release_process_group
from agents.distributed.learner import ShardedLearner, learner_device
from agents.distributed.run import DistributedRun, RolloutShard, split
from agents.engines import HFEngine, SamplingParams
from agents.engines.base import forbidden_for_vocabulary
from agents.rollout import Episodes, Rollout

__all__ = ["TorchrunRun"]


class TorchrunRun(DistributedRun):
    """This rank's side of a ``torchrun`` run (see the module docstring)."""

    def __init__(self, config: Any, model_path: str, tasks: Any = None, reward: Any = None) -> None:
        from agents.train import make_envs

        super().__init__(config, ALGORITHMS[config.algo].group_size(config.group_size))
        self._owns_group = not dist.is_initialized()  # a group this run starts, this run ends
        if self._owns_group:
            open_process_group("nccl" if learner_device(config).type == "cuda" else "gloo")
        world = dist.get_world_size()
        if config.learner_ranks not in (1, world):
            raise ValueError(f"--learner-ranks {config.learner_ranks} but torchrun started {world} processes")
        if config.episodes_per_iteration % world:
            raise ValueError(
                f"episodes_per_iteration ({config.episodes_per_iteration}) must be a multiple of the ranks ({world})"
            )
        self.rank, self.world = dist.get_rank(), world
        self.is_main = self.rank == 0
        if config.threads:
            torch.set_num_threads(config.threads)
        from transformers import AutoConfig, AutoTokenizer

        from satori_env.pretrained import load_pretrained
        from satori_env.tokenizer import add_coat_tokens

        self.tokenizer = load_pretrained(AutoTokenizer.from_pretrained, model_path, "model")
        add_coat_tokens(self.tokenizer)
        planner = make_envs(config, self.tokenizer, config.episodes_per_iteration, tasks, reward)
        self.planner = planner if self.is_main else None
        rows = max(AutoConfig.from_pretrained(model_path).vocab_size, len(self.tokenizer))
        self.learner = ShardedLearner(config, model_path, forbidden_for_vocabulary(planner, rows))
        actor = self.learner.policy.actor
        size = config.episodes_per_iteration // world
        window = planner.envs[0].max_prompt_tokens
        shard = RolloutShard(config, actor, self.learner.tokenizer, size, window, reward, engine=None, index=self.rank)
        shard.engine = HFEngine.for_env(actor, shard.envs, decoding="generate", synced=True)
        self.shard = shard

    def _episodes(
        self, starts: list[dict[str, Any]] | None, params: SamplingParams
    ) -> tuple[Episodes, dict[str, float]]:
        shared = [starts]
        dist.broadcast_object_list(shared, src=0)
        size = len(shared[0]) // self.world
        mine = shared[0][self.rank * size : (self.rank + 1) * size]
        episodes, seconds = self.shard.run(mine, params, self.rank * size)
        started = time.perf_counter()
        gathered: list[Any] = [None] * self.world
        dist.all_gather_object(gathered, (episodes, seconds))
        perf = {"perf/rollout_wait_seconds": time.perf_counter() - started}
        for rank, (part, part_seconds) in enumerate(gathered):
            perf[f"perf/worker{rank}/tokens_per_s"] = sum(len(c) for c in part.completions) / max(part_seconds, 1e-9)
            perf[f"perf/worker{rank}/seconds"] = part_seconds
        return Episodes.concat([part for part, _ in gathered]), perf

    def _update(self, rollout: Rollout) -> dict[str, float]:
        started = time.perf_counter()
        metrics = self.learner.update(rollout)
        metrics["perf/learner/update_seconds"] = time.perf_counter() - started
        return metrics

    def _sync_weights(self) -> float:
        return 0.0  # the shards generate with the learner's own sharded policy

    def _save_learner(self, directory: Path) -> dict[str, Any]:
        self.learner.save(directory)
        return self.learner.algorithm.state_dict()

    def _load_learner(self, directory: Path, algorithm_state: dict[str, Any]) -> None:
        self.learner.load(directory, algorithm_state)

    def _share_path(self, path: Path | None) -> Path:
        shared = [str(path) if path is not None else None]
        dist.broadcast_object_list(shared, src=0)
        return Path(shared[0])

    def _barrier(self) -> None:
        dist.barrier()

    def _evaluation_records(self, problems: list, params: SamplingParams) -> list[dict[str, Any]]:
        parts = split(problems, self.world)
        mine = parts[self.rank]
        # every rank must run the same generation calls (FSDP): pad the shorter shares
        padded = mine + [(mine or problems)[-1]] * (len(parts[0]) - len(mine))
        records = self.shard.evaluate(padded, params)[: len(mine)]
        gathered: list[Any] = [None] * self.world
        dist.all_gather_object(gathered, records)
        return sum(gathered, [])

    def save_final(self, out: Path) -> None:
        from agents.models import save_policy

        weights = self.learner.actor_weights()
        if self.is_main:
            save_policy(
                self.learner.policy.actor,
                self.learner.tokenizer,
                out / "model",
                self.config.prompt_template,
                state_dict=weights,
            )
            self.planner.restart_buffer.save(out / "restart_buffer.json.gz")
        dist.barrier()

    def close(self) -> None:
        dist.barrier()
        if self._owns_group:  # the sharded modules first: they hold the group
            del self.learner, self.shard
            release_process_group()
