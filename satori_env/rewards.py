"""Reward terms and their composition.

A reward term sees the finished :class:`Episode` and returns a float; a :class:`RewardSpec`
composes named terms with weights. The environment puts every weighted term in
``info["reward_terms"]`` at the end of an episode, and the step reward is their sum.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from satori_env.tasks.problem import Problem

__all__ = ["REWARD_PRESETS", "Episode", "RewardSpec", "binary_reward", "make_reward", "rule_reward"]


@dataclass(frozen=True)
class Episode:
    """A finished episode, as reward terms see it.

    Attributes:
        problem: the problem it answered (``problem.answer`` is the gold answer).
        completion: the decoded text the policy wrote (without the final EOS).
        answer: the extracted final answer, or None.
        correct: whether the verifier accepted ``answer``.
        verifier_status: "ok", "no_answer", "timeout" or "error" (see :class:`satori_env.Verdict`).
        actions: how often each COAT meta-action was written, e.g. ``{"continue": 3, ...}``.
        num_tokens: tokens the policy wrote, EOS included.
        truncated: the episode hit the token limit instead of ending with EOS.
    """

    problem: Problem
    completion: str
    answer: str | None
    correct: bool
    verifier_status: str
    actions: Mapping[str, int]
    num_tokens: int
    truncated: bool


RewardTerm = Callable[[Episode], float]


def rule_reward(episode: Episode) -> float:
    """Satori's rule-based reward: the verifier's 0/1 minus 1 (correct 0, wrong -1)."""
    return 0.0 if episode.correct else -1.0


def binary_reward(episode: Episode) -> float:
    """1 for a correct final answer, else 0."""
    return 1.0 if episode.correct else 0.0


@dataclass(frozen=True)
class RewardSpec:
    """Named reward terms with weights: ``RewardSpec({"rule": (rule_reward, 1.0)})``."""

    terms: Mapping[str, tuple[RewardTerm, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.terms:
            raise ValueError("a RewardSpec needs at least one term")
        for name, entry in self.terms.items():
            if not (isinstance(entry, tuple) and len(entry) == 2 and callable(entry[0])):
                raise TypeError(f"reward term {name!r} must be a (callable, weight) pair, got {entry!r:.80}")

    def __call__(self, episode: Episode) -> dict[str, float]:
        """Each term's weighted value, by name (the reward is their sum)."""
        return {name: float(weight) * float(term(episode)) for name, (term, weight) in self.terms.items()}


REWARD_PRESETS: dict[str, Callable[[], RewardSpec]] = {
    "satori": lambda: RewardSpec({"rule": (rule_reward, 1.0)}),
    "binary": lambda: RewardSpec({"correct": (binary_reward, 1.0)}),
}


def make_reward(reward: str | RewardSpec | None) -> RewardSpec:
    """The reward for ``reward``: None -> "satori"; a preset name; or a :class:`RewardSpec`."""
    if reward is None:
        reward = "satori"
    if isinstance(reward, RewardSpec):
        return reward
    if isinstance(reward, str) and reward in REWARD_PRESETS:
        return REWARD_PRESETS[reward]()
    raise ValueError(f"unknown reward {reward!r}; valid presets: {sorted(REWARD_PRESETS)}, or a RewardSpec")
