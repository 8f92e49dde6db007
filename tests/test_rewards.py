"""Reward terms: exact values, composition, presets, and what the environment reports."""

import math

import gymnasium as gym
import pytest

import satori_env  # noqa: F401
from satori_env import Episode, LengthPenalty, PreferenceBonus, Problem, ReflectionBonus, RewardSpec
from satori_env.rewards import TERMS, binary_reward, format_reward, make_reward, rule_reward
from tests.helpers import solution_tokens

PROBLEM = Problem("p", "What is 2+3?", "5", "demo")
GOOD = "<|continue|>2+3=5<|continue|>The answer is \\boxed{5}."


def episode(correct=True, reflect_status=0, completion=GOOD, num_tokens=20):
    return Episode(PROBLEM, completion, "5" if correct else "6", correct, "ok", {}, num_tokens, False, reflect_status)


def test_rule_and_binary():
    assert (rule_reward(episode(True)), rule_reward(episode(False))) == (0.0, -1.0)
    assert (binary_reward(episode(True)), binary_reward(episode(False))) == (1.0, 0.0)


@pytest.mark.parametrize(
    "reflect_status, correct, bonus",
    [
        (-1, True, 0.5),  # restarted from a wrong trajectory and fixed it
        (-1, False, 0.0),  # ... and did not fix it
        (1, True, 0.0),  # restarted from a right trajectory and kept it right
        (1, False, -0.5),  # ... and broke it
        (0, True, 0.0),  # not a restart
        (0, False, 0.0),
    ],
)
def test_reflection_bonus_cases(reflect_status, correct, bonus):
    assert ReflectionBonus()(episode(correct, reflect_status)) == bonus
    assert ReflectionBonus(scale=0.2)(episode(correct, reflect_status)) == pytest.approx(bonus * 0.4)


@pytest.mark.parametrize(
    "completion, value",
    [
        (GOOD, 0.0),
        ("  " + GOOD, 0.0),
        ("<|continue|>2+3=6<|reflect|>6 is wrong.<|explore|>2+3=5, so \\boxed{5}", 0.0),
        ("2+3=5" + GOOD, -1.0),  # text before the first meta-action
        ("<|continue|><|continue|>\\boxed{5}", -1.0),  # an empty step
        ("<|continue|>\\boxed{5} or \\boxed{6}", -1.0),  # two final answers
        ("<|continue|>2+3=5", -1.0),  # no final answer
        ("", -1.0),
    ],
)
def test_format_reward(completion, value):
    assert format_reward(episode(completion=completion)) == value


def test_length_penalty():
    penalty = LengthPenalty(budget=100)
    assert [penalty(episode(num_tokens=n)) for n in (0, 50, 100, 300)] == [0.0, -0.5, -1.0, -1.0]
    with pytest.raises(ValueError, match="budget must be >= 1"):
        LengthPenalty(budget=0)


class CountingScorer:
    def __init__(self):
        self.batches = []

    def __call__(self, problem, completion):
        return len(completion) / 10

    def score_batch(self, problems, completions):
        self.batches.append(len(completions))
        return [self(p, c) for p, c in zip(problems, completions)]


def test_preference_bonus_squashes_and_batches():
    scorer = CountingScorer()
    bonus = PreferenceBonus(scorer)
    ep = episode(completion="x" * 20)
    assert bonus(ep) == pytest.approx(1 / (1 + math.exp(-2.0)))
    assert PreferenceBonus(scorer, squash=None)(ep) == 2.0
    assert bonus.batch([ep, ep, ep]) == [bonus(ep)] * 3 and scorer.batches == [3]
    with pytest.raises(TypeError, match="must be callable"):
        PreferenceBonus(3)


def test_spec_weights_and_batch():
    spec = RewardSpec({"rule": (rule_reward, 2.0), "reflection": (ReflectionBonus(), 1.0)})
    assert spec(episode(True, -1)) == {"rule": 0.0, "reflection": 0.5}
    assert spec(episode(False, 1)) == {"rule": -2.0, "reflection": -0.5}
    episodes = [episode(True, -1), episode(False, 1), episode(False, 0)]
    assert spec.batch(episodes) == [spec(e) for e in episodes]


def test_presets_and_custom_mixes():
    assert set(make_reward(None).terms) == {"rule", "reflection"}
    assert set(make_reward("satori", scorer=CountingScorer()).terms) == {"rule", "reflection", "preference"}
    assert set(make_reward("binary").terms) == {"correct"}
    assert set(make_reward(["rule", "format", "length"]).terms) == {"rule", "format", "length"}

    def brevity(ep):
        return -ep.num_tokens / 10

    mix = make_reward({"rule": 1.0, "format": 0.5, "brevity": brevity, "reflection": (ReflectionBonus(1.0), 0.5)})
    assert mix(episode(True, -1, completion="no format", num_tokens=5)) == {
        "rule": 0.0,
        "format": -0.5,
        "brevity": -0.5,
        "reflection": 0.5,
    }
    assert set(TERMS) == {"rule", "correct", "reflection", "format", "length"}


@pytest.mark.parametrize(
    "reward, error, message",
    [
        ("dense", ValueError, r"unknown reward 'dense'; valid presets: \['binary', 'satori'\]"),
        (
            ["rule", "speed"],
            ValueError,
            r"unknown reward term 'speed'; valid names: \['correct', 'format', 'length', 'preference', "
            r"'reflection', 'rule'\]",
        ),
        ({"preference": 1.0}, ValueError, "needs a scorer"),
        ({"rule": "high"}, TypeError, "must be a weight, a callable or"),
        ({"rule": (rule_reward, "x")}, TypeError, r"a tuple must be \(callable, weight\)"),
        (42, TypeError, "reward must be None, a preset name"),
        ({}, ValueError, "at least one term"),
    ],
)
def test_bad_rewards_are_explained(reward, error, message):
    with pytest.raises(error, match=message):
        make_reward(reward)


def test_the_environment_reports_every_term():
    def tokens_used(ep):
        return ep.num_tokens

    env = gym.make("SatoriMath-v0", reward={"rule": 1.0, "format": 1.0, "used": (tokens_used, 0.1)})
    env.reset(seed=2)
    tokens = solution_tokens(env, env.unwrapped._problem)
    _, reward, _, _, info = env.unwrapped.step_tokens(tokens)
    assert info["reward_terms"] == {"rule": 0.0, "format": 0.0, "used": pytest.approx(0.1 * len(tokens))}
    assert reward == pytest.approx(sum(info["reward_terms"].values()))


def test_the_scorer_reaches_the_preference_term_once_per_vector_step():
    scorer = CountingScorer()
    envs = gym.make_vec("SatoriMath-v0", num_envs=3, scorer=scorer)
    envs.reset(seed=0)
    _, rewards, _, _, infos = envs.step_tokens([solution_tokens(envs, env._problem) for env in envs.envs])
    assert scorer.batches == [3]
    preference = infos["final_info"]["reward_terms"]["preference"]
    assert all(0.5 < p < 1 for p in preference) and rewards.tolist() == pytest.approx(preference.tolist())


@pytest.mark.parametrize("value", ["0.5", None, float("nan"), float("inf"), [1.0]])
def test_a_term_returning_a_non_number_is_named(value):
    spec = make_reward({"rule": 1.0, "mine": (lambda episode: value, 1.0)})
    with pytest.raises(TypeError, match="reward term 'mine' must return a finite number"):
        spec(episode())


def test_terms_may_return_bools_and_numpy_numbers():
    import numpy as np

    spec = make_reward({"right": (lambda e: e.correct, 1.0), "half": (lambda e: np.float32(0.5), 2.0)})
    assert spec(episode()) == {"right": 1.0, "half": 1.0}


def test_make_reward_sets_the_reflection_bonus_scale():
    restarted_and_fixed = episode(correct=True, reflect_status=-1)
    assert make_reward("satori", bonus_scale=0.2)(restarted_and_fixed)["reflection"] == pytest.approx(0.2)
    assert make_reward(["rule", "reflection"], bonus_scale=1.0)(restarted_and_fixed)["reflection"] == 1.0
    assert make_reward({"reflection": 2.0}, bonus_scale=0.25)(restarted_and_fixed)["reflection"] == 0.5
    assert make_reward("satori")(restarted_and_fixed)["reflection"] == 0.5  # Satori's default
    with pytest.raises(ValueError, match="bonus_scale must be a number >= 0"):
        make_reward("satori", bonus_scale=-1)
