"""satori-env: Satori's Chain-of-Action-Thought reasoning as a Gymnasium MDP.

import gymnasium as gym
import satori_env  # registers SatoriMath-v0 and its variants

env = gym.make("SatoriMath-v0")
"""

from gymnasium.envs.registration import register

from satori_env.answers import extract_answer
from satori_env.coat import CONTINUE, EXPLORE, META_ACTIONS, PROMPT_TEMPLATES, REFLECT, PromptTemplate
from satori_env.curriculum import CURRICULA, AdaptiveCurriculum, Curriculum, FixedMix, make_curriculum
from satori_env.env import SatoriMathEnv
from satori_env.restart import RestartBuffer, RestartState, Trajectory
from satori_env.rewards import Episode, LengthPenalty, PreferenceBonus, ReflectionBonus, RewardSpec
from satori_env.tasks import ArithmeticTasks, Problem, generate_arithmetic, list_sources, load_problems
from satori_env.vector import SatoriMathVectorEnv
from satori_env.verifier import Verdict, Verifier, VerifierStats, verify, verify_batch

ENV_IDS: dict[str, dict] = {
    "SatoriMath-v0": {},  # procedural arithmetic, levels 1-3, shipped tokenizer
    "SatoriMath-GSM8K-v0": {"tasks": "gsm8k:train"},
    "SatoriMath-GSM8K-test-v0": {"tasks": "gsm8k:test"},
    "SatoriMath-MATH500-v0": {"tasks": "math500", "max_new_tokens": 1024},
}
for _env_id, _kwargs in ENV_IDS.items():
    register(
        id=_env_id,
        entry_point="satori_env.env:SatoriMathEnv",
        vector_entry_point="satori_env.vector:SatoriMathVectorEnv",
        kwargs=_kwargs,
    )

__version__ = "0.1.0"

__all__ = [
    "CONTINUE",
    "CURRICULA",
    "ENV_IDS",
    "EXPLORE",
    "META_ACTIONS",
    "PROMPT_TEMPLATES",
    "REFLECT",
    "AdaptiveCurriculum",
    "ArithmeticTasks",
    "Curriculum",
    "Episode",
    "FixedMix",
    "LengthPenalty",
    "PreferenceBonus",
    "Problem",
    "PromptTemplate",
    "ReflectionBonus",
    "RestartBuffer",
    "RestartState",
    "RewardSpec",
    "SatoriMathEnv",
    "SatoriMathVectorEnv",
    "Trajectory",
    "Verdict",
    "Verifier",
    "VerifierStats",
    "extract_answer",
    "generate_arithmetic",
    "list_sources",
    "load_problems",
    "make_curriculum",
    "verify",
    "verify_batch",
]
