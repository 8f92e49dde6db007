"""Iterative self-improvement (agents.rounds): the distillation filter, the mixed data set, round
bookkeeping and carry-over, and a run killed in round 2 that resumes where it stopped."""

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from agents.config import preset
from agents.data.synth import Demonstration, read_demos, synthesize, write_demos
from agents.models import build_model
from agents.rounds import distill, mix_demonstrations
from agents.sft import SFTArgs, train_sft
from satori_env import Problem

ROOT = Path(__file__).resolve().parent.parent
PROBLEM = Problem("p1", "What is 2+3?", "5", "test")


def _record(completion: str, correct: bool, problem: Problem = PROBLEM) -> dict:
    return {"problem": problem.to_dict(), "completion": completion, "correct": correct, "gold": problem.answer}


CLEAN = "<|continue|>2+3=5<|continue|>\\boxed{5}"
REPAIRED = "<|continue|>2+3=6<|continue|>\\boxed{6}<|reflect|>2+3 is not 6.<|explore|>2+3=5<|continue|>\\boxed{5}"
CONFIRMED = "<|continue|>2+3=5<|continue|>\\boxed{5}<|reflect|>2+3=5 indeed. \\boxed{5}"
BROKEN = "<|continue|>2+3=5<|continue|>\\boxed{5}<|reflect|>no.<|explore|>2+3=6<|continue|>\\boxed{6}"


def test_distill_keeps_verified_trajectories_once():
    records = [
        _record(CLEAN, True),
        _record(CLEAN + "  ", True),  # the same trajectory again (trailing space)
        _record(BROKEN, False),
        _record(REPAIRED, True),
        _record(CONFIRMED, True),
        _record(CLEAN, True, Problem("p2", "What is 1+4?", "5", "test")),  # same text, another problem: kept
    ]
    demos, report = distill(records)
    assert [d.text for d in demos] == [CLEAN, REPAIRED, CONFIRMED, CLEAN]
    assert [d.kind for d in demos] == ["distilled", "self_correction", "distilled", "distilled"]
    assert all(trained for d in demos for _, trained in d.segments)
    assert (report.samples, report.correct, report.duplicates, report.kept, report.self_corrections) == (6, 5, 1, 4, 1)
    assert report.self_correction_share == pytest.approx(0.25)


def test_distill_can_keep_only_wrong_to_right_repairs():
    records = [_record(CLEAN, True), _record(REPAIRED, True), _record(CONFIRMED, True), _record(BROKEN, False)]
    demos, report = distill(records, only_self_corrections=True)
    assert [d.text for d in demos] == [REPAIRED] and report.kept == 1 and report.self_correction_share == 1.0
    assert distill([_record(CLEAN, True)], only_self_corrections=True)[0] == []


def _demos(prefix: str, n: int) -> list[Demonstration]:
    return [
        Demonstration(Problem(f"{prefix}{i}", f"q{prefix}{i}", "1", "test"), prefix, (("x", True),)) for i in range(n)
    ]


def test_mixing_draws_the_share_of_original_demonstrations():
    distilled, originals = _demos("d", 6), _demos("o", 20)
    half = mix_demonstrations(distilled, originals, 0.5, seed=0)
    assert Counter(d.kind for d in half) == {"d": 6, "o": 6} and set(distilled) <= set(half)
    assert set(half) - set(distilled) <= set(originals)
    assert Counter(d.kind for d in mix_demonstrations(distilled, originals, 0.75, seed=0)) == {"d": 6, "o": 18}
    assert Counter(d.kind for d in mix_demonstrations(distilled, originals, 0.9, seed=0)) == {"d": 6, "o": 20}
    assert mix_demonstrations(distilled, originals, 0.0, seed=0) != distilled  # shuffled
    assert sorted(d.problem.id for d in mix_demonstrations(distilled, originals, 0.0, seed=0)) == [
        f"d{i}" for i in range(6)
    ]
    assert (
        half
        == mix_demonstrations(distilled, originals, 0.5, seed=0)
        != mix_demonstrations(distilled, originals, 0.5, seed=1)
    )
    with pytest.raises(ValueError, match=r"original_share must be in \[0, 1\), got 1"):
        mix_demonstrations(distilled, originals, 1, seed=0)


def test_rounds_need_a_base_and_demonstrations_when_stage_one_is_skipped(tmp_path):
    from agents.train import check_config

    with pytest.raises(ValueError, match="give --round-base MODEL and --round-demos FILE.jsonl, or drop --model"):
        check_config(replace(preset("tiny"), model=str(tmp_path), rounds=2))
    from agents.train import run

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WORLD_SIZE", "2")
        with pytest.raises(ValueError, match="run them with --ray"):
            run(replace(preset("tiny"), rounds=2, out=str(tmp_path / "never")))
    assert not (tmp_path / "never").exists()
    with pytest.raises(ValueError, match="distill_original_share must be below 1"):
        replace(preset("tiny"), distill_original_share=1.0)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("rounds")
    build_model("tiny", root / "base", seed=0)
    write_demos(synthesize(40, levels=(1,), seed=0)[0], root / "demos.jsonl")
    # round 1 starts from a policy that writes finished COAT answers (restart states need them)
    train_sft(SFTArgs(model=str(root / "base"), data=str(root / "demos.jsonl"), out=str(root / "sft"), steps=40,
                      eval_per_level=0, threads=1, progress=False))  # fmt: skip
    return root


def _config(setup: Path, out: Path, **overrides):
    return replace(
        preset("tiny"),
        out=str(out), model=str(setup / "sft" / "model"), round_base=str(setup / "base"),
        round_demos=str(setup / "demos.jsonl"), rounds=2, distill_problems=12, distill_samples=2, sft_steps=3,
        sft_validation=0, train_levels=(1,), eval_levels=(1,), eval_per_level=4, iterations=4, checkpoint_every=2,
        episodes_per_iteration=8, minibatch_size=8, micro_batch_size=8, max_new_tokens=128, threads=1,
        progress=False, **overrides,
    )  # fmt: skip


def test_round_two_distils_what_the_filter_kept_and_carries_the_run_over(setup, tmp_path, monkeypatch):
    from agents.rounds import round_dir
    from agents.train import run
    from tests.helpers import sample_with_oracle

    config = _config(setup, tmp_path / "run")
    sample_with_oracle(monkeypatch.setattr, config)
    result = run(config)

    two = round_dir(config, 2)
    samples = [
        json.loads(line) for part in sorted((two / "samples").iterdir()) for line in part.read_text().splitlines()
    ]
    assert len(samples) == 24 and 0 < sum(s["correct"] for s in samples) < 24  # the oracle writes wrong ones too
    kept, report = distill(samples)
    distilled, data = read_demos(two / "distilled.jsonl"), read_demos(two / "sft_data.jsonl")
    assert distilled == kept and all(
        sample["correct"] for sample in samples if sample["completion"] in {d.text for d in kept}
    )
    originals = set(read_demos(setup / "demos.jsonl"))
    assert Counter(data) == Counter(distilled) + Counter(d for d in data if d in originals)  # nothing else
    assert len(data) - len(distilled) == len(distilled)  # the default share: half original

    rows = json.loads((Path(config.out) / "rounds.json").read_text())
    assert rows == result["rounds"] and [row["round"] for row in rows] == [0, 1, 2]
    assert rows[2]["distilled"] == report.kept and rows[2]["self_correction_share"] == report.self_correction_share > 0
    assert rows[1]["eval"] == json.loads((tmp_path / "run" / "rl" / "metrics.json").read_text())["after"]
    assert rows[2]["eval"] == json.loads((two / "rl" / "metrics.json").read_text())["after"]
    assert set(rows[2]["eval"]) >= {"accuracy", "acc_L1"} and rows[2]["distilled_eval"] == result["before"]
    assert (two / "rl" / "tb").is_dir() and (two / "sft" / "model" / "config.json").exists()

    first = json.loads((tmp_path / "run" / "rl" / "metrics.json").read_text())
    second = json.loads((two / "rl" / "metrics.json").read_text())
    buffered = first["history"][-1]["restart/buffer_states"]
    assert second["history"][0]["restart/buffer_states"] >= buffered > 0  # round 2 starts with round 1's buffer
    served = [sum(m["curriculum"]["served"].values()) for m in (first, second)]
    assert served[1] > served[0]  # and its curriculum, which counts round 1's episodes too

    fresh = _config(setup, tmp_path / "fresh", carry_restart_buffer=False, carry_curriculum=False)
    sample_with_oracle(monkeypatch.setattr, fresh)
    run(fresh)
    alone = json.loads((round_dir(fresh, 2) / "rl" / "metrics.json").read_text())
    assert sum(alone["curriculum"]["served"].values()) <= served[0] < served[1]
    assert alone["history"][0]["restart/buffer_states"] < second["history"][0]["restart/buffer_states"]


# Run satori train with round sampling scripted (OracleEngine) and torch.save patched to SIGKILL
# the process while it writes a checkpoint whose path holds KILL_IN (after the model files).
_KILLABLE = """
import os, signal, sys, torch
from agents.cli import _train_config, run_train
from tests.helpers import sample_with_oracle
real_save, kill_in = torch.save, os.environ.get("KILL_IN")
def save(obj, path, *args, **kwargs):
    if kill_in and kill_in in str(path):
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, path, *args, **kwargs)
torch.save = save
config = _train_config(sys.argv[1:])
sample_with_oracle(setattr, config)
raise SystemExit(run_train(config))
"""


def _command(setup: Path, out: Path, resume: bool = False) -> list[str]:
    config = _config(setup, out)
    args = ["--preset", "tiny", "--no-progress"] + (["--resume"] if resume else [])
    for name in (
        "out", "model", "round_base", "round_demos", "rounds", "distill_problems", "distill_samples", "sft_steps",
        "sft_validation", "eval_per_level", "iterations", "checkpoint_every", "episodes_per_iteration",
        "minibatch_size", "micro_batch_size", "max_new_tokens", "threads",
    ):  # fmt: skip
        args += [f"--{name.replace('_', '-')}", str(getattr(config, name))]
    return [sys.executable, "-c", _KILLABLE, *args, "--train-levels", "1", "--eval-levels", "1"]


def _run(command: list[str], kill_in: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "KILL_IN": kill_in or ""}
    return subprocess.run(command, env=env, cwd=ROOT, timeout=600, capture_output=True, text=True)


@pytest.mark.slow
def test_a_run_killed_in_round_two_resumes_where_it_stopped(setup, tmp_path):
    straight = _run(_command(setup, tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr[-2000:]
    assert "round 2: distilled + RL (ppo, RAE)" in straight.stdout

    killed = tmp_path / "killed"
    first = _run(_command(setup, killed), kill_in=f"round-2{os.sep}sft{os.sep}checkpoints")  # in the distillation
    assert first.returncode == -signal.SIGKILL and (killed / "round-2" / "sft_data.jsonl").exists()
    assert not (killed / "round-2" / "sft" / "model").exists()
    second = _run(
        _command(setup, killed, resume=True), kill_in=f"round-2{os.sep}rl{os.sep}checkpoints{os.sep}.step-000004"
    )
    assert second.returncode == -signal.SIGKILL  # in round 2's RL, after its checkpoint at iteration 2
    assert (killed / "round-2" / "rl" / "checkpoints" / "step-000002").is_dir()
    last = _run(_command(setup, killed, resume=True))
    assert last.returncode == 0, last.stderr[-2000:]

    for piece in ("rl", f"round-2{os.sep}rl"):
        weights = [
            load_file(str(run / piece / "model" / "model.safetensors")) for run in (tmp_path / "straight", killed)
        ]
        assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    rows = [json.loads((run / "rounds.json").read_text()) for run in (tmp_path / "straight", killed)]
    assert rows[0] == rows[1]
    histories = [
        [
            {k: v for k, v in row.items() if not k.startswith("perf/")}
            for row in json.loads((run / "round-2" / "rl" / "metrics.json").read_text())["history"]
        ]
        for run in (tmp_path / "straight", killed)
    ]
    assert histories[0] == histories[1] and len(histories[0]) == 4
