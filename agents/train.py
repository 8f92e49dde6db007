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
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from gymnasium.vector import AutoresetMode
from tqdm import tqdm

from agents.algorithms import ALGORITHMS
from agents.checkpoint import clean_partial_writes, latest_checkpoint, load_checkpoint, save_checkpoint
from agents.config import TrainConfig
from agents.device import choose_device, rollout_autocast
from agents.engines import ENGINES, SamplingParams, load_engine, make_engine
from agents.engines.base import forbidden_ids
from agents.evaluation.episodes import evaluate
from agents.metrics import curriculum_metrics, rollout_metrics
from agents.models import MODEL_PRESETS, load_critic_start, load_policy, save_policy
from agents.policy import ActorCritic
from agents.rollout import Rollout, collect_rollout
from satori_env import CURRICULA, ArithmeticTasks, RestartBuffer, SatoriMathVectorEnv, load_problems
from satori_env.atomic import atomic_directory, atomic_write
from satori_env.pretrained import locate_pretrained
from satori_env.rewards import make_reward

if TYPE_CHECKING:
    from agents.sft import SFTArgs

__all__ = [
    "check_config",
    "continue_format_tuning",
    "evaluate_policy",
    "held_out_problems",
    "run",
    "stage_one",
    "train_rl",
]


def run(config: TrainConfig) -> dict[str, Any]:
    """Both stages; returns the metrics also written to ``OUT/rl/metrics.json``."""
    if config.threads:
        torch.set_num_threads(config.threads)
    check_config(config)  # bad settings fail before stage one, not after it
    if config.rounds > 1 and torchrun_world_size() > 1:
        raise ValueError(
            "rounds > 1 sample, distil and format-tune between the RL rounds in one process: run them with --ray "
            "(the learner ranks and rollout workers as Ray actors) instead of under torchrun"
        )
    if config.model is None and torchrun_world_size() > 1:
        raise ValueError(
            "under torchrun, give the format-tuned policy with --model: stage one runs in one process "
            "(satori build-model, satori synth and satori sft, whose model is OUT/model)"
        )
    model = config.model if config.model is not None else str(stage_one(config))
    result = _train_rl(config, model)
    if config.compare_continued and "continued" not in result:
        minutes = sum(row["perf/iteration_seconds"] for row in result["history"]) / 60
        continued = continue_format_tuning(config, minutes)
        result["continued"] = {"minutes": minutes, **evaluate_policy(config, str(continued))}
        atomic_write(Path(config.out) / "rl" / "metrics.json", json.dumps(result, indent=2).encode())
    if config.rounds > 1:
        from agents.rounds import run_rounds

        result = run_rounds(config, result)
    return result


def stage_one(config: TrainConfig) -> Path:
    """Build the model, synthesise demonstrations and format-tune, skipping what exists."""
    from agents.data.synth import synthesize, write_demos
    from agents.models import build_model
    from agents.sft import train_sft

    if config.model_preset not in MODEL_PRESETS:
        raise ValueError(
            f"no model given (--model PATH) and no model preset to build ({config.model_preset!r}); valid presets: "
            f"{sorted(MODEL_PRESETS)}"
        )
    out = Path(config.out)
    if not (out / "base" / "config.json").exists():
        build_model(config.model_preset, out / "base", config.seed)
    if not (out / "demos.jsonl").exists():
        levels = config.train_levels if config.synth_levels is None else config.synth_levels
        demos, _ = synthesize(config.synth_n, levels=levels, seed=config.seed)
        write_demos(demos, out / "demos.jsonl")
    sft_model = out / "sft" / "model"
    if not (sft_model / "config.json").exists():
        train_sft(_stage_one_sft(config))
    return sft_model


def _stage_one_sft(config: TrainConfig) -> SFTArgs:
    from agents.sft import SFTArgs

    out = Path(config.out)
    return SFTArgs(
        model=str(_base_model(config)),
        data=str(out / "demos.jsonl"),
        out=str(out / "sft"),
        steps=config.sft_steps,
        validation=config.sft_validation,
        patience=config.sft_patience,
        prompt_template=config.prompt_template,
        eval_per_level=0,
        seed=config.seed,
        device=config.device,
        bf16=config.bf16,
        resume=True,
        progress=config.progress,
    )


def _base_model(config: TrainConfig) -> Path:
    """The model format tuning starts from: stage one's build, or ``round_base``."""
    return Path(config.round_base) if config.round_base is not None else Path(config.out) / "base"


def train_round(config: TrainConfig, k: int, data: Path, previous_rl: Path) -> dict[str, Any]:
    """Round ``k`` >= 2 of :mod:`agents.rounds` once its data set is written: the base model
    format-tuned on ``data`` (``OUT/round-k/sft``, resumed from its checkpoints), then RL from it
    (``OUT/round-k/rl``), starting with the restart buffer and curriculum state ``previous_rl``
    ended with (as configured). Returns the RL result."""
    from agents.rounds import round_config
    from agents.sft import train_sft

    here = round_config(config, k)
    sft = Path(here.out) / "sft"
    if not (sft / "model" / "config.json").exists():
        train_sft(replace(_stage_one_sft(config), data=str(data), out=str(sft)))
    return _train_rl(here, str(sft / "model"), carry=previous_rl)


def continue_format_tuning(config: TrainConfig, minutes: float) -> Path:
    """The imitation baseline of ``compare_continued``: stage one's run (``OUT/sft``) resumed
    from its last checkpoint in ``OUT/sft_continued`` and trained on the same demonstrations for
    ``minutes`` more, its cosine schedule stretched over the steps those minutes allow at stage
    one's pace. Returns the model's path (kept: a rerun reads it)."""
    import shutil

    from agents.sft import train_sft

    out = Path(config.out)
    run, model = out / "sft_continued", out / "sft_continued" / "model"
    if (model / "config.json").exists():
        return model
    stage = json.loads((out / "sft" / "metrics.json").read_text())
    if latest_checkpoint(run) is None:
        last = latest_checkpoint(out / "sft")
        if last is None:
            raise FileNotFoundError(f"compare_continued needs stage one's checkpoint in {out / 'sft'}; none found")
        with atomic_directory(run / "checkpoints" / last.name) as copy:  # a killed copy is no checkpoint
            shutil.copytree(last, copy, dirs_exist_ok=True)
    steps_per_minute = stage["steps"] / max(stage["train_seconds"] / 60, 1e-9)
    extra_steps = max(1, round(minutes * steps_per_minute))
    train_sft(replace(_stage_one_sft(config), out=str(run), steps=stage["steps"] + extra_steps, max_minutes=minutes))
    return model


def held_out_problems(config: TrainConfig) -> list:
    """The greedy evaluation's problems: ``eval_per_level`` of each of ``eval_levels`` from
    the procedural test split, drawn by the run's seed."""
    return [
        p
        for level in config.eval_levels
        for p in load_problems("arith:test", level=level, limit=config.eval_per_level, seed=config.seed)
    ]


def evaluate_policy(config: TrainConfig, model_path: str) -> dict[str, float]:
    """The held-out evaluation of :func:`train_loop` for the policy at ``model_path``."""
    engine, tokenizer = load_engine(model_path, device=config.device, prompt_template=config.prompt_template)
    params = SamplingParams(max_new_tokens=config.max_new_tokens, temperature=0.0)
    problems = held_out_problems(config)
    return evaluate(engine, tokenizer, problems, params=params, prompt_template=config.prompt_template).row()


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
    if config.rounds > 1 and config.model is not None and None in (config.round_base, config.round_demos):
        raise ValueError(
            "rounds > 1 format-tune a base model on distilled and original demonstrations; a run given --model has "
            "neither from stage one: give --round-base MODEL and --round-demos FILE.jsonl, or drop --model"
        )
    if config.compare_continued and config.model is not None:
        raise ValueError(
            "compare_continued continues stage one's format tuning, which a run given --model does not have: "
            "drop --model (stage one runs first) or --compare-continued"
        )
    if config.model is not None:
        locate_pretrained(config.model, "--model")  # a missing local path fails now, not after stage one
    elif config.model_preset not in MODEL_PRESETS:
        raise ValueError(
            f"no model given (--model PATH) and no model preset to build ({config.model_preset!r}); valid presets: "
            f"{sorted(MODEL_PRESETS)}"
        )
    if config.reward_model is not None:
        locate_pretrained(config.reward_model, "--reward-model")
    if config.critic_init == "reward_model" and config.reward_model is None:
        raise ValueError(
            "critic_init 'reward_model' starts the critic from the reward model: give --reward-model PATH, or "
            "--critic-init actor (a copy of the policy) or --critic-init PATH (a sequence-classification checkpoint)"
        )
    if config.critic_init not in ("actor", "reward_model"):
        locate_pretrained(config.critic_init, "--critic-init")
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


class LocalRun:
    """Stage two in one process: the policy, its critic and engine, and the environments (with
    the restart buffer and the curriculum) all here. The other layouts are in
    :mod:`agents.distributed`; :func:`train_loop` drives any of them."""

    is_main = True

    def __init__(self, config: TrainConfig, model_path: str, tasks: Any = None, reward: Any = None) -> None:
        self.config = config
        self.group_size = ALGORITHMS[config.algo].group_size(config.group_size)
        self.device = device = choose_device(config.device)
        self.model, self.tokenizer = load_policy(model_path, device=config.device)
        if config.gradient_checkpointing:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.envs = make_envs(config, self.tokenizer, config.episodes_per_iteration, tasks, reward)
        critic = config.critic if ALGORITHMS[config.algo].uses_critic else "none"
        forbidden = forbidden_ids(self.model, self.envs)  # what the engine never writes
        start = load_critic_start(config) if critic == "separate" else None
        self.policy = ActorCritic(self.model, critic, forbidden, critic_from=start).to(device)
        self.algorithm = ALGORITHMS[config.algo](self.policy, config)
        self.engine = make_engine(config.engine, self.model, self.envs, model_path=model_path)

    @property
    def curriculum(self):
        return self.envs.curriculum

    @property
    def start_envs(self) -> SatoriMathVectorEnv:
        """The vector env whose restart buffer and curriculum draw every episode's start."""
        return self.envs

    def iterate(self, iteration: int) -> dict[str, float]:
        """One rollout and one update; returns everything logged for it."""
        config, started = self.config, time.perf_counter()
        with rollout_autocast(config, self.device):
            rollout = collect_rollout(self.envs, self.engine, sampling(config, iteration), self.group_size)
        rollout_seconds = time.perf_counter() - started
        metrics = self.algorithm.update(rollout)  # score, prepare, optimise
        self.engine.sync_weights()
        metrics.update(episode_metrics(self.envs, rollout))
        metrics["perf/rollout_seconds"] = rollout_seconds
        metrics["perf/update_seconds"] = time.perf_counter() - started - rollout_seconds - metrics["perf/score_seconds"]
        metrics["perf/tokens_per_s"] = rollout.num_generated / max(rollout_seconds, 1e-9)
        metrics["perf/iteration_seconds"] = time.perf_counter() - started
        return metrics

    def evaluate(self, problems: list) -> dict[str, float]:
        """Greedy held-out metrics of the current policy (``{}`` without problems)."""
        if not problems:
            return {}
        params = SamplingParams(max_new_tokens=self.config.max_new_tokens, temperature=0.0)
        return evaluate(
            self.engine, self.tokenizer, problems, params=params, prompt_template=self.config.prompt_template
        ).row()

    def save_checkpoint(self, out: Path, iteration: int, progress: dict[str, Any]) -> None:
        """``OUT/checkpoints/step-N``: weights, optimiser, scheduler, every RNG state, the critic,
        the algorithm's state, the environments' generators, the curriculum and the restart
        buffer, plus ``progress`` (the evaluation before RL and the metrics so far)."""
        envs = self.envs
        state = {
            "iteration": iteration,
            "critic": {k: v for k, v in self.policy.state_dict().items() if not k.startswith("actor.")},
            "algorithm": self.algorithm.state_dict(),
            "env_rng": envs.rng_states(),
            "curriculum": envs.curriculum.state_dict() if envs.curriculum is not None else None,
            **progress,
        }
        optimizers, schedulers = self.algorithm.optimizers(), self.algorithm.schedulers()
        save_checkpoint(
            out, iteration, self.model, self.tokenizer, optimizers, schedulers, state,
            extra=lambda directory: envs.restart_buffer.save(directory / "restart_buffer.json.gz"),
        )  # fmt: skip

    def resume(self, checkpoint: Path) -> dict[str, Any]:
        """Restore the run from ``checkpoint``; returns the state it saved."""
        state = load_checkpoint(checkpoint, self.model, self.algorithm.optimizers(), self.algorithm.schedulers())
        self.policy.load_state_dict(state["critic"], strict=False)
        self.algorithm.load_state_dict(state["algorithm"])
        restore_envs(self.envs, checkpoint, state)
        self.engine.sync_weights()
        return state

    def save_final(self, out: Path) -> None:
        """The trained policy (``OUT/model``) and the restart buffer."""
        save_policy(self.model, self.tokenizer, out / "model", self.config.prompt_template)
        self.envs.restart_buffer.save(out / "restart_buffer.json.gz")

    def close(self) -> None:
        """Nothing to stop in one process."""


def make_envs(config: TrainConfig, tokenizer: Any, num_envs: int, tasks: Any = None, reward: Any = None):
    """The vector env of a run (restart buffer, curriculum, reward), seeded: what draws every
    episode's start."""
    buffer = RestartBuffer(
        tokenizer,
        config.restart_capacity,
        config.restart_strategy,
        config.max_backtrack,
        config.seed,
        max_prefix_tokens=config.max_new_tokens + 1,
    )
    envs = SatoriMathVectorEnv(
        num_envs=num_envs,
        tasks=_tasks(config) if tasks is None else tasks,
        tokenizer=tokenizer,
        max_new_tokens=config.max_new_tokens,
        max_prompt_tokens=config.max_prompt_tokens,
        prompt_template=config.prompt_template,
        reward=run_reward(config) if reward is None else reward,
        restart_buffer=buffer,
        restart_prob=config.restart_prob,
        curriculum=config.curriculum if tasks is None else None,  # your tasks decide (a Curriculum is one too)
        autoreset_mode=AutoresetMode.DISABLED,  # collect_rollout resets every copy itself
    )
    envs.reset(seed=config.seed)
    return envs


def run_reward(config: TrainConfig):
    """The reward of a run: the ``reward`` preset with ``bonus_scale``, plus the preference bonus
    of ``reward_model`` (on the run's device) when one is given."""
    scorer = None
    if config.reward_model is not None:
        from agents.reward_model import OutcomeRewardModel

        scorer = OutcomeRewardModel.from_pretrained(
            config.reward_model, device=config.device, normalize=config.normalize_preference
        )
    return make_reward(config.reward, scorer=scorer, bonus_scale=config.bonus_scale)


def restore_envs(envs: SatoriMathVectorEnv, checkpoint: Path, state: dict[str, Any]) -> None:
    """The restart buffer, curriculum and generators of ``envs`` as a checkpoint saved them."""
    envs.restart_buffer = RestartBuffer.load(checkpoint / "restart_buffer.json.gz")
    if envs.curriculum is not None and state.get("curriculum") is not None:
        envs.curriculum.load_state_dict(state["curriculum"])
    envs.set_rng_states(state["env_rng"])


def sampling(config: TrainConfig, iteration: int) -> SamplingParams:
    """The rollout sampling of ``iteration`` (seeded by the run's seed and the iteration)."""
    seed = config.seed * 1_000_003 + iteration
    return SamplingParams(config.max_new_tokens, config.temperature, config.top_p, seed, config.seed_per_episode)


def episode_metrics(envs: SatoriMathVectorEnv, rollout: Rollout) -> dict[str, float]:
    """Feed the restart buffer with the rollout's trajectories; what is logged about its episodes."""
    envs.restart_buffer.add_trajectories(rollout.trajectories)
    metrics = rollout_metrics(rollout)
    if envs.curriculum is not None:
        metrics.update(curriculum_metrics(envs.curriculum, rollout))
    metrics["restart/buffer_states"] = float(len(envs.restart_buffer))
    return metrics


def _train_rl(
    config: TrainConfig, model_path: str, tasks: Any = None, reward: Any = None, carry: Path | None = None
) -> dict[str, Any]:
    finished = finished_run(config)
    if finished is not None:
        return finished
    torch.manual_seed(config.seed)
    return train_loop(config, _make_run(config, model_path, tasks, reward), carry)


def finished_run(config: TrainConfig) -> dict[str, Any] | None:
    """With ``resume``, the result of an RL run in ``OUT/rl`` that already ran all
    ``config.iterations`` (None otherwise: it runs, or continues, or is extended)."""
    path = Path(config.out) / "rl" / "metrics.json"
    if not (config.resume and path.exists() and (path.parent / "model" / "config.json").exists()):
        return None
    result = json.loads(path.read_text())
    return result if result["iterations"] == config.iterations else None


def carry_over(envs: SatoriMathVectorEnv, previous: Path, config: TrainConfig) -> None:
    """Start ``envs`` with the restart buffer (``carry_restart_buffer``) and the curriculum state
    (``carry_curriculum``) of the RL run in ``previous`` (a finished one's ``OUT/rl``)."""
    if config.carry_restart_buffer:
        envs.restart_buffer = RestartBuffer.load(previous / "restart_buffer.json.gz")
    if config.carry_curriculum and envs.curriculum is not None:
        state = json.loads((previous / "metrics.json").read_text()).get("curriculum")
        if state is not None:
            envs.curriculum.load_state_dict(state)


def _make_run(config: TrainConfig, model_path: str, tasks: Any, reward: Any):
    """The run for the requested layout: Ray actors, ``torchrun`` ranks, or one process; a layout
    whose memory plan cannot fit is refused first (see :mod:`agents.distributed.memory`)."""
    plan_layout(config, model_path)
    if config.ray:
        from agents.distributed.ray_train import RayRun

        return RayRun(config, model_path, tasks, reward)
    if torchrun_world_size() > 1:
        from agents.distributed.torchrun import TorchrunRun

        return TorchrunRun(config, model_path, tasks, reward)
    if config.learner_ranks > 1:
        raise ValueError(
            f"--learner-ranks {config.learner_ranks} needs processes to run in: add --ray (Ray actors), or start "
            f"the ranks with torchrun --nproc-per-node {config.learner_ranks} -m agents.cli train ..."
        )
    return LocalRun(config, model_path, tasks, reward)


def plan_layout(config: TrainConfig, model_path: str):
    """The memory plan of the layout (``ValueError`` when it cannot fit); None for a model whose
    config is not a Llama/Qwen2-style decoder (no plan, with a warning)."""
    import warnings

    from transformers import AutoConfig

    from agents.distributed.memory import check_memory
    from satori_env.pretrained import load_pretrained

    model_config = load_pretrained(AutoConfig.from_pretrained, model_path, "model")
    if not all(hasattr(model_config, name) for name in ("hidden_size", "intermediate_size", "num_hidden_layers")):
        kind = model_config.model_type
        warnings.warn(f"no memory plan for a {kind} model: the run is not checked before it starts", stacklevel=2)
        return None
    return check_memory(model_config, config)


def torchrun_world_size() -> int:
    """The number of processes ``torchrun`` started (1 outside torchrun)."""
    import os

    return int(os.environ.get("WORLD_SIZE", "1"))


def train_loop(config: TrainConfig, run: Any, carry: Path | None = None) -> dict[str, Any]:
    """Stage two's loop over any run (one process, ``torchrun`` ranks or Ray actors): resume (or
    start with the restart buffer and curriculum of the finished run in ``carry``), evaluate
    before, iterate (log, checkpoint), save the policy, evaluate after, write ``metrics.json``.
    Only the main process writes."""
    out = Path(config.out) / "rl"
    if run.is_main:
        clean_partial_writes(out)
    checkpoint = latest_checkpoint(out) if config.resume else None
    state = run.resume(checkpoint) if checkpoint is not None else {}
    if checkpoint is None and carry is not None and run.start_envs is not None:
        carry_over(run.start_envs, carry, config)
    iteration = state.get("iteration", 0)
    eval_problems = held_out_problems(config)
    before = state.get("before") or run.evaluate(eval_problems)
    writer = _writer(out / "tb") if run.is_main else None
    _log_eval(writer, before, 0)
    bar = tqdm(
        total=config.iterations,
        initial=iteration,
        desc=f"RL ({config.algo})",
        disable=not (config.progress and run.is_main),
    )
    history: list[dict[str, float]] = list(state.get("history", []))  # every iteration's, across resumes
    while iteration < config.iterations:
        metrics = run.iterate(iteration)
        iteration += 1
        if writer is not None:
            for name, value in metrics.items():
                writer.add_scalar(name, value, iteration)
        history.append(metrics)
        bar.update(1)
        bar.set_postfix(acc=f"{metrics['rollout/accuracy']:.2f}", reward=f"{metrics['reward/total']:.2f}")
        if iteration % config.checkpoint_every == 0 or iteration == config.iterations:  # the last one too:
            run.save_checkpoint(out, iteration, {"before": before, "history": history})  # --resume may extend the run
    bar.close()
    run.save_final(out)
    after = run.evaluate(eval_problems)
    _log_eval(writer, after, iteration)
    result = {"before": before, "after": after, "iterations": iteration, "history": history, "config": asdict(config)}
    if run.curriculum is not None:
        result["curriculum"] = run.curriculum.state_dict()
    if run.is_main:
        writer.close()
        atomic_write(out / "metrics.json", json.dumps(result, indent=2).encode())
    run.close()
    return result


def _writer(directory: Path):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(directory))


def _log_eval(writer, results: dict[str, float], step: int) -> None:
    if writer is None:
        return
    for name, value in results.items():
        writer.add_scalar(f"eval/{name}", value, step)
