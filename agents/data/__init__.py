"""Training data for the agents: COAT demonstration synthesis (see :mod:`agents.data.synth`)."""

from agents.data.synth import DEFAULT_MIX, KINDS, Demonstration, read_demos, synthesize, write_demos

__all__ = ["DEFAULT_MIX", "KINDS", "Demonstration", "read_demos", "synthesize", "write_demos"]
