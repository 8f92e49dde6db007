"""RL algorithms, one file each, behind :class:`~agents.algorithms.base.Algorithm`; ``ALGORITHMS``
maps ``satori train --algo NAME`` to the class."""

from agents.algorithms.base import ALGORITHMS, Advantages, Algorithm, Minibatch, Scores, register
from agents.algorithms.grpo import GRPO
from agents.algorithms.ppo import PPO
from agents.algorithms.reinforce_pp import ReinforcePlusPlus
from agents.algorithms.rloo import RLOO

__all__ = [
    "ALGORITHMS",
    "GRPO",
    "PPO",
    "RLOO",
    "Advantages",
    "Algorithm",
    "Minibatch",
    "ReinforcePlusPlus",
    "Scores",
    "register",
]
