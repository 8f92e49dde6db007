"""satori train: the RL loop end to end, and a run killed with SIGKILL that resumes exactly."""

import json
import os
import signal
import subprocess
import sys
import time
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


def _train_command(model, out, iterations, resume=False):
    args = [
        "train", "--preset", "tiny", "--model", str(model), "--out", str(out), "--iterations", str(iterations),
        "--episodes-per-iteration", "8", "--minibatch-size", "8", "--micro-batch-size", "8", "--max-new-tokens", "6",
        "--restart-prob", "0.5", "--entropy-coef", "0.1", "--checkpoint-every", "2", "--eval-per-level", "0", "--threads", "1", "--no-progress",
        "--curriculum", "adaptive",
    ]
    if resume:
        args.append("--resume")
    return [sys.executable, "-c", "from agents.cli import main; raise SystemExit(main())", *args]


def _weights(run):
    return load_file(str(Path(run) / "rl" / "model" / "model.safetensors"))


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_to_the_same_state(tiny, tmp_path):
    iterations = 24
    subprocess.run(_train_command(tiny, tmp_path / "straight", iterations), check=True, timeout=600)

    killed = subprocess.Popen(_train_command(tiny, tmp_path / "killed", iterations))
    checkpoints = tmp_path / "killed" / "rl" / "checkpoints"
    deadline = time.monotonic() + 300
    while not (checkpoints / "step-000006").exists() and time.monotonic() < deadline and killed.poll() is None:
        time.sleep(0.05)
    assert killed.poll() is None, "the run ended before it could be killed"
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    assert not (tmp_path / "killed" / "rl" / "model").exists()

    subprocess.run(_train_command(tiny, tmp_path / "killed", iterations, resume=True), check=True, timeout=600)
    straight, resumed = _weights(tmp_path / "straight"), _weights(tmp_path / "killed")
    assert straight.keys() == resumed.keys() and all(torch.equal(straight[k], resumed[k]) for k in straight)
    start = load_file(str(tiny / "model.safetensors"))
    assert any(not torch.equal(start[k], straight[k]) for k in start)  # training moved the weights
    buffers = [RestartBuffer.load(tmp_path / run / "rl" / "restart_buffer.json.gz") for run in ("straight", "killed")]
    assert buffers[0].states == buffers[1].states and len(buffers[0]) > 0
    curricula = [json.loads((tmp_path / run / "rl" / "metrics.json").read_text())["curriculum"] for run in ("straight", "killed")]
    assert curricula[0] == curricula[1] and sum(curricula[0]["served"].values()) > iterations  # the whole run's draws


def test_presets():
    assert {"tiny", "0.5b", "1.5b", "7b"} <= set(PRESETS)
    big = preset("7b")
    assert (big.temperature, big.bonus_scale, big.actor_lr, big.critic_lr) == (0.6, 0.5, 2e-7, 5e-6)
    assert (big.episodes_per_iteration, big.minibatch_size, big.kl_coef) == (1024, 128, 0.0)
    with pytest.raises(ValueError, match=r"unknown preset 'huge'; valid presets: \['0.5b', '1.5b', '7b', 'tiny'\]"):
        preset("huge")
