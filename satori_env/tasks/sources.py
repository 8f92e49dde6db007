"""What an environment draws its problems from: anything with ``sample(np_random) -> Problem``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from satori_env.tasks.arithmetic import LEVELS, SPLITS, ArithmeticTasks
from satori_env.tasks.problem import Problem

__all__ = ["FixedProblems", "ProblemSource", "make_source"]


@runtime_checkable
class ProblemSource(Protocol):
    """A source of problems for ``reset()``: finite lists and unlimited generators alike."""

    def sample(self, rng: np.random.Generator) -> Problem:
        """Draw one problem using ``rng`` (the environment's ``np_random``)."""
        ...


class FixedProblems:
    """A finite list of problems, drawn uniformly with replacement."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        if not self.problems:
            raise ValueError("tasks must contain at least one Problem")
        for index, problem in enumerate(self.problems):
            if not isinstance(problem, Problem):
                raise TypeError(f"tasks[{index}] must be a satori_env.Problem, got {type(problem).__name__}")

    def sample(self, rng: np.random.Generator) -> Problem:
        return self.problems[int(rng.integers(len(self.problems)))]

    def __len__(self) -> int:
        return len(self.problems)


def make_source(tasks: str | ProblemSource | Iterable[Problem] | None) -> ProblemSource:
    """The problem source for ``tasks``:

    * None: procedural arithmetic, levels 1-3, train split (what a tiny model learns);
    * a name from :func:`satori_env.list_sources` (``"arith:train"`` mixes all arithmetic levels);
    * an object with ``sample(np_random)`` (e.g. :class:`ArithmeticTasks`), used as is;
    * an iterable of :class:`Problem`.
    """
    from satori_env.tasks import load_problems

    if tasks is None:
        return ArithmeticTasks(levels=(1, 2, 3), split="train")
    if isinstance(tasks, str):
        if tasks in {f"arith:{split}" for split in SPLITS}:
            return ArithmeticTasks(levels=sorted(LEVELS), split=tasks.split(":")[1])
        return FixedProblems(load_problems(tasks))
    if isinstance(tasks, ProblemSource):
        return tasks
    if isinstance(tasks, Iterable):
        return FixedProblems(list(tasks))
    raise TypeError(
        "tasks must be None, a source name, an object with sample(np_random), or an iterable of "
        f"Problem; got {type(tasks).__name__}"
    )
