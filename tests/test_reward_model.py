"""The shipped outcome reward model: Bradley-Terry training that learns, persistence, use as a scorer."""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

import satori_env  # noqa: F401
from agents.cli import main
from agents.reward_model import (
    OutcomeRewardModel,
    PreferencePair,
    _read_pairs,
    pairs_from_trajectories,
    pairwise_accuracy,
    synthetic_pairs,
    train_reward_model,
)
from satori_env import Problem, Trajectory
from satori_env.tasks.arithmetic import write_solution
from satori_env.tokenizer import default_tokenizer


@pytest.mark.slow
def test_bradley_terry_training_learns_to_prefer_correct_solutions():
    torch.set_num_threads(2)
    held_out = synthetic_pairs(300, levels=(1,), split="test", seed=1)
    reward_model = OutcomeRewardModel.tiny(seed=0)
    before = pairwise_accuracy(reward_model, held_out)
    metrics = train_reward_model(
        reward_model,
        synthetic_pairs(2000, levels=(1,), seed=0),
        steps=100,
        batch_size=32,
        lr=1e-3,
        eval_pairs=held_out,
        progress=False,
    )
    # measured: 0.69 and 0.73 after 100 steps (seeds 0 and 1), from 0.48 and 0.56 untrained; chance is 0.5 +- 0.03
    assert metrics["eval_pairwise_accuracy"] >= 0.62
    assert metrics["eval_pairwise_accuracy"] >= before + 0.1


def test_save_and_load_give_the_same_scores(tmp_path):
    reward_model = OutcomeRewardModel.tiny(seed=3)
    reward_model.template = satori_env.coat.get_template("Q: {question}\nA:")
    pairs = synthetic_pairs(5)
    problems, completions = [p.problem for p in pairs], [p.chosen for p in pairs]
    reward_model.save_pretrained(str(tmp_path / "rm"))
    loaded = OutcomeRewardModel.from_pretrained(str(tmp_path / "rm"), device="cpu")
    assert loaded.template.text == "Q: {question}\nA:"
    assert np.allclose(
        loaded.score_batch(problems, completions), reward_model.score_batch(problems, completions), atol=1e-5
    )
    assert loaded(problems[0], completions[0]) == pytest.approx(
        reward_model.score_batch(problems[:1], completions[:1])[0], abs=1e-5
    )


def test_a_reward_model_is_a_batched_scorer_for_the_preference_bonus():
    reward_model = OutcomeRewardModel.tiny(seed=1)
    calls = []
    score_batch = reward_model.score_batch
    reward_model.score_batch = lambda problems, completions: (
        calls.append(len(completions)) or score_batch(problems, completions)
    )
    envs = gym.make_vec("SatoriMath-v0", num_envs=3, scorer=reward_model)
    envs.reset(seed=0)
    tokenizer = envs.tokenizer
    texts = [write_solution(env._problem) for env in envs.envs]
    problems = [env._problem for env in envs.envs]
    _, rewards, *_, infos = envs.step_tokens([tokenizer.encode(t) + [tokenizer.eos_token_id] for t in texts])
    expected = 1 / (1 + np.exp(-np.array(score_batch(problems, texts))))
    assert calls == [3]
    assert np.allclose(infos["final_info"]["reward_terms"]["preference"].astype(float), expected, atol=1e-5)
    assert np.allclose(rewards, expected, atol=1e-5)  # rule 0 (correct) + reflection 0 + preference


def test_pairs_from_a_policys_own_trajectories():
    tokenizer = default_tokenizer()
    one, two = Problem("a", "1+1?", "2", "demo"), Problem("b", "2+2?", "4", "demo")
    trajectories = [
        Trajectory(one, tuple(tokenizer.encode("\\boxed{2}")), True),
        Trajectory(one, tuple(tokenizer.encode("\\boxed{3}")), False),
        Trajectory(one, tuple(tokenizer.encode("\\boxed{5}")), False),
        Trajectory(two, tuple(tokenizer.encode("\\boxed{9}")), False),  # no right answer to pair with
    ]
    pairs = pairs_from_trajectories(trajectories, tokenizer)
    assert [(p.problem.id, p.chosen, p.rejected) for p in pairs] == [
        ("a", "\\boxed{2}", "\\boxed{3}"),
        ("a", "\\boxed{2}", "\\boxed{5}"),
    ]


def test_pairs_file_fields_are_checked(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(
        json.dumps({"question": "q", "answer": 1, "chosen": "a", "rejected": "b"})
        + "\n"
        + json.dumps({"question": "q"})
        + "\n"
    )
    with pytest.raises(
        ValueError, match=r"pairs.jsonl:2: a preference pair needs the fields \['answer', 'chosen', 'rejected'\]"
    ):
        _read_pairs(str(path))


def test_training_needs_pairs():
    with pytest.raises(ValueError, match="at least one preference pair"):
        train_reward_model(OutcomeRewardModel.tiny(), [], steps=1)


def test_train_rm_command_writes_a_loadable_run(tmp_path, capsys):
    assert (
        main(
            [
                "train-rm",
                "--out",
                str(tmp_path / "run"),
                "--steps",
                "3",
                "--num-pairs",
                "20",
                "--eval-pairs",
                "10",
                "--batch-size",
                "4",
            ]
        )
        == 0
    )
    assert "eval_pairwise_accuracy=" in capsys.readouterr().out
    assert (tmp_path / "run" / "tb").is_dir() and json.loads((tmp_path / "run" / "metrics.json").read_text())["args"][
        "steps"
    ] == 3
    loaded = OutcomeRewardModel.from_pretrained(str(tmp_path / "run" / "model"))
    pair: PreferencePair = synthetic_pairs(1)[0]
    assert isinstance(loaded(pair.problem, pair.chosen), float)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    pairs = synthetic_pairs(20, (1, 2), "train", 0)  # the training pairs: their scores set the statistics
    problems = [p.problem for p in pairs] * 2
    completions = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    raw = np.array(loaded.score_batch(problems, completions))
    assert (metrics["score_mean"], metrics["score_std"]) == pytest.approx((raw.mean(), raw.std(ddof=1)), rel=1e-4)
    normalized = OutcomeRewardModel.from_pretrained(str(tmp_path / "run" / "model"), normalize=True)
    scaled = np.array(normalized.score_batch(problems, completions))
    assert scaled == pytest.approx((raw - metrics["score_mean"]) / metrics["score_std"], abs=1e-4)
    assert abs(scaled.mean()) < 1e-4 and scaled.std(ddof=1) == pytest.approx(1, rel=1e-3)


def test_a_reward_model_without_statistics_is_not_normalised():
    reward_model = OutcomeRewardModel.tiny(seed=2)
    pair = synthetic_pairs(1)[0]
    raw = reward_model(pair.problem, pair.chosen)
    reward_model.normalize = True
    assert reward_model(pair.problem, pair.chosen) == pytest.approx(raw)  # nothing stored: the raw score
    reward_model.model.config.mean, reward_model.model.config.std = 1.5, 4.0
    assert reward_model(pair.problem, pair.chosen) == pytest.approx((raw - 1.5) / 4.0, abs=1e-6)
    with pytest.raises(ValueError, match="reads raw scores: call it on a reward model with normalize=False"):
        reward_model.record_score_statistics([pair])


def test_rl_with_a_reward_model_adds_the_preference_bonus_to_every_episode(tmp_path):
    from dataclasses import replace

    from agents.config import preset
    from agents.models import build_model
    from agents.train import train_rl

    build_model("tiny", tmp_path / "policy", seed=0)
    reward_model = OutcomeRewardModel.tiny(seed=4)
    reward_model.model.config.mean, reward_model.model.config.std = 0.3, 2.0
    reward_model.save_pretrained(str(tmp_path / "rm"))
    config = replace(
        preset("tiny"), out=str(tmp_path / "run"), reward_model=str(tmp_path / "rm"), iterations=2,
        episodes_per_iteration=8, minibatch_size=8, micro_batch_size=8, max_new_tokens=8, eval_per_level=0,
        threads=1, progress=False,
    )  # fmt: skip
    history = train_rl(config, str(tmp_path / "policy"))["history"]
    for row in history:
        assert 0 < row["reward/preference"] < 1  # sigmoid of the normalised score
        terms = row["reward/rule"] + row["reward/reflection"] + row["reward/preference"]
        assert row["reward/total"] == pytest.approx(terms, abs=1e-5)  # weight 1, added to every episode
    with pytest.raises(FileNotFoundError, match="--reward-model"):
        train_rl(replace(config, reward_model=str(tmp_path / "missing")), str(tmp_path / "policy"))
