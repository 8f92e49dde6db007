"""The engine interface."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["GenerationEngine", "SamplingParams", "base_env", "forbidden_for_vocabulary", "forbidden_ids"]


@dataclass(frozen=True)
class SamplingParams:
    """How to sample.

    Attributes:
        max_new_tokens: most tokens written per prompt.
        temperature: 0 for greedy decoding.
        top_p: nucleus sampling threshold (1 keeps the whole distribution).
        seed: seed of the sampling (None: not reseeded).
        seed_per_prompt: prompt ``i`` of a call is sampled from its own stream, seeded with
            ``seed + i``: what it writes does not depend on the other prompts of the call, so
            a rollout split over workers (each given ``seed`` + its first prompt's index)
            writes what one process writes. The vLLM engine always seeds its requests so.
    """

    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    seed_per_prompt: bool = False

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 is greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.seed_per_prompt and self.seed is None:
            raise ValueError("seed_per_prompt needs a seed")


@runtime_checkable
class GenerationEngine(Protocol):
    """Writes completions for prompts given as token ids."""

    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[list[int]]:
        """One completion per prompt: the tokens written, through the first stop token."""
        ...

    def sync_weights(self) -> None:
        """Take the learner's current weights (a no-op for engines that share the model)."""
        ...


def base_env(env: Any) -> Any:
    """The single SatoriMath env behind ``env`` (a vector env's first copy, or the unwrapped env)."""
    return env.envs[0] if hasattr(env, "envs") else env.unwrapped


def forbidden_ids(model: Any, env: Any) -> list[int]:
    """Ids ``model`` must never write in ``env``: masked actions and ids beyond the action space."""
    return forbidden_for_vocabulary(env, model.get_output_embeddings().weight.shape[0])


def forbidden_for_vocabulary(env: Any, vocabulary_rows: int) -> list[int]:
    """Ids a model with ``vocabulary_rows`` output rows must never write in ``env``."""
    base = base_env(env)
    masked = [i for i, allowed in enumerate(base.action_masks()) if not allowed]
    return masked + list(range(base.num_actions, vocabulary_rows))
