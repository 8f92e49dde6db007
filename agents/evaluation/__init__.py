"""Evaluation of policies through the environment.

* :mod:`agents.evaluation.episodes`: :func:`evaluate` (an engine on problems or restart states:
  accuracy per level, well-formed COAT, lengths, meta-actions per episode) and
  :func:`self_correction` (repairs of injected slips).
* :mod:`agents.evaluation.benchmarks`: ``satori eval``, the math benchmarks by Satori's protocol
  (greedy pass@1, sampled pass@k and maj@k, the COAT analysis, reports).
* :mod:`agents.evaluation.metrics`: the pass@k estimator, majority vote by equivalence, answer
  changes at reflect/explore.
"""

from agents.evaluation.episodes import EvalResult, evaluate, self_correction

__all__ = ["EvalResult", "evaluate", "self_correction"]
