"""``satori train --ray``: the learner ranks and the rollout workers as Ray actors.

Layout: one placement group with a bundle per learner rank (a GPU each when the run is on GPUs,
else a CPU) and a bundle per rollout worker (``gpus_per_worker`` GPUs, or a CPU). The learner
ranks form a ``torch.distributed`` process group (nccl on GPUs, gloo on CPUs) and shard the
policy and critic with FSDP2 (:class:`~agents.distributed.learner.ShardedLearner`); each rollout
worker holds a :class:`~agents.distributed.run.RolloutShard` (its vector env and an engine: vLLM
with ``gpus_per_worker``-way tensor parallelism on GPUs, the HF engine on CPUs). After each
update learner rank 0 puts the gathered actor weights in Ray's object store once and every
worker loads them (vLLM's weight-update path on GPUs). ``ray_address`` joins a running cluster
(``auto``: the one started on this machine with ``ray start --head``; ``RAY_ADDRESS`` works too);
without it the run starts a local cluster of its own (sized so that every bundle fits, also on a
small machine) and stops it at the end.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

from agents.algorithms import ALGORITHMS
from agents.distributed.run import DistributedRun, RolloutShard, split
from agents.engines import SamplingParams
from agents.engines.base import forbidden_for_vocabulary
from agents.rollout import Episodes, Rollout

__all__ = ["LearnerActor", "RayRun", "WorkerActor"]


class LearnerActor:
    """One learner rank in a Ray actor (see :class:`~agents.distributed.learner.ShardedLearner`)."""

    def address(self) -> tuple[str, int]:
        """This actor's node address and a free port: rank 0's becomes the process group's."""
        with socket.socket() as probe:
            probe.bind(("", 0))
            port = probe.getsockname()[1]
        return socket.gethostbyname(socket.gethostname()), port

    def setup(
        self, rank: int, world: int, address: tuple[str, int], config: Any, model_path: str, forbidden: list[int]
    ) -> None:
        import torch

        from agents.config import import_modules
        from agents.distributed.group import open_process_group
        from agents.distributed.learner import ShardedLearner

        import_modules(config.imports)
        os.environ.update(MASTER_ADDR=address[0], MASTER_PORT=str(address[1]), RANK=str(rank), WORLD_SIZE=str(world))
        os.environ.setdefault("LOCAL_RANK", "0")  # Ray gives each GPU actor its own visible device
        if config.threads:
            torch.set_num_threads(config.threads)
        on_gpu = config.device != "cpu" and torch.cuda.is_available()
        open_process_group("nccl" if on_gpu else "gloo", rank=rank, world_size=world)
        self.learner = ShardedLearner(config, model_path, forbidden)

    def update(self, rollout: Rollout) -> dict[str, float]:
        return self.learner.update(rollout)

    def publish_weights(self) -> list:
        """Rank 0: ``[reference]`` to the gathered actor weights in Ray's object store (put once
        for every worker); the other ranks take part in the gathering and return ``[]``."""
        import ray

        weights = self.learner.actor_weights()
        return [ray.put(weights)] if self.learner.rank == 0 else []

    def save(self, directory: str) -> dict[str, Any]:
        self.learner.save(directory)
        return self.learner.algorithm.state_dict()

    def load(self, directory: str, algorithm_state: dict[str, Any]) -> None:
        self.learner.load(directory, algorithm_state)

    def save_policy(self, directory: str, prompt_template: str) -> None:
        """Rank 0 writes the whole policy (``save_pretrained``); every rank gathers."""
        from agents.models import save_policy

        weights = self.learner.actor_weights()
        if self.learner.rank == 0:
            save_policy(
                self.learner.policy.actor, self.learner.tokenizer, directory, prompt_template, state_dict=weights
            )


class WorkerActor:
    """A rollout worker in a Ray actor: a :class:`RolloutShard` built from the model's path."""

    def __init__(
        self, config: Any, model_path: str, size: int, max_prompt_tokens: int, reward: Any, index: int
    ) -> None:
        import torch

        from agents.config import import_modules
        from agents.models import load_policy

        import_modules(config.imports)
        if config.threads:
            torch.set_num_threads(config.threads)
        device = "cuda" if config.gpus_per_worker and torch.cuda.is_available() else "cpu"
        model, tokenizer = load_policy(model_path, device=device)
        self.shard = RolloutShard(config, model, tokenizer, size, max_prompt_tokens, reward, None, model_path, index)

    def run(self, starts: list[dict[str, Any]], params: SamplingParams, offset: int) -> tuple[Episodes, float]:
        return self.shard.run(starts, params, offset)

    def evaluate(self, problems: list, params: SamplingParams) -> list[dict[str, Any]]:
        return self.shard.evaluate(problems, params)

    def load_weights(self, weights: dict) -> float:
        return self.shard.load_weights(weights)


class RayRun(DistributedRun):
    """The driver of a Ray run: plans starts, dispatches them to the workers, sends the rollout to
    every learner rank, moves the weights, writes checkpoints (see the module docstring)."""

    def __init__(self, config: Any, model_path: str, tasks: Any = None, reward: Any = None) -> None:
        import ray
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        from agents.train import make_envs
        from satori_env.pretrained import load_pretrained
        from satori_env.tokenizer import add_coat_tokens

        super().__init__(config, ALGORITHMS[config.algo].group_size(config.group_size))
        if config.episodes_per_iteration < config.rollout_workers:
            raise ValueError(
                f"episodes_per_iteration ({config.episodes_per_iteration}) < rollout_workers ({config.rollout_workers})"
            )
        from transformers import AutoConfig, AutoTokenizer

        self.tokenizer = load_pretrained(AutoTokenizer.from_pretrained, model_path, "model")
        add_coat_tokens(self.tokenizer)
        self.planner = make_envs(config, self.tokenizer, config.episodes_per_iteration, tasks, reward)
        rows = max(AutoConfig.from_pretrained(model_path).vocab_size, len(self.tokenizer))
        forbidden = forbidden_for_vocabulary(self.planner, rows)
        self._started_ray = _connect(config)
        learner_bundle = {"CPU": 1, "GPU": 1} if _learners_on_gpu(config) else {"CPU": 1}
        worker_bundle = {"CPU": 1, **({"GPU": config.gpus_per_worker} if config.gpus_per_worker else {})}
        bundles = [learner_bundle] * config.learner_ranks + [worker_bundle] * config.rollout_workers
        self._group = placement_group(bundles, strategy="PACK")
        ray.get(self._group.ready())

        def placed(cls, index: int, resources: dict[str, float]):
            strategy = PlacementGroupSchedulingStrategy(self._group, placement_group_bundle_index=index)
            return ray.remote(cls).options(
                scheduling_strategy=strategy, num_cpus=resources["CPU"], num_gpus=resources.get("GPU", 0)
            )

        self.learners = [placed(LearnerActor, i, learner_bundle).remote() for i in range(config.learner_ranks)]
        address = ray.get(self.learners[0].address.remote())
        ray.get(
            [
                learner.setup.remote(rank, config.learner_ranks, address, config, model_path, forbidden)
                for rank, learner in enumerate(self.learners)
            ]
        )
        sizes = [len(piece) for piece in split(list(range(config.episodes_per_iteration)), config.rollout_workers)]
        window = self.planner.envs[0].max_prompt_tokens
        self.workers = [
            placed(WorkerActor, config.learner_ranks + i, worker_bundle).remote(
                config, model_path, size, window, reward, i
            )
            for i, size in enumerate(sizes)
        ]

    def _episodes(self, starts: list[dict[str, Any]], params: SamplingParams) -> tuple[Episodes, dict[str, float]]:
        import ray

        started = time.perf_counter()
        parts = split(starts, len(self.workers))
        offsets = [sum(len(p) for p in parts[:i]) for i in range(len(parts))]
        results = ray.get([w.run.remote(part, params, at) for w, part, at in zip(self.workers, parts, offsets)])
        perf = {"perf/rollout_wait_seconds": time.perf_counter() - started}
        for index, (episodes, seconds) in enumerate(results):
            tokens = sum(len(c) for c in episodes.completions)
            perf[f"perf/worker{index}/tokens_per_s"] = tokens / max(seconds, 1e-9)
            perf[f"perf/worker{index}/seconds"] = seconds
        return Episodes.concat([episodes for episodes, _ in results]), perf

    def _update(self, rollout: Rollout) -> dict[str, float]:
        import ray

        learner_rollout = Rollout(
            *(
                getattr(rollout, f)
                for f in ("tokens", "attention_mask", "action_mask", "rewards", "group", "truncated")
            ),
            [],
            [],
        )
        started = time.perf_counter()
        metrics = ray.get([learner.update.remote(learner_rollout) for learner in self.learners])[0]
        metrics["perf/learner/update_seconds"] = time.perf_counter() - started
        return metrics

    def _sync_weights(self) -> float:
        import ray

        started = time.perf_counter()
        published = ray.get([learner.publish_weights.remote() for learner in self.learners])
        (reference,) = published[0]
        ray.get([worker.load_weights.remote(reference) for worker in self.workers])
        return time.perf_counter() - started

    def _save_learner(self, directory: Path) -> dict[str, Any]:
        import ray

        return ray.get([learner.save.remote(str(directory)) for learner in self.learners])[0]

    def _load_learner(self, directory: Path, algorithm_state: dict[str, Any]) -> None:
        import ray

        ray.get([learner.load.remote(str(directory), algorithm_state) for learner in self.learners])

    def _evaluation_records(self, problems: list, params: SamplingParams) -> list[dict[str, Any]]:
        import ray

        parts = split(problems, len(self.workers))
        return sum(ray.get([w.evaluate.remote(part, params) for w, part in zip(self.workers, parts)]), [])

    def save_final(self, out: Path) -> None:
        import ray

        ray.get(
            [learner.save_policy.remote(str(out / "model"), self.config.prompt_template) for learner in self.learners]
        )
        self.planner.restart_buffer.save(out / "restart_buffer.json.gz")

    def close(self) -> None:
        """Stop the actors and the placement group (and the local cluster this run started)."""
        import ray
        from ray.util.placement_group import remove_placement_group

        for actor in self.learners + self.workers:
            ray.kill(actor)
        remove_placement_group(self._group)
        if self._started_ray:
            ray.shutdown()


def _learners_on_gpu(config: Any) -> bool:
    import ray

    return config.device != "cpu" and ray.cluster_resources().get("GPU", 0) > 0


def _connect(config: Any) -> bool:
    """Join ``config.ray_address`` (``auto``: the cluster running on this machine; or the one in
    ``RAY_ADDRESS``), or a cluster this process already joined, or start a local one for this run
    alone (never another run's); True when this run started it (and stops it at the end)."""
    import ray

    if ray.is_initialized():
        return False
    address = config.ray_address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
        return False
    bundles = config.learner_ranks + config.rollout_workers
    ray.init(num_cpus=max(os.cpu_count() or 1, bundles), include_dashboard=False, log_to_driver=False)
    return True
