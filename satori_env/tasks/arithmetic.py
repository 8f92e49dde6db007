"""Procedural multi-step arithmetic word problems, graded by difficulty level.

What a tiny model on a CPU can learn: a quantity tracked through 1-5 events ("gets 7 more",
"gives away 4", "ends up with 3 times as many", "splits them into 5 equal piles and keeps
one"). Every answer is an exact non-negative integer, every intermediate value too, and the
worked steps are kept in ``Problem.meta["steps"]`` for demonstration synthesis.

Determinism: a problem is a pure function of ``(level, split, random.Random state)``.
Held-out evaluation: each problem's arithmetic (start value, operations, operands) hashes to
the "test" split (about 10 %) or the "train" split, so the same calculation never appears in
both, whatever the wording.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from satori_env.coat import CONTINUE
from satori_env.tasks.columns import work
from satori_env.tasks.problem import Problem

__all__ = ["ArithmeticLevel", "ArithmeticTasks", "LEVELS", "SPLITS", "generate_arithmetic", "write_solution"]

SPLITS = ("train", "test")
_TEST_BUCKETS = 10  # one arithmetic key in ten is held out


@dataclass(frozen=True)
class ArithmeticLevel:
    """How hard one level is.

    Attributes:
        steps: number of operations (level 1: one operation on two numbers).
        ops: allowed operations, a subset of ``"+-*/"``.
        max_operand: operands of ``+``/``-`` (and the start value) are drawn from 1..max_operand.
        max_factor: multipliers and divisors are drawn from 2..max_factor.
        max_value: every intermediate value stays within 0..max_value.
    """

    steps: int
    ops: str
    max_operand: int
    max_factor: int = 0
    max_value: int = 999


LEVELS: dict[int, ArithmeticLevel] = {
    1: ArithmeticLevel(steps=1, ops="+-", max_operand=99, max_value=198),
    2: ArithmeticLevel(steps=2, ops="+-", max_operand=99, max_value=297),
    3: ArithmeticLevel(steps=3, ops="+-*", max_operand=99, max_factor=5, max_value=999),
    4: ArithmeticLevel(steps=3, ops="+-*/", max_operand=99, max_factor=9, max_value=999),
    5: ArithmeticLevel(steps=4, ops="+-*/", max_operand=999, max_factor=9, max_value=9999),
    6: ArithmeticLevel(steps=5, ops="+-*/", max_operand=999, max_factor=12, max_value=99999),
}

_NAMES = (
    "Ann Ben Cara Dev Eli Fay Gus Hana Ivan Jo Kim Leo Mia Noor Omar Pia Raj Sam Tess Uma Vic Wes Yui Zoe"
).split()
_ITEMS = "apples coins marbles stickers books pencils cards shells stamps beads".split()
_EVENTS = {
    "+": ("{name} gets {n} more.", "{name} buys {n} more.", "{name} finds {n} more."),
    "-": ("{name} gives away {n}.", "{name} loses {n}.", "{name} sells {n}."),
    "*": ("{name} ends up with {n} times as many.", "The number of {item} is multiplied by {n}."),
    "/": ("{name} splits them into {n} equal piles and keeps one pile.",),
}


def _apply(op: str, value: int, operand: int) -> int:
    if op == "+":
        return value + operand
    if op == "-":
        return value - operand
    if op == "*":
        return value * operand
    return value // operand


def _choose_step(level: ArithmeticLevel, value: int, rng: random.Random) -> tuple[str, int]:
    """Pick an operation and operand that keep the value a non-negative integer in range."""
    options = []
    for op in level.ops:
        if op == "+" and value + 1 <= level.max_value:
            options.append((op, rng.randint(1, min(level.max_operand, level.max_value - value))))
        elif op == "-" and value >= 1:
            options.append((op, rng.randint(1, min(level.max_operand, value))))
        elif op == "*" and 2 <= level.max_value // max(value, 1):
            options.append((op, rng.randint(2, min(level.max_factor, level.max_value // max(value, 1)))))
        elif op == "/":
            divisors = [d for d in range(2, level.max_factor + 1) if value % d == 0 and value > 0]
            if divisors:
                options.append((op, rng.choice(divisors)))
    return rng.choice(options)


def _split_of(key: str) -> str:
    bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % _TEST_BUCKETS
    return "test" if bucket == 0 else "train"


def _draw(level: int, rng: random.Random) -> Problem:
    spec = LEVELS[level]
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    value = rng.randint(1, spec.max_operand)
    sentences = [f"{name} has {value} {item}."]
    steps = []
    for _ in range(spec.steps):
        op, operand = _choose_step(spec, value, rng)
        result = _apply(op, value, operand)
        steps.append({"op": op, "a": value, "b": operand, "result": result})
        sentences.append(rng.choice(_EVENTS[op]).format(name=name, item=item, n=operand))
        value = result
    sentences.append(f"How many {item} does {name} have now?")
    question = " ".join(sentences)
    key = f"L{level}:{steps[0]['a']}" + "".join(f"{s['op']}{s['b']}" for s in steps)
    split = _split_of(key)
    digest = hashlib.sha256(question.encode()).hexdigest()[:12]
    return Problem(
        id=f"arith:{split}/L{level}/{digest}",
        question=question,
        answer=str(value),
        source=f"arith:{split}",
        level=level,
        meta={"steps": steps, "key": key},
    )


def generate_arithmetic(level: int, rng: random.Random, split: str = "train") -> Problem:
    """Draw one problem of ``level`` (see :data:`LEVELS`) belonging to ``split``.

    ``rng`` is advanced; the same rng state always gives the same problem.
    """
    if level not in LEVELS:
        raise ValueError(f"unknown arithmetic level {level!r}; valid levels: {sorted(LEVELS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {list(SPLITS)}")
    while True:  # rejection sampling: about 1 draw in 10 lands in "test"
        problem = _draw(level, rng)
        if problem.source == f"arith:{split}":
            return problem


def write_solution(problem: Problem) -> str:
    """A correct COAT solution of an arithmetic problem, from its own steps, each worked in
    columns (see :mod:`satori_env.tasks.columns`)::

        <|continue|>52+83: 2+3=5, 5+8=13, so 52+83=135<|continue|>The answer is \\boxed{135}.
    """
    if "steps" not in problem.meta:
        raise ValueError(f"problem {problem.id} is not a procedural arithmetic problem (no meta['steps'])")
    steps = "".join(f"{CONTINUE}{work(s['a'], s['op'], s['b']).text}" for s in problem.meta["steps"])
    return f"{steps}{CONTINUE}The answer is \\boxed{{{problem.answer}}}."


class ArithmeticTasks:
    """An unlimited, seeded stream of arithmetic problems.

    Args:
        levels: levels to draw from (see :data:`LEVELS`), uniformly unless ``weights`` is given.
        split: "train" or "test" (disjoint arithmetic).
        seed: seed of the stream; the same seed gives the same sequence.
        weights: relative frequency of each level, same length as ``levels``.

    >>> tasks = ArithmeticTasks(levels=[1, 2], split="test", seed=0)
    >>> [p.level for p in tasks.take(4)] == [p.level for p in ArithmeticTasks([1, 2], "test", 0).take(4)]
    True
    """

    def __init__(
        self,
        levels: Sequence[int] = (1, 2, 3),
        split: str = "train",
        seed: int = 0,
        weights: Sequence[float] | None = None,
    ) -> None:
        self.levels = [int(level) for level in levels]
        if not self.levels or any(level not in LEVELS for level in self.levels):
            raise ValueError(f"levels must be a non-empty subset of {sorted(LEVELS)}, got {list(levels)!r}")
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; valid splits: {list(SPLITS)}")
        if weights is not None and (len(weights) != len(self.levels) or min(weights) < 0 or sum(weights) <= 0):
            raise ValueError(
                f"weights must be {len(self.levels)} non-negative numbers with a positive sum, got {weights!r}"
            )
        self.split = split
        self.weights = list(weights) if weights is not None else None
        self.rng = random.Random(seed)

    def sample(self, rng: random.Random | np.random.Generator | None = None) -> Problem:
        """Draw the next problem: from ``rng`` if given (a ``random.Random`` or a numpy
        ``Generator``, such as an environment's ``np_random``), else from the stream's own."""
        if isinstance(rng, np.random.Generator):
            rng = random.Random(int(rng.integers(2**63)))
        rng = self.rng if rng is None else rng
        level = rng.choices(self.levels, weights=self.weights)[0]
        return generate_arithmetic(level, rng, self.split)

    def take(self, n: int) -> list[Problem]:
        """The next ``n`` problems of the stream."""
        return [self.sample() for _ in range(n)]

    def __iter__(self) -> Iterator[Problem]:
        while True:
            yield self.sample()
