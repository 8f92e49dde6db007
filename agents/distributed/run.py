"""What the distributed layouts share: rollout shards, start planning, and the driver's side of
an iteration, checkpoints and evaluation.

One start planner (a :class:`~satori_env.SatoriMathVectorEnv` with the run's restart buffer and
curriculum) draws every episode's start exactly as one process would, so the restart buffer and
the curriculum stay single: every episode is reported to the one curriculum and feeds the one
buffer. The starts are split over rollout shards (Ray actors, or the ``torchrun`` ranks
themselves), each a vector env of its own with pinned starts and an engine; the shards send back
token ids and the environment's ``info`` (:class:`~agents.rollout.Episodes`), never text. The
learner ranks get the whole rollout and split the work between them
(:mod:`agents.distributed.parallel`).

Checkpoints (``OUT/rl/checkpoints/step-N``, written atomically): the learner's model and
optimiser shards through ``torch.distributed.checkpoint`` (``learner/``), each learner rank's RNG
states, ``trainer_state.pt`` (plain data: the iteration, the algorithm's state, the planner's
generators, the curriculum, the driver's RNG states, the metrics so far), the restart buffer and
the tokenizer. A run resumes on any number of learner ranks.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import torch
from gymnasium.vector import AutoresetMode

from agents.checkpoint import load_trainer_state, prune_checkpoints, save_trainer_state
from agents.device import rollout_autocast
from agents.engines import SamplingParams, make_engine
from agents.evaluation import EvalResult, evaluate
from agents.metrics import curriculum_metrics, rollout_metrics
from agents.rollout import Episodes, Rollout, assemble_rollout, run_episodes
from satori_env import Problem, SatoriMathVectorEnv
from satori_env.atomic import atomic_directory

__all__ = ["DistributedRun", "RolloutShard", "split"]

_PINNED = Problem("pinned", "every episode of a rollout shard is pinned by its reset options", "0", "pinned")


def split(items: list[Any], parts: int) -> list[list[Any]]:
    """``items`` in ``parts`` contiguous pieces, as equal as they can be (the first ones longer)."""
    size, extra = divmod(len(items), parts)
    pieces, start = [], 0
    for index in range(parts):
        end = start + size + (index < extra)
        pieces.append(items[start:end])
        start = end
    return pieces


class RolloutShard:
    """A share of every iteration's episodes: a vector env of its own (every episode pinned to a
    start the planner drew; no restart buffer, no curriculum) and an engine.

    Args:
        config: the run's :class:`~agents.config.TrainConfig`.
        model: the policy this shard generates with.
        tokenizer: its tokenizer.
        size: episodes per iteration in this shard.
        max_prompt_tokens: the planner's prompt window (restart prefixes included).
        reward: the run's reward (None: ``config.reward``).
        engine: the engine (None: ``config.engine`` for ``model``).
        model_path: where the policy was loaded from (the vLLM engine loads it itself).
        index: this shard's position: its sampling seed differs from the other shards'.
    """

    def __init__(
        self,
        config: Any,
        model: Any,
        tokenizer: Any,
        size: int,
        max_prompt_tokens: int,
        reward: Any = None,
        engine: Any = None,
        model_path: str | None = None,
        index: int = 0,
    ) -> None:
        from agents.train import run_reward

        self.model, self.tokenizer, self.index = model, tokenizer, index
        self.config = config
        self.envs = SatoriMathVectorEnv(
            num_envs=size,
            tasks=[_PINNED],
            tokenizer=tokenizer,
            max_new_tokens=config.max_new_tokens,
            max_prompt_tokens=max_prompt_tokens,
            prompt_template=config.prompt_template,
            reward=run_reward(config) if reward is None else reward,
            autoreset_mode=AutoresetMode.DISABLED,
        )
        self.engine = engine if engine is not None else _engine(config, model, self.envs, model_path)

    def run(self, starts: list[dict[str, Any]], params: SamplingParams, offset: int) -> tuple[Episodes, float]:
        """The episodes of ``starts`` (one per copy of this shard; the first is episode ``offset``
        of the iteration), and the seconds they took. With ``params.seed_per_prompt`` each
        episode is sampled as one process samples it; otherwise each shard from its own seed."""
        started = time.perf_counter()
        self.envs.reset_groups(1, starts)
        if params.seed is not None:
            shift = offset if params.seed_per_prompt else 7919 * self.index
            params = dataclasses.replace(params, seed=params.seed + shift)
        with rollout_autocast(self.config, next(self.model.parameters()).device):
            episodes = run_episodes(self.envs, self.engine, params)
        return episodes, time.perf_counter() - started

    def evaluate(self, problems: list[Problem], params: SamplingParams) -> list[dict[str, Any]]:
        """Evaluation records of ``problems`` (see :func:`agents.evaluation.evaluate`)."""
        if not problems:
            return []
        return evaluate(
            self.engine, self.tokenizer, problems, params=params, prompt_template=self.config.prompt_template
        ).records

    def load_weights(self, weights: dict[str, torch.Tensor]) -> float:
        """Take the learner's gathered actor weights; returns the seconds it took."""
        started = time.perf_counter()
        if hasattr(self.engine, "load_weights"):
            self.engine.load_weights(weights)
        else:
            self.model.load_state_dict(weights)
        return time.perf_counter() - started


def _engine(config: Any, model: Any, envs: SatoriMathVectorEnv, model_path: str | None) -> Any:
    if config.engine == "vllm":
        from agents.engines.vllm import VLLMEngine

        return VLLMEngine.for_env(model, envs, model_path, tensor_parallel_size=max(config.gpus_per_worker, 1))
    return make_engine(config.engine, model, envs, model_path=model_path)


class DistributedRun:
    """The driver's side of a distributed run (the Ray driver, or rank 0 under ``torchrun``):
    start planning, the iteration, checkpoints and evaluation, for :func:`agents.train.train_loop`.

    Subclasses say how episodes are generated (:meth:`_episodes`), how the learner is updated and
    its weights reach the shards, and how the learner saves and loads its part of a checkpoint.
    """

    is_main = True
    planner: SatoriMathVectorEnv | None = None

    def __init__(self, config: Any, group_size: int) -> None:
        self.config, self.group_size = config, group_size

    @property
    def curriculum(self):
        return self.planner.curriculum if self.planner is not None else None

    @property
    def start_envs(self) -> SatoriMathVectorEnv | None:
        """The start planner (None on the ranks that do not plan)."""
        return self.planner

    # -- what the layouts provide ----------------------------------------------------------------

    def _plan(self) -> list[dict[str, Any]] | None:
        """This iteration's starts (main process); None elsewhere."""
        _, self._reset_info = self.planner.reset_groups(self.group_size)
        return self.planner.starts()

    def _episodes(
        self, starts: list[dict[str, Any]] | None, params: SamplingParams
    ) -> tuple[Episodes, dict[str, float]]:
        raise NotImplementedError

    def _update(self, rollout: Rollout) -> dict[str, float]:
        raise NotImplementedError

    def _sync_weights(self) -> float:
        raise NotImplementedError

    def _save_learner(self, directory: Path) -> dict[str, Any]:
        """Write the learner's part of a checkpoint; returns the algorithm's state."""
        raise NotImplementedError

    def _load_learner(self, directory: Path, algorithm_state: dict[str, Any]) -> None:
        raise NotImplementedError

    def _evaluation_records(self, problems: list[Problem], params: SamplingParams) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _share_path(self, path: Path | None) -> Path:
        """The main process's temporary checkpoint directory, on every process."""
        return path

    def _barrier(self) -> None:
        """Wait for every process (a no-op with one driver)."""

    # -- the iteration --------------------------------------------------------------------------

    def iterate(self, iteration: int) -> dict[str, float]:
        """Plan the starts, gather the shards' episodes, update the learner, refresh the shards'
        weights; returns everything logged for the iteration."""
        from agents.train import sampling

        started = time.perf_counter()
        starts = self._plan() if self.is_main else None
        episodes, perf = self._episodes(starts, sampling(self.config, iteration))
        if self.is_main:
            episodes = self._report(episodes)
        rollout_seconds = time.perf_counter() - started
        rollout = assemble_rollout(episodes, self.tokenizer.pad_token_id, self.group_size)
        metrics = self._update(rollout)
        updated = time.perf_counter()
        perf["perf/weights_sync_seconds"] = self._sync_weights()
        metrics.update(rollout_metrics(rollout))
        if self.is_main:
            self.planner.restart_buffer.add_trajectories(rollout.trajectories)
            metrics["restart/buffer_states"] = float(len(self.planner.restart_buffer))
            if self.planner.curriculum is not None:
                metrics.update(curriculum_metrics(self.planner.curriculum, rollout))
        metrics.update(perf)
        metrics["perf/rollout_seconds"] = rollout_seconds
        metrics["perf/update_seconds"] = updated - started - rollout_seconds - metrics["perf/score_seconds"]
        metrics["perf/tokens_per_s"] = rollout.num_generated / max(rollout_seconds, 1e-9)
        metrics["perf/iteration_seconds"] = time.perf_counter() - started
        return metrics

    def _report(self, episodes: Episodes) -> Episodes:
        """The planner's view of each episode in its info (the curriculum arm that served it, a
        restart state skipped at the draw), and each outcome reported to the curriculum, as a
        single environment does when its episode ends."""
        reset, curriculum = self._reset_info, self.planner.curriculum
        infos = []
        for index, info in enumerate(episodes.infos):
            arm = reset["curriculum_arm"][index]
            restart = {**info["restart"], "skipped": int(reset["restart"]["skipped"][index])}
            infos.append({**info, "curriculum_arm": arm, "restart": restart})
            if arm is not None:
                curriculum.update(arm, bool(info["correct"]))
        return Episodes(
            episodes.prompts, episodes.completions, episodes.rewards, episodes.truncated, infos, episodes.trajectories
        )

    # -- evaluation -------------------------------------------------------------------------------

    def evaluate(self, problems: list[Problem]) -> dict[str, float]:
        """Greedy held-out metrics of the current policy, the problems split over the shards."""
        if not problems:
            return {}
        params = SamplingParams(max_new_tokens=self.config.max_new_tokens, temperature=0.0)
        return EvalResult.from_records(self._evaluation_records(problems, params)).row()

    # -- checkpoints ------------------------------------------------------------------------------

    def save_checkpoint(self, out: Path, iteration: int, progress: dict[str, Any]) -> None:
        """``OUT/checkpoints/step-N``, atomically (see the module docstring)."""
        target = out / "checkpoints" / f"step-{iteration:06d}"
        if self.is_main:
            with atomic_directory(target) as tmp:
                self._write_checkpoint(self._share_path(tmp), iteration, progress)
            prune_checkpoints(out)
        else:
            self._write_checkpoint(self._share_path(None), iteration, progress)
        self._barrier()

    def _write_checkpoint(self, tmp: Path, iteration: int, progress: dict[str, Any]) -> None:
        algorithm_state = self._save_learner(tmp)
        self._barrier()  # every rank's shards are written before the directory is complete
        if not self.is_main:
            return
        planner = self.planner
        state = {
            "layout": "distributed",
            "iteration": iteration,
            "algorithm": algorithm_state,
            "env_rng": planner.rng_states(),
            "curriculum": planner.curriculum.state_dict() if planner.curriculum is not None else None,
            **progress,
        }
        save_trainer_state(tmp, iteration, state)
        planner.restart_buffer.save(tmp / "restart_buffer.json.gz")
        self.tokenizer.save_pretrained(tmp)

    def resume(self, checkpoint: Path) -> dict[str, Any]:
        """Restore the run from a checkpoint of a distributed run (any number of ranks)."""
        from agents.train import restore_envs

        saved = load_trainer_state(checkpoint)
        state = saved["state"]
        if state.get("layout") != "distributed":
            raise ValueError(
                f"{checkpoint} was written by a one-process run; resume it without --ray / torchrun "
                "(or start this layout afresh in another --out)"
            )
        self._load_learner(checkpoint, state["algorithm"])
        if self.is_main:
            restore_envs(self.planner, checkpoint, state)
        self._sync_weights()
        return state
