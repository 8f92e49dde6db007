"""What ``satori train`` logs about each iteration's episodes (TensorBoard and ``metrics.json``)."""

from __future__ import annotations

import numpy as np

from agents.rollout import Rollout
from satori_env import AdaptiveCurriculum
from satori_env.coat import META_ACTIONS

__all__ = ["curriculum_metrics", "rollout_metrics"]


def rollout_metrics(rollout: Rollout) -> dict[str, float]:
    """What the environment reported about the rollout, averaged: reward terms, accuracy, COAT
    actions per episode, restarts and self-correction, response length."""
    infos = rollout.infos
    metrics = {
        "reward/total": float(rollout.rewards.mean()),
        "rollout/accuracy": float(np.mean([i["correct"] for i in infos])),
    }
    for term in infos[0]["reward_terms"]:
        metrics[f"reward/{term}"] = float(np.mean([i["reward_terms"][term] for i in infos]))
    for action in META_ACTIONS:
        metrics[f"coat/{action}_per_episode"] = float(np.mean([i["actions"][action] for i in infos]))
    metrics["rollout/response_length"] = float(np.mean([i["num_new_tokens"] for i in infos]))
    status = np.array([i["restart"]["reflect_status"] for i in infos])
    correct = np.array([bool(i["correct"]) for i in infos])
    metrics["restart/fraction"] = float(np.mean(status != 0))
    metrics["restart/skipped"] = float(np.mean([i["restart"]["skipped"] for i in infos]))  # too long for the window
    if (status == -1).any():
        metrics["coat/self_correction_rate"] = float(correct[status == -1].mean())  # wrong prefix -> right answer
    if (status == 1).any():
        metrics["coat/kept_right_rate"] = float(correct[status == 1].mean())
    return metrics


def curriculum_metrics(curriculum, rollout: Rollout) -> dict[str, float]:
    """The rollout's share of episodes from each arm (the level distribution over time), each
    arm's recent pass rate, and an adaptive curriculum's frontier."""
    arms = [info["curriculum_arm"] for info in rollout.infos]
    metrics = {f"curriculum/share_{arm}": arms.count(arm) / len(arms) for arm in curriculum.arms}
    rates = curriculum.pass_rates()
    metrics.update({f"curriculum/pass_rate_{arm}": rate for arm, rate in rates.items() if rate is not None})
    if isinstance(curriculum, AdaptiveCurriculum):
        metrics["curriculum/frontier"] = float(curriculum.frontier)
    return metrics
