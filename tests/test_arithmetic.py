"""Procedural arithmetic: deterministic, exact, graded, and with a held-out split."""

import random
import re

import pytest

from satori_env import ArithmeticTasks, generate_arithmetic, load_problems
from satori_env.tasks.arithmetic import LEVELS

APPLY = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a // b}


def test_same_seed_same_problems_different_seed_different_problems():
    first = ArithmeticTasks(levels=[1, 2, 3], seed=7).take(50)
    assert first == ArithmeticTasks(levels=[1, 2, 3], seed=7).take(50)
    assert first != ArithmeticTasks(levels=[1, 2, 3], seed=8).take(50)
    assert load_problems("arith:test", limit=20, seed=3) == load_problems("arith:test", limit=20, seed=3)


@pytest.mark.parametrize("level", sorted(LEVELS))
def test_steps_are_exact_and_within_the_level(level):
    spec = LEVELS[level]
    rng = random.Random(level)
    for _ in range(300):
        problem = generate_arithmetic(level, rng)
        steps = problem.meta["steps"]
        assert len(steps) == spec.steps and problem.level == level
        value = steps[0]["a"]
        assert 1 <= value <= spec.max_operand
        for step in steps:
            assert step["op"] in spec.ops and step["a"] == value
            if step["op"] == "/":
                assert value % step["b"] == 0
            value = APPLY[step["op"]](value, step["b"])
            assert step["result"] == value and 0 <= value <= spec.max_value
        assert problem.answer == str(value)
        numbers = [int(n) for n in re.findall(r"\d+", problem.question)]
        assert numbers == [steps[0]["a"]] + [s["b"] for s in steps]  # the question states every operand


def test_level_one_is_two_numbers_and_one_operation():
    for problem in load_problems("arith:train", level=1, limit=200):
        assert len(re.findall(r"\d+", problem.question)) == 2
        assert problem.meta["steps"][0]["op"] in "+-"


def test_train_and_test_never_share_a_calculation():
    train = {p.meta["key"] for p in load_problems("arith:train", level=1, limit=3000)}
    test = {p.meta["key"] for p in load_problems("arith:test", level=1, limit=1000)}
    assert train and test and not train & test
    assert all(
        p.source == "arith:test" and p.id.startswith("arith:test/L1/")
        for p in load_problems("arith:test", level=1, limit=50)
    )


def test_levels_get_harder():
    mean_steps = [
        sum(len(p.meta["steps"]) for p in load_problems("arith:train", level=level, limit=50))
        for level in sorted(LEVELS)
    ]
    assert mean_steps == sorted(mean_steps) and mean_steps[0] < mean_steps[-1]
    biggest = [max(int(p.answer) for p in load_problems("arith:train", level=level, limit=200)) for level in (1, 6)]
    assert biggest[0] < biggest[1]


def test_weights_steer_the_level_mix():
    levels = [p.level for p in ArithmeticTasks(levels=[1, 2], weights=[0.9, 0.1], seed=0).take(1000)]
    assert 850 < levels.count(1) < 950


def test_an_explicit_rng_does_not_touch_the_stream():
    tasks = ArithmeticTasks(levels=[2], seed=0)
    tasks.sample(random.Random(123))
    assert tasks.take(5) == ArithmeticTasks(levels=[2], seed=0).take(5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"levels": [0]}, "levels must be a non-empty subset of"),
        ({"levels": []}, "levels must be a non-empty subset of"),
        ({"split": "dev"}, r"unknown split 'dev'; valid splits: \['train', 'test'\]"),
        ({"levels": [1, 2], "weights": [1.0]}, "weights must be 2 non-negative numbers"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ArithmeticTasks(**kwargs)


def test_generate_rejects_unknown_level():
    with pytest.raises(ValueError, match=r"valid levels: \[1, 2, 3, 4, 5, 6\]"):
        generate_arithmetic(9, random.Random(0))
