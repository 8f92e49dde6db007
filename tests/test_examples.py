"""The example scripts run and show what they claim."""

import importlib.util
import sys
from dataclasses import replace
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their annotations through it
    spec.loader.exec_module(module)
    return module


def test_scripted_agents_get_the_top_and_bottom_rewards(capsys):
    results = load("scripted_agents").main(episodes=16)
    assert results["oracle"]["mean reward"] == 0.0 and results["oracle"]["accuracy"] == 1.0
    assert results["self-correcting"]["mean reward"] == 0.0 and results["self-correcting"]["reflect / episode"] == 1.0
    assert results["wrong"]["mean reward"] == -1.0 and results["wrong"]["accuracy"] == 0.0
    assert "| oracle |" in capsys.readouterr().out


def test_random_agent_plays_whole_episodes(capsys):
    returns = load("random_agent").main(episodes=2, seed=0)
    assert returns == [-1.0, -1.0]  # random tokens do not solve arithmetic
    assert capsys.readouterr().out.count("episode ") == 2


def test_reward_shaping_table(capsys):
    table = load("reward_shaping").main()
    totals = {name: {preset: sum(terms.values()) for preset, terms in row.items()} for name, row in table.items()}
    assert totals["correct"]["satori"] == 0.0 and totals["wrong answer"]["satori"] == -1.0
    assert (
        totals["restart from wrong, fixed"]["satori"] == 0.5 and totals["restart from right, broken"]["satori"] == -1.5
    )
    assert table["no COAT format"]["custom"]["format"] == -0.5 and table["self-correcting"]["custom"]["checked"] == 0.25
    assert [totals[name]["binary"] for name in table] == [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0]
    assert "| restart from wrong, fixed |" in capsys.readouterr().out


def test_custom_algorithm_learns_the_toy_task_and_keeps_its_baseline_in_checkpoints(tmp_path):
    from agents.algorithms import ALGORITHMS
    from agents.config import TrainConfig
    from tests.helpers import learn_toy_task, stub_policy

    example = load("custom_algorithm")
    assert ALGORITHMS["reinforce_baseline"] is example.ReinforceWithBaseline
    assert len((EXAMPLES / "custom_algorithm.py").read_text().splitlines()) < 100
    first, last = learn_toy_task(tmp_path, "reinforce_baseline", seed=6)
    assert first < 0.2 and last > 0.6  # measured (seed 6): 0.05 -> 0.99; seeds 0-7 in tests/test_algorithms.py
    algorithm = example.ReinforceWithBaseline(stub_policy(), TrainConfig())
    algorithm.baseline = 0.25
    restored = example.ReinforceWithBaseline(stub_policy(), TrainConfig(seed=1))
    restored.load_state_dict(algorithm.state_dict())
    assert restored.baseline == 0.25 and restored.rng.random() == algorithm.rng.random()


def test_compare_algorithms_reports_every_run_and_plots_the_curves(tmp_path, capsys):
    import json

    import pytest

    example = load("compare_algorithms")
    history = [{"rollout/accuracy": a, "perf/iteration_seconds": 30.0} for a in (0.5, 0.6)]
    result = {"before": {"accuracy": 0.80}, "after": {"accuracy": 0.83}, "history": history}
    runs = {
        "ppo": [example.summarise(result, 0), example.summarise({**result, "after": {"accuracy": 0.79}}, 1)],
        "grpo": [example.summarise({**result, "after": {"accuracy": 0.86}}, 0)],
    }
    assert runs["ppo"][0]["minutes"] == 1.0 and runs["ppo"][0]["rollout_accuracy"] == [0.5, 0.6]
    table = example.write_report(runs, tmp_path, iterations=2, episodes=128)
    assert "| ppo | 2 | 0.800 | 0.810 | +0.010 | -0.010..+0.030 | 1.0 |" in table
    assert "| grpo | 1 | 0.800 | 0.860 | +0.060 | +0.060..+0.060 | 1.0 |" in table
    assert (tmp_path / "comparison.md").read_text().strip() == table == capsys.readouterr().out.strip()
    assert json.loads((tmp_path / "results.json").read_text())["grpo"][0]["after"] == 0.86
    assert (tmp_path / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="unknown algorithms \\['a2c'\\]; valid algorithms"):
        example.main(algos=["ppo", "a2c"], model="unused", out=str(tmp_path))


@pytest.mark.slow
def test_sb3_meta_controller_runs_small_with_its_flags(tmp_path, capsys):
    from agents.models import build_model

    build_model("tiny", tmp_path / "policy", seed=0)
    results = load("sb3_meta_controller").main(
        str(tmp_path / "policy"),
        timesteps=32,
        train_problems=4,
        test_per_level=2,
        out=str(tmp_path / "out"),
        n_steps=16,
        learning_starts=8,
    )
    assert set(results) == {"always continue", "random", "LM's own choice", "PPO", "DQN"}
    assert all(0.0 <= row["accuracy"] <= 1.0 and row["steps"] >= 1 for row in results.values())
    out = capsys.readouterr().out
    assert "training the PPO controller for 32 steps" in out and "| DQN |" in out


@pytest.mark.slow
def test_trl_grpo_example_trains_through_the_rollout(tmp_path, capsys):
    pytest.importorskip("trl")
    from agents.models import build_model

    build_model("tiny", tmp_path / "tiny", seed=0)
    result = load("trl_grpo").main(
        str(tmp_path / "tiny"), steps=2, batch=8, max_new_tokens=16, out=str(tmp_path / "out")
    )
    assert len(result["logs"]) == 2 and result["tokens_per_s"] > 0
    assert all("rewards/satori_reflection/mean" in log for log in result["logs"])
    assert "| 2 |" in capsys.readouterr().out


@pytest.mark.slow
def test_trl_grpo_example_trains_through_an_openenv_server(tmp_path, capsys):
    pytest.importorskip("trl")
    pytest.importorskip("openenv")
    from agents.models import build_model

    build_model("tiny", tmp_path / "tiny", seed=0)
    result = load("trl_grpo").main(
        str(tmp_path / "tiny"), steps=2, batch=8, max_new_tokens=16, out=str(tmp_path / "out"), openenv="local"
    )
    assert len(result["logs"]) == 2 and result["tokens_per_s"] > 0
    assert "| 2 |" in capsys.readouterr().out


@pytest.mark.slow
def test_ablations_run_every_arm_resume_and_report(tmp_path, capsys):
    example = load("ablations")
    settings = example.Settings(
        out=str(tmp_path / "ablations"), demos=300, demo_levels=(1,), eval_levels=(1, 2), per_level=8,
        curve_per_level=4, sft_steps=30, validation=30, validate_every=10, patience=2, chunk_minutes=0.05,
        rl_iterations=2, rl_chunk=1, threads=2,
        rl_overrides={"episodes_per_iteration": 8, "minibatch_size": 8, "micro_batch_size": 8, "max_new_tokens": 24},
    )  # fmt: skip
    results = example.main(settings)
    arms = results[0]
    assert set(arms) == set(example.ARMS)
    rl_minutes = arms["sft_rl"]["minutes"] - arms["sft"]["minutes"]
    continued = arms["sft_continued"]["minutes"] - arms["sft"]["minutes"]
    assert continued == pytest.approx(rl_minutes, abs=0.1)  # as many more minutes as RL took
    assert arms["sft_rl"]["curve"][: len(arms["sft"]["curve"])] == arms["sft"]["curve"]  # RL starts where SFT ended
    assert len(arms["sft_rl"]["curve"]) == len(arms["sft"]["curve"]) + 2  # a point per RL chunk
    for arm in arms.values():
        assert {len(v) for v in arm["final"]["verdicts"].values()} == {8}
    table = (tmp_path / "ablations" / "ablations.md").read_text()
    assert all(label in table for label in example.ARMS.values()) and table in capsys.readouterr().out
    assert (tmp_path / "ablations" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = example.main(settings)  # every piece is read back, nothing trained again
    assert again[0]["sft_rl"]["minutes"] == arms["sft_rl"]["minutes"]
    wider = example.main(replace(settings, per_level=4))  # other problems: the final evaluations again, no training
    assert {len(v) for v in wider[0]["sft"]["final"]["verdicts"].values()} == {4}
    assert wider[0]["sft_rl"]["minutes"] == arms["sft_rl"]["minutes"]


@pytest.mark.slow
def test_rounds_example_trains_every_round_evaluates_every_stage_and_reads_back(tmp_path, capsys, monkeypatch):
    from tests.helpers import sample_with_oracle

    example = load("rounds")
    settings = example.Settings(
        out=str(tmp_path / "rounds"), rounds=2, per_level=6, eval_levels=(1, 2), threads=1,
        overrides={
            "synth_n": 60, "synth_levels": (1,), "sft_steps": 40, "sft_validation": 0, "train_levels": (1,),
            "eval_levels": (1,), "eval_per_level": 4, "iterations": 2, "episodes_per_iteration": 8, "minibatch_size": 8,
            "micro_batch_size": 8, "max_new_tokens": 128, "distill_problems": 12, "distill_samples": 2,
            "progress": False,
        },
    )  # fmt: skip
    sample_with_oracle(monkeypatch.setattr, example.train_config(settings, 0))  # round 2 samples scripted answers
    results = example.main(settings)
    stages = results[0]["stages"]
    assert list(stages) == ["round 0: SFT", "round 1: SFT + RL", "round 2: distilled", "round 2: distilled + RL"]
    assert all({len(v) for v in stage["verdicts"].values()} == {6} for stage in stages.values())
    kept = results[0]["rounds"][2]["distilled"]
    table = (tmp_path / "rounds" / "rounds.md").read_text()
    assert table in capsys.readouterr().out and all(f"| {name} |" in table for name in stages)
    assert f"| {kept} (" in table  # the distilled set's size, with its self-correction share
    metrics = tmp_path / "rounds" / "seed-0" / "round-2" / "rl" / "metrics.json"
    written = metrics.stat().st_mtime_ns
    monkeypatch.setattr(example, "load_engine", lambda *a, **k: pytest.fail("a kept evaluation was run again"))
    again = example.main(settings)  # finished rounds and their verdicts are read back, not run again
    assert metrics.stat().st_mtime_ns == written and again[0]["stages"] == stages
