"""What the framework adapters share: where an episode starts and its outcome as plain numbers."""

from __future__ import annotations

from typing import Any

import numpy as np

from satori_env.restart import RestartBuffer
from satori_env.tasks import Problem

__all__ = ["outcome", "start_of"]


def start_of(
    problem: Problem, buffer: RestartBuffer | None, restart_prob: float, rng: np.random.Generator
) -> dict[str, Any]:
    """Reset options for an episode of ``problem``: with probability ``restart_prob``, and when
    the buffer holds one, a restart state of that problem (Restart-and-Explore: the framework's
    sampler keeps choosing the problems); otherwise the problem's prompt."""
    if buffer is not None and restart_prob > 0 and rng.random() < restart_prob:
        state = buffer.sample_of(problem.id, rng)
        if state is not None:
            return {"restart_state": state}
    return {"problem": problem}


def outcome(reward: float, info: dict[str, Any]) -> dict[str, Any]:
    """A finished episode as plain numbers: the reward, each reward term, the verdict, COAT
    actions, length and restart."""
    return {
        "reward": float(reward),
        "reward_terms": {name: float(value) for name, value in info["reward_terms"].items()},
        "correct": bool(info["correct"]),
        "verifier_status": str(info["verifier_status"]),
        "actions": {name: int(count) for name, count in info["actions"].items()},
        "num_new_tokens": int(info["num_new_tokens"]),
        "from_restart": bool(info["restart"]["from_restart"]),
        "reflect_status": int(info["restart"]["reflect_status"]),
    }
