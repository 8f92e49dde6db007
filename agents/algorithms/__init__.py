"""RL algorithms, one file each, behind :class:`~agents.algorithms.base.Algorithm`; ``ALGORITHMS``
maps ``satori train --algo NAME`` to the class."""

from agents.algorithms.base import ALGORITHMS, Algorithm, Minibatch, register
from agents.algorithms.ppo import PPO

__all__ = ["ALGORITHMS", "PPO", "Algorithm", "Minibatch", "register"]
