"""satori-env: Satori's Chain-of-Action-Thought reasoning as a Gymnasium MDP.

Public API (more arrives with the environment itself)::

    from satori_env import Problem, load_problems, list_sources, extract_answer, verify, verify_batch
"""

from satori_env.tasks import ArithmeticTasks, Problem, generate_arithmetic, list_sources, load_problems
from satori_env.verifier import Verdict, Verifier, VerifierStats, extract_answer, verify, verify_batch

__version__ = "0.1.0"

__all__ = [
    "ArithmeticTasks",
    "Problem",
    "Verdict",
    "Verifier",
    "VerifierStats",
    "extract_answer",
    "generate_arithmetic",
    "list_sources",
    "load_problems",
    "verify",
    "verify_batch",
]
