"""Curricula: which problem the next ``reset()`` serves, steered by the environment's own outcomes.

A curriculum is a problem source over named **arms** (each itself a problem source: an
arithmetic level, a dataset, a list of problems). On every reset the environment asks it for a
problem (:meth:`Curriculum.draw` picks an arm by the curriculum's current weights, then a
problem from the arm, with the environment's ``np_random``); when that episode ends the
environment reports its verdict (:meth:`Curriculum.update`). No trainer code is involved, so
every algorithm gets the curriculum for free; the copies of a vector env share one curriculum,
which sees every episode; episodes started from restart states are not the curriculum's and
are not reported to it.

Shipped strategies:

* :class:`FixedMix`: fixed weights over arms (levels, sources, or both);
  ``FixedMix.over_levels([1, 2, 3])`` is the uniform mix, ``FixedMix({"arith": ("arith:train",
  0.7), ...})`` a mixture of sources.
* :class:`AdaptiveCurriculum`: arms ordered from easy to hard and a *frontier* arm that most
  episodes come from (the rest review the easier arms); when the frontier's pass rate over its
  recent episodes rises above the target band the next arm becomes the frontier (promotion),
  when it falls below the band the previous one does (demotion), so the learner trains where
  its success rate sits inside the band.

A custom strategy subclasses :class:`Curriculum` and returns its arm weights from
:meth:`Curriculum.weights`; the base class tracks every arm's recent outcomes
(:meth:`Curriculum.pass_rates`) and saves and restores its state.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from satori_env._checks import brief
from satori_env.tasks.arithmetic import ArithmeticTasks
from satori_env.tasks.problem import Problem
from satori_env.tasks.sources import ProblemSource, make_source

__all__ = ["CURRICULA", "AdaptiveCurriculum", "Curriculum", "FixedMix", "make_curriculum"]


class Curriculum:
    """Base class: arms, outcome tracking, drawing, state. Subclasses define :meth:`weights`.

    Args:
        arms: arm name -> problem source (anything ``tasks=`` takes: a source name, a
            :class:`~satori_env.tasks.ProblemSource`, a list of problems), in order.
        window: recent outcomes kept per arm for its pass rate.
    """

    def __init__(self, arms: Mapping[str, str | ProblemSource | Iterable[Problem]], window: int = 64) -> None:
        if not arms:
            raise ValueError("a curriculum needs at least one arm (arm name -> problem source)")
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.arms: dict[str, ProblemSource] = {str(name): make_source(source) for name, source in arms.items()}
        self.window = window
        self._recent: dict[str, deque[bool]] = {name: deque(maxlen=window) for name in self.arms}
        self.served: dict[str, int] = dict.fromkeys(self.arms, 0)  # episodes drawn from each arm

    # -- the strategy (subclasses) -----------------------------------------------------------------

    def weights(self) -> Sequence[float]:
        """Relative frequency of each arm (in :attr:`arms` order) for the next draw."""
        raise NotImplementedError

    def on_outcome(self, arm: str, correct: bool) -> None:
        """Hook after an outcome was recorded (e.g. promote or demote)."""

    # -- what the environment calls ----------------------------------------------------------------

    def draw(self, rng: np.random.Generator) -> tuple[str, Problem]:
        """The arm and problem of the next episode."""
        names = list(self.arms)
        weights = np.asarray(self.weights(), dtype=float)
        if weights.shape != (len(names),) or (weights < 0).any() or not weights.sum() > 0:
            raise ValueError(
                f"{type(self).__name__}.weights() must give one non-negative weight per arm {names}, some positive; "
                f"got {weights.tolist()}"
            )
        arm = names[int(rng.choice(len(names), p=weights / weights.sum()))]
        self.served[arm] += 1
        return arm, self.arms[arm].sample(rng)

    def sample(self, rng: np.random.Generator) -> Problem:
        """A problem of the next episode (a curriculum is also a plain problem source)."""
        return self.draw(rng)[1]

    def update(self, arm: str, correct: bool) -> None:
        """Record how an episode served from ``arm`` ended."""
        if arm not in self._recent:
            raise KeyError(f"unknown arm {arm!r}; arms: {list(self.arms)}")
        self._recent[arm].append(bool(correct))
        self.on_outcome(arm, bool(correct))

    # -- reading it --------------------------------------------------------------------------------

    def pass_rates(self) -> dict[str, float | None]:
        """Each arm's share of right answers over its recent episodes (None: none yet)."""
        return {name: (float(np.mean(recent)) if recent else None) for name, recent in self._recent.items()}

    def distribution(self) -> dict[str, float]:
        """Each arm's probability at the next draw."""
        weights = np.asarray(self.weights(), dtype=float)
        return dict(zip(self.arms, (weights / weights.sum()).tolist()))

    # -- checkpoints -------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything that steers the next draws (JSON-serialisable)."""
        return {"recent": {name: list(recent) for name, recent in self._recent.items()}, "served": dict(self.served)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned. Every field is checked before any is
        applied (``ValueError`` names the bad one): a bad state changes nothing."""
        for name, value in self._check_state(state).items():
            setattr(self, name, value)

    def _check_state(self, state: Any) -> dict[str, Any]:
        """The attributes a state sets, checked; subclasses add theirs."""
        if not isinstance(state, Mapping) or not {"recent", "served"} <= set(state):
            raise ValueError(
                f"a curriculum state is a dict with 'recent' and 'served' (from state_dict()), got {brief(state)}"
            )
        recent, served = state["recent"], state["served"]
        for field, value in (("recent", recent), ("served", served)):
            if not isinstance(value, Mapping) or set(value) != set(self.arms):
                got = sorted(map(str, value)) if isinstance(value, Mapping) else value
                raise ValueError(
                    f"curriculum state {field!r} must have this curriculum's arms {sorted(self.arms)}, got {brief(got)}"
                )
        for name, outcomes in recent.items():
            if not isinstance(outcomes, (list, tuple)) or not all(isinstance(o, bool) for o in outcomes):
                raise ValueError(
                    f"curriculum state 'recent' of arm {name!r} must be a list of bools, got {brief(outcomes)}"
                )
        for name, count in served.items():
            if not _is_count(count):
                raise ValueError(f"curriculum state 'served' of arm {name!r} must be an int >= 0, got {brief(count)}")
        return {
            "_recent": {name: deque(recent[name], maxlen=self.window) for name in self.arms},
            "served": {name: int(served[name]) for name in self.arms},
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(arms={list(self.arms)})"


def _level_arms(levels: Sequence[int], split: str) -> dict[str, ArithmeticTasks]:
    return {f"L{level}": ArithmeticTasks(levels=[level], split=split) for level in levels}


class FixedMix(Curriculum):
    """Fixed weights over arms.

    Args:
        arms: arm name -> source, or arm name -> (source, weight).
        weights: arm name -> weight (default: the weights given with the arms, else uniform).
        window: recent outcomes kept per arm (for :meth:`pass_rates` only).
    """

    def __init__(self, arms: Mapping[str, Any], weights: Mapping[str, float] | None = None, window: int = 64) -> None:
        sources = {name: (spec[0] if isinstance(spec, tuple) else spec) for name, spec in arms.items()}
        given = {name: float(spec[1]) for name, spec in arms.items() if isinstance(spec, tuple)}
        super().__init__(sources, window)
        weights = dict(weights if weights is not None else given)
        unknown = set(weights) - set(self.arms)
        if unknown:
            raise ValueError(f"weights for unknown arm(s) {sorted(unknown)}; arms: {list(self.arms)}")
        self._weights = [weights.get(name, 0.0 if weights else 1.0) for name in self.arms]
        if any(w < 0 for w in self._weights) or not sum(self._weights) > 0:
            raise ValueError(
                f"weights must be non-negative with a positive sum, got {dict(zip(self.arms, self._weights))}"
            )

    @classmethod
    def over_levels(
        cls, levels: Sequence[int] = (1, 2, 3), weights: Sequence[float] | None = None, split: str = "train"
    ) -> FixedMix:
        """Arithmetic levels as arms ``L1``, ``L2``, ...; uniform unless ``weights`` are given."""
        arms = _level_arms(levels, split)
        return cls(arms, None if weights is None else dict(zip(arms, weights)))

    def weights(self) -> list[float]:
        return self._weights


class AdaptiveCurriculum(Curriculum):
    """Keep the learner where its pass rate sits in ``band``, by promoting and demoting a frontier.

    Args:
        arms: arm name -> source, ordered from easiest to hardest.
        band: (low, high) target pass rate of the frontier arm.
        window: recent outcomes per arm that its pass rate is measured over.
        min_episodes: outcomes on the frontier, since it became the frontier, before it may move.
        review: share of episodes drawn (uniformly) from the arms easier than the frontier.
        start: index of the first frontier arm.
    """

    def __init__(
        self,
        arms: Mapping[str, Any],
        band: tuple[float, float] = (0.2, 0.8),
        window: int = 64,
        min_episodes: int = 32,
        review: float = 0.2,
        start: int = 0,
    ) -> None:
        super().__init__(arms, window)
        low, high = band
        if not 0 <= low < high <= 1:
            raise ValueError(f"band must be (low, high) with 0 <= low < high <= 1, got {band!r}")
        if not 1 <= min_episodes <= window:
            raise ValueError(f"min_episodes must be in [1, window={window}], got {min_episodes}")
        if not 0 <= review < 1:
            raise ValueError(f"review must be in [0, 1), got {review}")
        if not 0 <= start < len(self.arms):
            raise ValueError(f"start must index one of the {len(self.arms)} arms, got {start}")
        self.band, self.min_episodes, self.review = (float(low), float(high)), min_episodes, review
        self.frontier, self.since_move = start, 0
        self.promotions, self.demotions = 0, 0

    @classmethod
    def over_levels(cls, levels: Sequence[int] = (1, 2, 3), split: str = "train", **options: Any) -> AdaptiveCurriculum:
        """Arithmetic levels as arms ``L1``, ``L2``, ... (easiest first)."""
        return cls(_level_arms(sorted(levels), split), **options)

    @property
    def frontier_arm(self) -> str:
        return list(self.arms)[self.frontier]

    def weights(self) -> list[float]:
        easier = self.frontier
        weights = [0.0] * len(self.arms)
        weights[self.frontier] = 1.0 - (self.review if easier else 0.0)
        for index in range(easier):
            weights[index] = self.review / easier
        return weights

    def on_outcome(self, arm: str, correct: bool) -> None:
        if arm != self.frontier_arm:
            return
        self.since_move += 1
        if self.since_move < self.min_episodes:
            return
        recent = self._recent[arm]
        rate = float(np.mean(list(recent)[-self.since_move :]))  # outcomes since it became the frontier
        low, high = self.band
        if rate > high and self.frontier < len(self.arms) - 1:
            self.frontier, self.since_move, self.promotions = self.frontier + 1, 0, self.promotions + 1
        elif rate < low and self.frontier > 0:
            self.frontier, self.since_move, self.demotions = self.frontier - 1, 0, self.demotions + 1

    def state_dict(self) -> dict[str, Any]:
        moves = {
            "frontier": self.frontier,
            "since_move": self.since_move,
            "promotions": self.promotions,
            "demotions": self.demotions,
        }
        return {**super().state_dict(), **moves}

    def _check_state(self, state: Any) -> dict[str, Any]:
        checked = super()._check_state(state)
        moves = {name: state.get(name) for name in ("frontier", "since_move", "promotions", "demotions")}
        for name, value in moves.items():
            if not _is_count(value):
                raise ValueError(f"adaptive curriculum state {name!r} must be an int >= 0, got {brief(value)}")
        if moves["frontier"] >= len(self.arms):
            raise ValueError(
                f"adaptive curriculum state 'frontier' must index one of the {len(self.arms)} arms, got "
                f"{moves['frontier']}"
            )
        return {**checked, **moves}


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


CURRICULA = {"uniform": FixedMix.over_levels, "adaptive": AdaptiveCurriculum.over_levels}
"""Curriculum names ``curriculum=`` takes; each builds its strategy over arithmetic levels."""


def make_curriculum(spec: str | Curriculum, tasks: Any = None) -> Curriculum:
    """The curriculum ``spec`` names (over the levels and split of ``tasks`` when it is an
    :class:`~satori_env.tasks.ArithmeticTasks`, else arithmetic levels 1-3, train split), or
    ``spec`` itself when it is a :class:`Curriculum`."""
    if isinstance(spec, Curriculum):
        return spec
    if spec not in CURRICULA:
        raise ValueError(
            f"unknown curriculum {spec!r}; valid curricula: {sorted(CURRICULA)} or a satori_env.Curriculum"
        )
    if tasks is None:
        return CURRICULA[spec]()
    if isinstance(tasks, ArithmeticTasks):
        return CURRICULA[spec](levels=tasks.levels, split=tasks.split)
    raise ValueError(
        f"curriculum={spec!r} builds its arms from arithmetic levels; tasks={tasks!r} has none. "
        "Pass tasks=None or an ArithmeticTasks, or pass a Curriculum over your own arms "
        "(e.g. FixedMix({'arith': ('arith:train', 0.7), 'gsm8k': ('gsm8k:train', 0.3)}))"
    )
