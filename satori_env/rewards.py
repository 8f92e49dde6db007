"""Reward terms and their composition.

A reward term sees a finished :class:`Episode` and returns a float: a plain function
``f(episode) -> float`` will do, and an object may also offer ``batch(episodes) -> list[float]``
(a neural scorer does: the vector env scores every episode that ends in a step at once). A
:class:`RewardSpec` composes named terms with weights; the environment puts every weighted term
in ``info["reward_terms"]`` at the end of an episode, and the step reward is their sum.

Presets (``gym.make(..., reward=...)``):

* ``"satori"`` (default): Satori's rule reward (the verifier's 0/1 minus 1) plus the reflection
  bonus (scale 0.5), plus the preference bonus sigmoid(scorer) when a ``scorer`` is given;
* ``"binary"``: 1 for a correct answer, else 0.

A list of term names (``["rule", "format"]``, weight 1 each) or a dict
(``{"rule": 1.0, "format": 0.1, "mine": (my_term, 0.5)}``) makes a custom mix; :data:`TERMS`
lists the names.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from satori_env._checks import brief
from satori_env.coat import is_well_formed
from satori_env.tasks.problem import Problem

__all__ = [
    "REWARD_PRESETS",
    "TERMS",
    "Episode",
    "LengthPenalty",
    "PreferenceBonus",
    "ReflectionBonus",
    "RewardSpec",
    "binary_reward",
    "format_reward",
    "make_reward",
    "rule_reward",
]


@dataclass(frozen=True)
class Episode:
    """A finished episode, as reward terms see it.

    Attributes:
        problem: the problem it answered (``problem.answer`` is the gold answer).
        completion: the whole response after the problem's prompt (a restart prefix included),
            without the final stop token.
        answer: the extracted final answer, or None.
        correct: whether the verifier accepted ``answer``.
        verifier_status: "ok", "no_answer", "timeout" or "error" (see :class:`satori_env.Verdict`).
        actions: how often each COAT meta-action occurs in ``completion``.
        num_tokens: tokens the policy wrote in this episode (after any restart prefix), the
            final stop token (EOS) included when it ended with one.
        truncated: the episode hit the token limit instead of ending with a stop token.
        reflect_status: 0 for an episode from the problem's prompt; for one restarted from an
            earlier trajectory's prefix, -1 if that trajectory was wrong and +1 if right.
    """

    problem: Problem
    completion: str
    answer: str | None
    correct: bool
    verifier_status: str
    actions: Mapping[str, int]
    num_tokens: int
    truncated: bool
    reflect_status: int = 0


RewardTerm = Callable[[Episode], float]


def rule_reward(episode: Episode) -> float:
    """Satori's rule-based reward: the verifier's 0/1 minus 1 (correct 0, wrong -1)."""
    return 0.0 if episode.correct else -1.0


def binary_reward(episode: Episode) -> float:
    """1 for a correct final answer, else 0."""
    return 1.0 if episode.correct else 0.0


def format_reward(episode: Episode) -> float:
    """0 for a well-formed COAT response (:func:`satori_env.coat.is_well_formed`), else -1."""
    return 0.0 if is_well_formed(episode.completion) else -1.0


@dataclass(frozen=True)
class ReflectionBonus:
    """Satori's reflection bonus, as in its release, for restarted episodes:

    * restarted from a *wrong* trajectory (reflect_status -1): +scale if the answer is now correct;
    * restarted from a *right* trajectory (reflect_status +1): -scale if the answer is now wrong;
    * otherwise (fixed nothing, broke nothing, or not a restart): 0.
    """

    scale: float = 0.5

    def __call__(self, episode: Episode) -> float:
        if episode.reflect_status == -1 and episode.correct:
            return self.scale
        if episode.reflect_status == 1 and not episode.correct:
            return -self.scale
        return 0.0


@dataclass(frozen=True)
class LengthPenalty:
    """``-min(num_tokens / budget, 1)``: longer responses cost more, up to -1 at the budget."""

    budget: int = 256

    def __post_init__(self) -> None:
        if self.budget < 1:
            raise ValueError(f"LengthPenalty budget must be >= 1, got {self.budget}")

    def __call__(self, episode: Episode) -> float:
        return -min(episode.num_tokens / self.budget, 1.0)


Scorer = Callable[[Problem, str], float]


class PreferenceBonus:
    """An outcome reward model's opinion as a bonus: ``sigmoid(scorer(problem, completion))``,
    as Satori adds its ORM's score (``squash=None`` gives the raw score).

    ``scorer`` is any callable ``(problem, completion) -> float``; one with a
    ``score_batch(problems, completions) -> list[float]`` method is called once per batch
    (``agents.reward_model.OutcomeRewardModel`` is the shipped one).
    """

    def __init__(self, scorer: Scorer, squash: str | None = "sigmoid") -> None:
        if not callable(scorer):
            raise TypeError(
                f"a preference scorer must be callable (problem, completion) -> float, got {type(scorer).__name__}"
            )
        if squash not in ("sigmoid", None):
            raise ValueError(f"squash must be 'sigmoid' or None, got {squash!r}")
        self.scorer, self.squash = scorer, squash

    def _squash(self, score: float) -> float:
        return 1.0 / (1.0 + math.exp(-score)) if self.squash == "sigmoid" else float(score)

    def __call__(self, episode: Episode) -> float:
        return self._squash(float(self.scorer(episode.problem, episode.completion)))

    def batch(self, episodes: Sequence[Episode]) -> list[float]:
        score_batch = getattr(self.scorer, "score_batch", None)
        if score_batch is None:
            return [self(episode) for episode in episodes]
        scores = score_batch([e.problem for e in episodes], [e.completion for e in episodes])
        return [self._squash(float(s)) for s in scores]


TERMS: dict[str, Callable[[], RewardTerm]] = {
    "rule": lambda: rule_reward,
    "correct": lambda: binary_reward,
    "reflection": ReflectionBonus,
    "format": lambda: format_reward,
    "length": LengthPenalty,
}
"""Term names usable in a list or dict ``reward`` (each builds the term with its defaults)."""


@dataclass(frozen=True)
class RewardSpec:
    """Named reward terms with weights: ``RewardSpec({"rule": (rule_reward, 1.0)})``."""

    terms: Mapping[str, tuple[RewardTerm, float]]

    def __post_init__(self) -> None:
        if not self.terms:
            raise ValueError("a RewardSpec needs at least one term")
        for name, entry in self.terms.items():
            if not (isinstance(entry, tuple) and len(entry) == 2 and callable(entry[0])):
                raise TypeError(f"reward term {name!r} must be a (callable, weight) pair, got {entry!r:.80}")

    def __call__(self, episode: Episode) -> dict[str, float]:
        """Each term's weighted value, by name (the reward is their sum)."""
        return self.batch([episode])[0]

    def batch(self, episodes: Sequence[Episode]) -> list[dict[str, float]]:
        """:meth:`__call__` for many episodes; terms with a ``batch`` method are called once."""
        values: dict[str, list[float]] = {}
        for name, (term, weight) in self.terms.items():
            batch = getattr(term, "batch", None)
            raw = list(batch(episodes) if batch is not None else [term(e) for e in episodes])
            if len(raw) != len(episodes):
                raise ValueError(f"reward term {name!r} gave {len(raw)} values for {len(episodes)} episodes")
            values[name] = [float(weight) * _number(name, v) for v in raw]
        return [{name: values[name][i] for name in self.terms} for i in range(len(episodes))]


def _number(term: str, value: Any) -> float:
    """A term's value as a float; a value that is not a finite number names the term."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, str) or not math.isfinite(number):
        raise TypeError(f"reward term {term!r} must return a finite number, got {type(value).__name__}: {brief(value)}")
    return number


def _satori(scorer: Scorer | None, bonus_scale: float) -> RewardSpec:
    terms: dict[str, tuple[RewardTerm, float]] = {
        "rule": (rule_reward, 1.0),
        "reflection": (ReflectionBonus(bonus_scale), 1.0),
    }
    if scorer is not None:
        terms["preference"] = (PreferenceBonus(scorer), 1.0)
    return RewardSpec(terms)


REWARD_PRESETS: dict[str, Callable[[Scorer | None, float], RewardSpec]] = {
    "satori": _satori,
    "binary": lambda scorer, bonus_scale: RewardSpec({"correct": (binary_reward, 1.0)}),
}
"""Preset name -> builder ``(scorer, bonus_scale) -> RewardSpec``."""


def _term(name: str, entry: Any, scorer: Scorer | None, bonus_scale: float) -> tuple[RewardTerm, float]:
    if isinstance(entry, tuple):
        if len(entry) == 2 and callable(entry[0]) and isinstance(entry[1], (int, float)):
            return entry[0], float(entry[1])
        raise TypeError(f"reward term {name!r}: a tuple must be (callable, weight), got {entry!r:.80}")
    if callable(entry):
        return entry, 1.0
    if isinstance(entry, (int, float)) and not isinstance(entry, bool):
        if name == "preference":
            if scorer is None:
                raise ValueError("the 'preference' term needs a scorer: pass scorer=... to the environment")
            return PreferenceBonus(scorer), float(entry)
        if name not in TERMS:
            raise ValueError(
                f"unknown reward term {name!r}; valid names: {sorted([*TERMS, 'preference'])}, or give (callable, "
                f"weight)"
            )
        return (ReflectionBonus(bonus_scale) if name == "reflection" else TERMS[name]()), float(entry)
    raise TypeError(f"reward term {name!r} must be a weight, a callable or (callable, weight), got {entry!r:.80}")


def make_reward(
    reward: str | Iterable[str] | Mapping[str, Any] | RewardSpec | None,
    scorer: Scorer | None = None,
    bonus_scale: float = 0.5,
) -> RewardSpec:
    """The :class:`RewardSpec` for ``reward``: None ("satori"), a preset name, a list of term
    names, a dict of term name -> weight / callable / (callable, weight), or a RewardSpec (as
    it is). ``scorer`` is the outcome reward model for the preference bonus; ``bonus_scale``
    the scale of the reflection bonus a preset or a ``"reflection"`` term gets (Satori: 0.5)."""
    if isinstance(bonus_scale, bool) or not isinstance(bonus_scale, (int, float)) or not bonus_scale >= 0:
        raise ValueError(f"bonus_scale must be a number >= 0, got {bonus_scale!r}")
    if reward is None:
        reward = "satori"
    if isinstance(reward, RewardSpec):
        return reward
    if isinstance(reward, str):
        if reward not in REWARD_PRESETS:
            raise ValueError(
                f"unknown reward {reward!r}; valid presets: {sorted(REWARD_PRESETS)}, or a list/dict of terms"
            )
        return REWARD_PRESETS[reward](scorer, bonus_scale)
    if isinstance(reward, Mapping):
        return RewardSpec({name: _term(name, entry, scorer, bonus_scale) for name, entry in reward.items()})
    if isinstance(reward, Iterable):
        return RewardSpec({name: _term(name, 1.0, scorer, bonus_scale) for name in reward})
    raise TypeError(
        f"reward must be None, a preset name, a list or dict of terms, or a RewardSpec; got {type(reward).__name__}"
    )
