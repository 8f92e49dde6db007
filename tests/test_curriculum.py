"""Curricula: promotion and demotion on scripted outcomes, weights, determinism under seed,
save/restore, and the environment steering them from its own episodes."""

from __future__ import annotations

import json
from collections import Counter

import gymnasium as gym
import numpy as np
import pytest

import satori_env  # noqa: F401  (registers the env ids)
from satori_env import (
    AdaptiveCurriculum,
    ArithmeticTasks,
    Curriculum,
    FixedMix,
    SatoriMathEnv,
    SatoriMathVectorEnv,
    make_curriculum,
)
from tests.helpers import solution_tokens


def adaptive(**options):
    return AdaptiveCurriculum.over_levels([1, 2, 3], **{"window": 8, "min_episodes": 4, **options})


def test_promotes_above_the_band_and_demotes_below_it():
    curriculum = adaptive()
    assert curriculum.frontier_arm == "L1" and curriculum.distribution() == {"L1": 1.0, "L2": 0.0, "L3": 0.0}
    for _ in range(3):
        curriculum.update("L1", True)
    assert curriculum.frontier_arm == "L1"  # 3 < min_episodes outcomes
    curriculum.update("L1", True)
    assert curriculum.frontier_arm == "L2" and curriculum.promotions == 1
    assert curriculum.distribution() == pytest.approx({"L1": 0.2, "L2": 0.8, "L3": 0.0})  # review the easier arm
    curriculum.update("L1", False)  # outcomes of other arms do not move the frontier
    for correct in (True, False, False, False):
        curriculum.update("L2", correct)
    assert curriculum.frontier_arm == "L2"  # 0.25 is inside the band
    for _ in range(4):
        curriculum.update("L2", False)
    assert curriculum.frontier_arm == "L1" and curriculum.demotions == 1  # 0.0 over the 4 since the last check
    assert curriculum.pass_rates() == {"L1": pytest.approx(0.8), "L2": pytest.approx(1 / 8), "L3": None}


def test_the_frontier_stops_at_both_ends_and_decides_on_fresh_outcomes_only():
    curriculum = adaptive(start=2)
    assert curriculum.distribution() == pytest.approx({"L1": 0.1, "L2": 0.1, "L3": 0.8})
    for _ in range(8):
        curriculum.update("L3", True)
    assert curriculum.frontier_arm == "L3" and curriculum.promotions == 0  # nowhere to go
    low = adaptive()
    for _ in range(8):
        low.update("L1", False)
    assert low.frontier_arm == "L1" and low.demotions == 0
    moving = adaptive()
    for _ in range(4):
        moving.update("L1", True)
    for _ in range(3):
        moving.update("L2", True)
    assert moving.frontier_arm == "L2"  # L1's old successes do not count for L2's decision


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: AdaptiveCurriculum.over_levels(band=(0.8, 0.2)), "band must be"),
        (lambda: AdaptiveCurriculum.over_levels(window=8, min_episodes=9), "min_episodes must be in"),
        (lambda: AdaptiveCurriculum.over_levels(review=1.0), "review must be in"),
        (lambda: AdaptiveCurriculum.over_levels(start=3), "start must index"),
        (lambda: FixedMix.over_levels([1, 2], weights=[0, 0]), "positive sum"),
        (lambda: FixedMix({"a": "arith:train"}, weights={"b": 1.0}), r"unknown arm\(s\) \['b'\]"),
        (lambda: Curriculum({}), "at least one arm"),
        (
            lambda: make_curriculum("hardest"),
            r"unknown curriculum 'hardest'; valid curricula: \['adaptive', 'uniform'\]",
        ),
        (lambda: make_curriculum("adaptive", tasks=[]), "builds its arms from arithmetic levels"),
    ],
)
def test_bad_settings_are_explained(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_a_fixed_mixture_of_sources_draws_by_its_weights():
    mix = FixedMix({"arith": ("arith:train", 3.0), "gsm8k": ("gsm8k:train", 1.0)})
    rng = np.random.default_rng(0)
    draws = [mix.draw(rng) for _ in range(4000)]
    counts = Counter(arm for arm, _ in draws)
    assert counts["arith"] / 4000 == pytest.approx(0.75, abs=0.03)
    assert {p.source for arm, p in draws if arm == "gsm8k"} == {"gsm8k:train"}
    assert mix.served == dict(counts)
    uniform = make_curriculum("uniform", ArithmeticTasks(levels=[2, 4], split="test"))
    assert uniform.distribution() == {"L2": 0.5, "L4": 0.5}
    assert {p.level for p in (uniform.sample(rng) for _ in range(50))} == {2, 4}


def scripted_run(curriculum, seed: int, episodes: int = 60) -> list[tuple[str, str]]:
    """Serve ``episodes`` problems; the scripted learner solves levels 1-2 and fails level 3."""
    env = SatoriMathEnv(curriculum=curriculum)
    served = []
    env.reset(seed=seed)
    for _ in range(episodes):
        problem = env.unwrapped._problem
        served.append((env.unwrapped._arm, problem.id))
        env.step_tokens(solution_tokens(env, problem, wrong=problem.level == 3))
        env.reset()
    return served


def test_the_env_steers_its_curriculum_from_its_own_episodes_deterministically():
    first, second = adaptive(), adaptive()
    run = scripted_run(first, seed=3)
    assert run == scripted_run(second, seed=3)  # same seed, same outcomes: same problems
    assert run != scripted_run(adaptive(), seed=4)
    # L1 -> L2 -> L3, where every answer is wrong -> back to L2, where every answer is right -> ...
    assert first.promotions - first.demotions == first.frontier and first.demotions >= 2
    assert first.state_dict() == second.state_dict()
    assert {arm for arm, _ in run} == {"L1", "L2", "L3"}


def test_state_round_trips_and_the_run_continues_identically():
    original = adaptive()
    scripted_run(original, seed=0, episodes=30)
    restored = adaptive()
    restored.load_state_dict(json.loads(json.dumps(original.state_dict())))
    assert restored.state_dict() == original.state_dict() and restored.frontier == original.frontier
    assert scripted_run(original, seed=9) == scripted_run(restored, seed=9)
    with pytest.raises(ValueError, match=r"curriculum state 'recent' must have this curriculum's arms \['L1', 'L2'\]"):
        FixedMix.over_levels([1, 2]).load_state_dict(original.state_dict())


def _altered(state, **changes):
    altered = json.loads(json.dumps(state))
    for key, value in changes.items():
        if value is None:
            del altered[key]
        else:
            altered[key] = value
    return altered


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"frontier": 7}, "'frontier' must index one of the 3 arms, got 7"),
        ({"frontier": -1}, "'frontier' must be an int >= 0, got -1"),
        ({"since_move": "4"}, "'since_move' must be an int >= 0"),
        ({"promotions": None}, "'promotions' must be an int >= 0, got None"),
        ({"recent": {"L1": [True], "L2": "yes", "L3": []}}, "'recent' of arm 'L2' must be a list of bools"),
        ({"recent": {"L1": [1, 0], "L2": [], "L3": []}}, "'recent' of arm 'L1' must be a list of bools"),
        ({"served": {"L1": -3, "L2": 0, "L3": 0}}, "'served' of arm 'L1' must be an int >= 0"),
        ({"served": None}, "a curriculum state is a dict with 'recent' and 'served'"),
        ({"recent": {"L1": ["x" * 10_000_000], "L2": [], "L3": []}}, "'recent' of arm 'L1' must be a list of bools"),
    ],
)
def test_a_bad_state_is_refused_and_changes_nothing(changes, message):
    curriculum = adaptive()
    scripted_run(curriculum, seed=0, episodes=30)
    before = curriculum.state_dict()
    with pytest.raises(ValueError, match=message) as error:
        curriculum.load_state_dict(_altered(before, **changes))
    assert curriculum.state_dict() == before  # all or nothing
    assert len(str(error.value)) < 300
    with pytest.raises(ValueError, match="a curriculum state is a dict"):
        curriculum.load_state_dict(["garbage"])


def test_a_vector_env_shares_one_curriculum_that_sees_every_episode():
    for spec in ("adaptive", adaptive()):
        envs = SatoriMathVectorEnv(num_envs=8, curriculum=spec)
        curriculum = envs.curriculum
        assert isinstance(curriculum, AdaptiveCurriculum) and all(
            env.unwrapped.source is curriculum for env in envs.envs
        )
        _, info = envs.reset(seed=0)
        assert list(info["curriculum_arm"]) == ["L1"] * 8 and curriculum.served == {"L1": 8, "L2": 0, "L3": 0}
        problems = [env.unwrapped._problem for env in envs.envs]
        *_, infos = envs.step_tokens([solution_tokens(envs.envs[i], p) for i, p in enumerate(problems)])
        assert list(infos["final_info"]["curriculum_arm"]) == ["L1"] * 8
        assert curriculum.pass_rates()["L1"] == 1.0 and len(curriculum.state_dict()["recent"]["L1"]) == 8
    assert curriculum.frontier_arm == "L2"  # promoted after min_episodes=4 right answers
    assert list(infos["curriculum_arm"]).count("L2") > 4  # the copies' next episodes (autoreset) mostly come from L2


def test_restart_states_and_pinned_problems_are_not_the_curriculums():
    curriculum = adaptive()
    env = gym.make("SatoriMath-v0", curriculum=curriculum)
    problem = ArithmeticTasks(levels=[3]).sample(np.random.default_rng(0))
    _, info = env.reset(seed=0, options={"problem": problem})
    assert info["curriculum_arm"] is None
    env.step(solution_tokens(env, problem)[0])
    env.unwrapped.step_tokens(solution_tokens(env, problem)[1:])
    assert curriculum.pass_rates() == {"L1": None, "L2": None, "L3": None} and sum(curriculum.served.values()) == 0


def test_a_custom_strategy_in_a_few_lines():
    class HardestFirst(Curriculum):
        """Weight each arm by how often the learner still fails it."""

        def weights(self):
            return [1.0 - (rate if rate is not None else 0.5) + 1e-3 for rate in self.pass_rates().values()]

    curriculum = HardestFirst({"L1": ArithmeticTasks([1]), "L3": ArithmeticTasks([3])})
    scripted_run(curriculum, seed=0, episodes=40)
    assert curriculum.pass_rates() == {"L1": 1.0, "L3": 0.0}
    assert curriculum.distribution()["L3"] > 0.99


def test_a_pinned_problem_tagged_with_an_arm_counts_for_that_arm():
    curriculum = adaptive()
    env = SatoriMathEnv(curriculum=curriculum)
    problem = ArithmeticTasks(levels=[3]).sample(np.random.default_rng(0))
    _, info = env.reset(seed=0, options={"problem": problem, "curriculum_arm": "L3"})
    assert info["curriculum_arm"] == "L3"
    env.step_tokens(solution_tokens(env, problem))
    assert curriculum.pass_rates()["L3"] == 1.0
    with pytest.raises(ValueError, match=r"an arm of the env's curriculum \['L1', 'L2', 'L3'\]; got 'L9'"):
        env.reset(options={"problem": problem, "curriculum_arm": "L9"})
    with pytest.raises(ValueError, match=r"curriculum \[\]; got 'L1'"):
        SatoriMathEnv().reset(options={"problem": problem, "curriculum_arm": "L1"})


def test_training_reports_every_episode_of_a_group_and_logs_the_level_distribution(tmp_path):
    from dataclasses import replace

    from agents.config import preset
    from agents.models import build_model
    from agents.train import train_rl

    build_model("tiny", tmp_path / "model", seed=0)
    config = replace(
        preset("tiny"),
        out=str(tmp_path / "run"),
        algo="grpo",
        group_size=4,
        episodes_per_iteration=8,
        minibatch_size=8,
        micro_batch_size=8,
        max_new_tokens=4,
        iterations=2,
        eval_per_level=0,
        restart_prob=0.0,
        curriculum="adaptive",
        progress=False,
    )
    result = train_rl(config, str(tmp_path / "model"))
    first = result["history"][0]
    assert (
        first["curriculum/share_L1"] == 1.0
        and first["curriculum/share_L2"] == 0.0
        and first["curriculum/frontier"] == 0.0
    )
    assert first["curriculum/pass_rate_L1"] == 0.0  # an untrained model
    state = result["curriculum"]
    assert (
        len(state["recent"]["L1"]) == 16
    )  # both groups' 4 episodes, both iterations: not only the groups' first copies
    assert state["served"]["L1"] >= 4  # the groups' draws
