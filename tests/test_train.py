"""satori train: the RL loop end to end, and a run killed with SIGKILL that resumes exactly."""

import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from agents.config import PRESETS, preset
from agents.models import build_model
from satori_env import RestartBuffer


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("policy") / "base"
    build_model("tiny", path, seed=0)
    return path


# Run the CLI with torch.save patched to SIGKILL the process while it writes checkpoint N
# (after the model files, before the trainer state): a real kill in the middle of a save.
_KILL_MID_SAVE = """
import os, signal, sys, torch
from agents.cli import main
real_save, kill_at = torch.save, int(os.environ["KILL_AT_STEP"])
def save(obj, *args, **kwargs):
    if isinstance(obj, dict) and obj.get("step") == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, *args, **kwargs)
torch.save = save
raise SystemExit(main())
"""


def _train_command(model, out, iterations, resume=False, kill_at=None):
    args = [
        "train",
        "--preset",
        "tiny",
        "--model",
        str(model),
        "--out",
        str(out),
        "--iterations",
        str(iterations),
        "--episodes-per-iteration",
        "8",
        "--minibatch-size",
        "8",
        "--micro-batch-size",
        "8",
        "--max-new-tokens",
        "6",
        "--restart-prob",
        "0.5",
        "--entropy-coef",
        "0.1",
        "--checkpoint-every",
        "2",
        "--eval-per-level",
        "0",
        "--threads",
        "1",
        "--no-progress",
        "--curriculum",
        "adaptive",
    ]
    if resume:
        args.append("--resume")
    script = "from agents.cli import main; raise SystemExit(main())" if kill_at is None else _KILL_MID_SAVE
    return [sys.executable, "-c", script, *args]


def _weights(run):
    return load_file(str(Path(run) / "rl" / "model" / "model.safetensors"))


@pytest.mark.slow
def test_a_run_killed_with_sigkill_mid_save_resumes_to_the_same_state(tiny, tmp_path):
    iterations = 24
    subprocess.run(_train_command(tiny, tmp_path / "straight", iterations), check=True, timeout=600)

    killed = subprocess.run(
        _train_command(tiny, tmp_path / "killed", iterations, kill_at=6),
        env={**os.environ, "KILL_AT_STEP": "6"},
        timeout=600,
    )
    assert killed.returncode == -signal.SIGKILL
    checkpoints = tmp_path / "killed" / "rl" / "checkpoints"
    partial = [p.name for p in checkpoints.iterdir() if p.name.startswith(".step-000006.")]
    assert sorted(p.name for p in checkpoints.iterdir() if not p.name.startswith(".")) == ["step-000002", "step-000004"]
    assert len(partial) == 1 and not (tmp_path / "killed" / "rl" / "model").exists()

    subprocess.run(_train_command(tiny, tmp_path / "killed", iterations, resume=True), check=True, timeout=600)
    assert not any(p.name.startswith(".") for p in checkpoints.iterdir())  # the partial save is gone
    straight, resumed = _weights(tmp_path / "straight"), _weights(tmp_path / "killed")
    assert straight.keys() == resumed.keys() and all(torch.equal(straight[k], resumed[k]) for k in straight)
    start = load_file(str(tiny / "model.safetensors"))
    assert any(not torch.equal(start[k], straight[k]) for k in start)  # training moved the weights
    buffers = [RestartBuffer.load(tmp_path / run / "rl" / "restart_buffer.json.gz") for run in ("straight", "killed")]
    assert buffers[0].states == buffers[1].states and len(buffers[0]) > 0
    metrics = [json.loads((tmp_path / run / "rl" / "metrics.json").read_text()) for run in ("straight", "killed")]
    assert (
        metrics[0]["curriculum"] == metrics[1]["curriculum"]
        and sum(metrics[0]["curriculum"]["served"].values()) > iterations
    )
    # every iteration's metrics, the ones before the kill included (timings aside, they are equal)
    histories = [[{k: v for k, v in row.items() if not k.startswith("perf/")} for row in m["history"]] for m in metrics]
    assert len(histories[1]) == iterations and histories[0] == histories[1]


@pytest.mark.slow
def test_a_finished_run_extended_with_resume_ends_where_a_longer_run_does(tiny, tmp_path):
    subprocess.run(_train_command(tiny, tmp_path / "long", 6), check=True, timeout=600)
    subprocess.run(_train_command(tiny, tmp_path / "short", 3), check=True, timeout=600)
    assert (tmp_path / "short" / "rl" / "checkpoints" / "step-000003").is_dir()  # the last iteration's checkpoint
    subprocess.run(_train_command(tiny, tmp_path / "short", 6, resume=True), check=True, timeout=600)
    long, extended = _weights(tmp_path / "long"), _weights(tmp_path / "short")
    assert all(torch.equal(long[k], extended[k]) for k in long)
    histories = [
        json.loads((tmp_path / run / "rl" / "metrics.json").read_text())["history"] for run in ("long", "short")
    ]
    assert [len(h) for h in histories] == [6, 6]


def test_presets():
    assert {"tiny", "0.5b", "1.5b", "7b"} <= set(PRESETS)
    with pytest.raises(ValueError, match=r"unknown preset 'huge'; valid presets: \['0.5b', '1.5b', '7b', 'tiny'\]"):
        preset("huge")
    with pytest.raises(ValueError, match="--sft-patience needs held-out demonstrations: set --sft-validation N"):
        replace(preset("tiny"), sft_patience=3, sft_validation=0)


def test_the_7b_preset_is_the_release_recipe():
    """Every value of Satori's release (examples/satori/train.sh, and train_ppo_ray.py's defaults it
    does not override) that the 7b preset has a field for."""
    big = preset("7b")
    release = {
        "temperature": 0.6, "top_p": 1.0, "bonus_scale": 0.5, "actor_lr": 2e-7, "critic_lr": 5e-6, "kl_coef": 0.0,
        "episodes_per_iteration": 1024, "minibatch_size": 128, "micro_batch_size": 1, "max_new_tokens": 3072,
        "ppo_epochs": 1, "clip_eps": 0.2, "value_clip": 0.2, "gamma": 1.0, "lam": 0.95, "grad_clip": 1.0,
        "lr_schedule": "cosine_with_min_lr", "lr_warmup_ratio": 0.03, "min_lr_ratio": 0.1, "normalize_reward": False,
        "whiten_advantages": True, "critic": "separate", "algo": "ppo", "group_size": 0, "checkpoint_every": 20,
        "gradient_checkpointing": True, "bf16": True, "engine": "vllm", "prompt_template": "satori",
        "critic_init": "reward_model", "normalize_preference": True, "max_prompt_tokens": 1024,
    }  # fmt: skip
    assert {name: getattr(big, name) for name in release} == release
    tiny = preset("tiny")  # chosen by measurement on the 2-core CPU (docs/guide/rl.md), not the release's
    assert (tiny.lam, tiny.lr_schedule, tiny.normalize_reward, tiny.actor_lr) == (1.0, "constant", True, 1e-5)


def test_the_prompt_window_is_capped_where_the_config_says():
    from agents.train import make_envs
    from satori_env.tokenizer import default_tokenizer

    tokenizer = default_tokenizer()
    sized = make_envs(preset("tiny"), tokenizer, 2).envs[0]
    assert sized.max_prompt_tokens > preset("tiny").max_new_tokens  # room for any restart prefix
    capped = make_envs(replace(preset("tiny"), max_prompt_tokens=80), tokenizer, 2).envs[0]
    assert capped.max_prompt_tokens == 80 and capped.width == 80 + capped.max_new_tokens
    with pytest.raises(ValueError, match="--max-prompt-tokens must be >= 1"):
        replace(preset("tiny"), max_prompt_tokens=0)


def test_the_release_schedule_warms_up_then_decays_to_its_floor_over_the_run(tmp_path):
    from agents.algorithms import ALGORITHMS
    from agents.config import TrainConfig
    from agents.models import load_policy
    from agents.policy import ActorCritic
    from agents.schedules import rl_optimizer_steps
    from tests.helpers import toy_policy

    model, _ = load_policy(str(toy_policy(tmp_path / "toy")), device="cpu")
    config = TrainConfig(
        iterations=5, episodes_per_iteration=8, minibatch_size=4, ppo_epochs=2, lr_schedule="cosine_with_min_lr",
        lr_warmup_ratio=0.1, min_lr_ratio=0.1, actor_lr=1e-3, critic_lr=1e-2, critic="separate", device="cpu",
    )  # fmt: skip
    algorithm = ALGORITHMS["ppo"](ActorCritic(model, "separate", []), config)
    assert rl_optimizer_steps(config) == 20  # 5 iterations x 2 epochs x 2 minibatches
    rates = []
    for _ in range(20):
        rates.append([group["lr"] for group in algorithm.optimizer.param_groups])
        algorithm.optimizer.step()
        algorithm.scheduler.step()
    assert rates[0] == pytest.approx([5e-4, 5e-3]) and rates[1] == pytest.approx([1e-3, 1e-2])  # 2 warm-up steps
    assert all(a[0] >= b[0] for a, b in zip(rates[1:], rates[2:]))  # then it only decays
    final = [group["lr"] for group in algorithm.optimizer.param_groups]
    assert final == pytest.approx([1e-4, 1e-3])  # to 0.1 x each peak at the run's end
    with pytest.raises(ValueError, match="--lr-schedule must be one of \\['constant', 'cosine_with_min_lr'\\]"):
        TrainConfig(lr_schedule="linear")


def test_compare_continued_trains_imitation_for_the_minutes_rl_took(tmp_path, capsys):
    from agents.cli import main

    out = tmp_path / "run"
    args = ["train", "--preset", "tiny", "--out", str(out), "--synth-n", "200", "--sft-steps", "8",
            "--iterations", "2", "--episodes-per-iteration", "8", "--minibatch-size", "8", "--micro-batch-size", "8",
            "--max-new-tokens", "16", "--eval-per-level", "4", "--eval-levels", "1", "--threads", "2",
            "--no-progress", "--compare-continued", "--sft-validation", "20", "--sft-patience", "2",
            "--synth-levels", "1", "--train-levels", "1", "2"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "SFT (format tuning)" in printed and "SFT, continued" in printed and "SFT + RL (ppo, RAE)" in printed
    result = json.loads((out / "rl" / "metrics.json").read_text())
    rl_minutes = sum(row["perf/iteration_seconds"] for row in result["history"]) / 60
    continued = json.loads((out / "sft_continued" / "metrics.json").read_text())
    assert result["continued"]["minutes"] == pytest.approx(rl_minutes)
    assert (out / "sft_continued" / "checkpoints" / "step-000008").is_dir()  # stage one's end, where it resumed
    assert continued["steps"] > 8
    assert continued["train_seconds"] / 60 <= rl_minutes + 0.05  # a step's time at most past the limit
    assert result["continued"]["n"] == 4 and "acc_L1" in result["continued"]
    assert json.loads((out / "sft" / "metrics.json").read_text())["examples"] == 180  # 20 of 200 held out
    demos = [json.loads(line) for line in (out / "demos.jsonl").read_text().splitlines()]
    assert {demo["problem"]["level"] for demo in demos} == {1}  # --synth-levels, while RL trains on 1 and 2
    assert result["config"]["train_levels"] == [1, 2]
    with pytest.raises(SystemExit, match="compare_continued continues stage one's format tuning"):
        main(args[:1] + ["--model", str(out / "sft" / "model")] + args[1:])  # no stage one to continue


def test_rollouts_sample_in_the_learners_bf16_on_a_cpu_unless_told_otherwise():
    from agents.config import TrainConfig
    from agents.device import rollout_autocast

    cpu, cuda = torch.device("cpu"), torch.device("cuda")

    def in_bf16(device, **overrides) -> bool:
        context = rollout_autocast(TrainConfig(**overrides), device)
        return isinstance(context, torch.autocast) and context.fast_dtype == torch.bfloat16

    assert in_bf16(cpu) and not in_bf16(cpu, bf16=False)  # auto: the learner's precision
    assert not in_bf16(cuda)  # auto on a GPU: fp32 (its compiled decoding step is measured so)
    assert not in_bf16(cpu, rollout_precision="fp32") and in_bf16(cpu, rollout_precision="bf16", bf16=False)
    assert not in_bf16(cpu, engine="vllm")  # vLLM keeps its own dtype
    with pytest.raises(ValueError, match=r"--rollout-precision must be one of \[.auto., .fp32., .bf16.\]"):
        TrainConfig(rollout_precision="fp16")
