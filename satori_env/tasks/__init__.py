"""Problem sources: vendored benchmarks and procedural arithmetic, behind one name scheme.

Names are ``source[:split]``; :func:`list_sources` gives them all::

    load_problems("gsm8k:test")                      # 1319 problems
    load_problems("math500", level=5)                # MATH500 level-5 problems
    load_problems("arith:test", level=2, limit=200)  # 200 held-out level-2 arithmetic problems
"""

from __future__ import annotations

from satori_env.tasks.arithmetic import LEVELS, SPLITS, ArithmeticLevel, ArithmeticTasks, generate_arithmetic
from satori_env.tasks.datasets import DATASETS, load_dataset
from satori_env.tasks.problem import Problem
from satori_env.tasks.sources import FixedProblems, ProblemSource, make_source

__all__ = [
    "LEVELS",
    "ArithmeticLevel",
    "ArithmeticTasks",
    "FixedProblems",
    "Problem",
    "ProblemSource",
    "generate_arithmetic",
    "list_sources",
    "load_problems",
    "make_source",
]

_ARITH_DEFAULT_LIMIT = 1000


def list_sources() -> list[str]:
    """Every name :func:`load_problems` accepts."""
    return sorted([*DATASETS, *(f"arith:{split}" for split in SPLITS)])


def _resolve(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"a source name must be a str, got {type(name).__name__}")
    if name in DATASETS or name in {f"arith:{split}" for split in SPLITS}:
        return name
    if name.endswith(":test") and name[: -len(":test")] in DATASETS:  # "math500:test" == "math500"
        return name[: -len(":test")]
    splits = [source for source in list_sources() if source.startswith(f"{name}:")]
    if splits:
        raise ValueError(f"{name!r} has several splits; choose one of {splits}")
    raise ValueError(f"unknown problem source {name!r}; valid names: {', '.join(list_sources())}")


def load_problems(
    name: str,
    *,
    level: int | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> list[Problem]:
    """Load problems by source name.

    Args:
        name: one of :func:`list_sources` (e.g. ``"gsm8k:test"``, ``"math500"``, ``"arith:train"``).
        level: keep only problems of this difficulty level (MATH500: 1-5; arithmetic: 1-6).
            For arithmetic without ``level``, levels are mixed uniformly.
        limit: at most this many problems (the first ones, in file order). Arithmetic sources
            are unlimited, so they default to 1000.
        seed: seed of the arithmetic stream (benchmarks ignore it).

    Raises:
        ValueError: unknown name (the message lists the valid ones) or bad level/limit.
    """
    source = _resolve(name)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be a non-negative int or None, got {limit!r}")
    if source.startswith("arith:"):
        levels = sorted(LEVELS) if level is None else [level]
        if level is not None and level not in LEVELS:
            raise ValueError(f"arithmetic level must be one of {sorted(LEVELS)}, got {level!r}")
        count = _ARITH_DEFAULT_LIMIT if limit is None else limit
        return ArithmeticTasks(levels, split=source.split(":")[1], seed=seed).take(count)
    problems = [p for p in load_dataset(source) if level is None or p.level == level]
    if level is not None and not problems:
        levels = sorted({p.level for p in load_dataset(source) if p.level is not None})
        raise ValueError(f"{source} has no problems of level {level!r}; its levels: {levels or 'none'}")
    return problems if limit is None else problems[:limit]
