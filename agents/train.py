"""``satori train``: stage one (build, synthesise, format-tune) if needed, then RL with
Restart-and-Explore, evaluated before and after on held-out procedural problems.

The loop is the same for every algorithm: roll out through the vector env (whose restart buffer
the finished trajectories feed), let the learner score the rollout (old log-probabilities,
values, reference log-probabilities), update, log, checkpoint. Checkpoints hold the policy, the
critic, the optimiser and scheduler, every RNG state (torch, NumPy, Python, the environments',
the algorithm's) and the restart buffer, so ``--resume`` continues exactly.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from tqdm import tqdm

from agents.algorithms import ALGORITHMS, Algorithm
from agents.checkpoint import clean_partial_writes, latest_checkpoint, load_checkpoint, save_checkpoint
from agents.config import TrainConfig
from agents.device import choose_device
from agents.engines import ENGINES, SamplingParams, make_engine
from agents.engines.base import forbidden_ids
from agents.evaluation.episodes import evaluate
from agents.models import MODEL_PRESETS, load_policy, save_policy
from agents.policy import ActorCritic
from agents.rollout import Rollout, collect_rollout
from satori_env import CURRICULA, AdaptiveCurriculum, ArithmeticTasks, RestartBuffer, SatoriMathVectorEnv, load_problems
from satori_env.atomic import atomic_write
from satori_env.coat import META_ACTIONS
from satori_env.pretrained import locate_pretrained
from satori_env.rewards import make_reward

__all__ = ["check_config", "run", "stage_one", "train_rl"]


def run(config: TrainConfig) -> dict[str, Any]:
    """Both stages; returns the metrics also written to ``OUT/rl/metrics.json``."""
    if config.threads:
        torch.set_num_threads(config.threads)
    check_config(config)  # bad settings fail before stage one, not after it
    model = config.model if config.model is not None else str(stage_one(config))
    return _train_rl(config, model)


def stage_one(config: TrainConfig) -> Path:
    """Build the model, synthesise demonstrations and format-tune, skipping what exists."""
    from agents.data.synth import synthesize, write_demos
    from agents.models import build_model
    from agents.sft import SFTArgs, train_sft

    if config.model_preset not in MODEL_PRESETS:
        raise ValueError(
            f"no model given (--model PATH) and no model preset to build ({config.model_preset!r}); valid presets: "
            f"{sorted(MODEL_PRESETS)}"
        )
    out = Path(config.out)
    if not (out / "base" / "config.json").exists():
        build_model(config.model_preset, out / "base", config.seed)
    if not (out / "demos.jsonl").exists():
        demos, _ = synthesize(config.synth_n, levels=config.train_levels, seed=config.seed)
        write_demos(demos, out / "demos.jsonl")
    sft_model = out / "sft" / "model"
    if not (sft_model / "config.json").exists():
        train_sft(
            SFTArgs(
                model=str(out / "base"),
                data=str(out / "demos.jsonl"),
                out=str(out / "sft"),
                steps=config.sft_steps,
                prompt_template=config.prompt_template,
                eval_per_level=0,
                seed=config.seed,
                device=config.device,
                bf16=config.bf16,
                resume=True,
                progress=config.progress,
            )
        )
    return sft_model


def check_config(config: TrainConfig) -> None:
    """Check what :class:`TrainConfig` cannot check alone: the algorithm (custom ones are
    registered at run time), engine, critic, curriculum, the starting model or the one stage one
    builds, and the batch (``ValueError`` / ``FileNotFoundError`` say what is wrong)."""
    if config.algo not in ALGORITHMS:
        raise ValueError(
            f"unknown algorithm {config.algo!r}; valid algorithms: {sorted(ALGORITHMS)} "
            "(your own: register it with @agents.algorithms.register in a module, and pass --import MODULE)"
        )
    if config.engine not in ENGINES:
        raise ValueError(f"unknown engine {config.engine!r}; valid engines: {list(ENGINES)}")
    if config.critic not in ("shared", "separate"):
        raise ValueError(f"unknown critic {config.critic!r}; valid critics: ['shared', 'separate']")
    if config.model is not None:
        locate_pretrained(config.model, "--model")  # a missing local path fails now, not after stage one
    elif config.model_preset not in MODEL_PRESETS:
        raise ValueError(
            f"no model given (--model PATH) and no model preset to build ({config.model_preset!r}); valid presets: "
            f"{sorted(MODEL_PRESETS)}"
        )
    if config.curriculum is not None and config.curriculum not in CURRICULA:
        raise ValueError(f"unknown curriculum {config.curriculum!r}; valid curricula: {sorted(CURRICULA)} (or none)")
    if config.curriculum is not None and config.tasks != "arith":
        raise ValueError(
            f"curriculum {config.curriculum!r} chooses among the procedural levels; it needs tasks='arith', got "
            f"{config.tasks!r} "
            "(set curriculum to None, --curriculum None, to train on other tasks)"
        )
    group_size = ALGORITHMS[config.algo].group_size(config.group_size)
    if config.episodes_per_iteration % group_size:
        raise ValueError(
            f"episodes_per_iteration ({config.episodes_per_iteration}) must be a multiple of group_size ({group_size})"
        )


def _tasks(config: TrainConfig):
    return ArithmeticTasks(config.train_levels, split="train") if config.tasks == "arith" else config.tasks


def train_rl(config: TrainConfig, model_path: str, tasks: Any = None, reward: Any = None) -> dict[str, Any]:
    """Stage two from the policy at ``model_path``. ``tasks`` and ``reward`` replace what
    ``config`` names with your own (anything the environment's ``tasks=`` / ``reward=`` take:
    a source name, problems, a ``Curriculum``, a ``RewardSpec``, a dict of term weights, ...);
    with ``tasks`` given, ``config.curriculum`` is not used.

    Returns ``{"before", "after", "iterations", "history", "config"}``: greedy held-out metrics
    before and after, and every iteration's logged metrics (and the final ``"curriculum"``
    state when there is one)."""
    check_config(config)
    return _train_rl(config, model_path, tasks, reward)


@dataclass
class _Learner:
    """What one RL run holds: the policy and its tokenizer, the environments with their restart
    buffer, the algorithm and the engine."""

    model: Any
    tokenizer: Any
    envs: SatoriMathVectorEnv
    policy: ActorCritic
    algorithm: Algorithm
    engine: Any


def _build(config: TrainConfig, model_path: str, tasks: Any, reward: Any) -> _Learner:
    device = choose_device(config.device)
    model, tokenizer = load_policy(model_path, device=config.device)
    buffer = RestartBuffer(
        tokenizer,
        config.restart_capacity,
        config.restart_strategy,
        config.max_backtrack,
        config.seed,
        max_prefix_tokens=config.max_new_tokens + 1,
    )
    envs = SatoriMathVectorEnv(
        num_envs=config.episodes_per_iteration,
        tasks=_tasks(config) if tasks is None else tasks,
        tokenizer=tokenizer,
        max_new_tokens=config.max_new_tokens,
        prompt_template=config.prompt_template,
        reward=make_reward(config.reward, bonus_scale=config.bonus_scale) if reward is None else reward,
        restart_buffer=buffer,
        restart_prob=config.restart_prob,
        curriculum=config.curriculum
        if tasks is None
        else None,  # your tasks decide (a Curriculum is a task source too)
        autoreset_mode=AutoresetMode.DISABLED,  # collect_rollout resets every copy itself
    )
    envs.reset(seed=config.seed)
    critic = config.critic if ALGORITHMS[config.algo].uses_critic else "none"
    policy = ActorCritic(model, critic, forbidden_ids(model, envs)).to(device)  # what the engine never writes
    algorithm = ALGORITHMS[config.algo](policy, config)
    engine = make_engine(config.engine, model, envs, model_path=model_path)
    return _Learner(model, tokenizer, envs, policy, algorithm, engine)


def _checkpoint_state(
    learner: _Learner, iteration: int, before: dict[str, float], history: list[dict[str, float]]
) -> dict[str, Any]:
    """Everything a checkpoint holds besides the weights, optimiser and RNG states, which
    :func:`~agents.checkpoint.save_checkpoint` adds (and the restart buffer, saved beside)."""
    envs = learner.envs
    return {
        "iteration": iteration,
        "critic": {k: v for k, v in learner.policy.state_dict().items() if not k.startswith("actor.")},
        "algorithm": learner.algorithm.state_dict(),
        "env_rng": envs.rng_states(),
        "curriculum": envs.curriculum.state_dict() if envs.curriculum is not None else None,
        "before": before,
        "history": history,
    }


def _resume(learner: _Learner, checkpoint: Path) -> dict[str, Any]:
    """Restore a run from ``checkpoint``; returns the state :func:`_checkpoint_state` saved."""
    state = load_checkpoint(checkpoint, learner.model, learner.algorithm.optimizers(), learner.algorithm.schedulers())
    learner.policy.load_state_dict(state["critic"], strict=False)
    learner.algorithm.load_state_dict(state["algorithm"])
    learner.envs.restart_buffer = RestartBuffer.load(checkpoint / "restart_buffer.json.gz")
    if learner.envs.curriculum is not None and state.get("curriculum") is not None:
        learner.envs.curriculum.load_state_dict(state["curriculum"])
    learner.envs.set_rng_states(state["env_rng"])
    learner.engine.sync_weights()
    return state


def _iteration(learner: _Learner, config: TrainConfig, iteration: int, group_size: int) -> dict[str, float]:
    """One rollout and one update; returns everything logged for it."""
    started = time.perf_counter()
    params = SamplingParams(
        config.max_new_tokens, config.temperature, config.top_p, seed=config.seed * 1_000_003 + iteration
    )
    rollout = collect_rollout(learner.envs, learner.engine, params, group_size)
    rollout_seconds = time.perf_counter() - started
    metrics = learner.algorithm.update(rollout)  # score, prepare, optimise
    learner.engine.sync_weights()
    buffer = learner.envs.restart_buffer
    buffer.add_trajectories(rollout.trajectories)
    metrics.update(_rollout_metrics(rollout))
    if learner.envs.curriculum is not None:
        metrics.update(_curriculum_metrics(learner.envs.curriculum, rollout))
    metrics["restart/buffer_states"] = float(len(buffer))
    metrics["perf/rollout_seconds"] = rollout_seconds
    metrics["perf/update_seconds"] = time.perf_counter() - started - rollout_seconds - metrics["perf/score_seconds"]
    metrics["perf/tokens_per_s"] = rollout.num_generated / max(rollout_seconds, 1e-9)
    metrics["perf/iteration_seconds"] = time.perf_counter() - started
    return metrics


def _train_rl(config: TrainConfig, model_path: str, tasks: Any = None, reward: Any = None) -> dict[str, Any]:
    out = Path(config.out) / "rl"
    group_size = ALGORITHMS[config.algo].group_size(config.group_size)
    torch.manual_seed(config.seed)
    learner = _build(config, model_path, tasks, reward)
    clean_partial_writes(out)
    checkpoint = latest_checkpoint(out) if config.resume else None
    state = _resume(learner, checkpoint) if checkpoint is not None else {}
    iteration = state.get("iteration", 0)
    eval_problems = [
        p
        for level in config.eval_levels
        for p in load_problems("arith:test", level=level, limit=config.eval_per_level, seed=config.seed)
    ]
    before = state.get("before") or _evaluate(learner, eval_problems, config)

    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(out / "tb"))
    _log_eval(writer, before, 0)
    bar = tqdm(total=config.iterations, initial=iteration, desc=f"RL ({config.algo})", disable=not config.progress)
    history: list[dict[str, float]] = list(state.get("history", []))  # every iteration's, across resumes
    while iteration < config.iterations:
        metrics = _iteration(learner, config, iteration, group_size)
        iteration += 1
        for name, value in metrics.items():
            writer.add_scalar(name, value, iteration)
        history.append(metrics)
        bar.update(1)
        bar.set_postfix(acc=f"{metrics['rollout/accuracy']:.2f}", reward=f"{metrics['reward/total']:.2f}")
        if iteration % config.checkpoint_every == 0 and iteration < config.iterations:
            save_checkpoint(
                out,
                iteration,
                learner.model,
                learner.tokenizer,
                learner.algorithm.optimizers(),
                learner.algorithm.schedulers(),
                _checkpoint_state(learner, iteration, before, history),
                extra=lambda directory: learner.envs.restart_buffer.save(directory / "restart_buffer.json.gz"),
            )
    bar.close()
    save_policy(learner.model, learner.tokenizer, out / "model", config.prompt_template)
    learner.envs.restart_buffer.save(out / "restart_buffer.json.gz")
    after = _evaluate(learner, eval_problems, config)
    _log_eval(writer, after, iteration)
    writer.close()
    result = {"before": before, "after": after, "iterations": iteration, "history": history, "config": asdict(config)}
    if learner.envs.curriculum is not None:
        result["curriculum"] = learner.envs.curriculum.state_dict()
    atomic_write(out / "metrics.json", json.dumps(result, indent=2).encode())
    return result


def _rollout_metrics(rollout: Rollout) -> dict[str, float]:
    """What the environment reported about the rollout, averaged: reward terms, accuracy, COAT
    actions, restarts and self-correction, response length."""
    infos = rollout.infos
    metrics = {
        "reward/total": float(rollout.rewards.mean()),
        "rollout/accuracy": float(np.mean([i["correct"] for i in infos])),
    }
    for term in infos[0]["reward_terms"]:
        metrics[f"reward/{term}"] = float(np.mean([i["reward_terms"][term] for i in infos]))
    for action in META_ACTIONS:
        metrics[f"coat/{action}_per_episode"] = float(np.mean([i["actions"][action] for i in infos]))
    metrics["rollout/response_length"] = float(np.mean([i["num_new_tokens"] for i in infos]))
    status = np.array([i["restart"]["reflect_status"] for i in infos])
    correct = np.array([bool(i["correct"]) for i in infos])
    metrics["restart/fraction"] = float(np.mean(status != 0))
    metrics["restart/skipped"] = float(
        np.mean([i["restart"]["skipped"] for i in infos])
    )  # drawn, too long for the window
    if (status == -1).any():
        metrics["coat/self_correction_rate"] = float(correct[status == -1].mean())  # wrong prefix -> right answer
    if (status == 1).any():
        metrics["coat/kept_right_rate"] = float(correct[status == 1].mean())
    return metrics


def _curriculum_metrics(curriculum, rollout: Rollout) -> dict[str, float]:
    """The rollout's share of episodes from each arm (the level distribution over time), each
    arm's recent pass rate, and an adaptive curriculum's frontier."""
    arms = [info["curriculum_arm"] for info in rollout.infos]
    metrics = {f"curriculum/share_{arm}": arms.count(arm) / len(arms) for arm in curriculum.arms}
    metrics.update(
        {f"curriculum/pass_rate_{arm}": rate for arm, rate in curriculum.pass_rates().items() if rate is not None}
    )
    if isinstance(curriculum, AdaptiveCurriculum):
        metrics["curriculum/frontier"] = float(curriculum.frontier)
    return metrics


def _log_eval(writer, results: dict[str, float], step: int) -> None:
    for name, value in results.items():
        writer.add_scalar(f"eval/{name}", value, step)


def _evaluate(learner: _Learner, problems: list, config: TrainConfig) -> dict[str, float]:
    """Greedy held-out metrics of the current policy (``{}`` without problems)."""
    if not problems:
        return {}
    params = SamplingParams(max_new_tokens=config.max_new_tokens, temperature=0.0)
    return evaluate(
        learner.engine, learner.tokenizer, problems, params=params, prompt_template=config.prompt_template
    ).row()
