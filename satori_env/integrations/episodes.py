"""What the framework adapters share: where an episode starts, its outcome as plain numbers, and,
for the frameworks whose rollouts are coroutines (verl, OpenRLHF), a pool of environments that
plays one episode around the framework's own generation call."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from satori_env.env import SatoriMathEnv
from satori_env.restart import RestartBuffer
from satori_env.tasks import Problem

__all__ = ["EpisodePool", "Played", "outcome", "start_of"]

Generate = Callable[[list[int], int, list[int]], Awaitable[tuple[Sequence[int], Sequence[float] | None]]]
"""The framework's generation: ``(prompt_ids, max_tokens, allowed_ids) -> (token_ids, logprobs)``."""


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


@dataclass(frozen=True)
class Played:
    """One finished episode: the ids on both sides of the boundary and the env's verdict."""

    prompt_ids: list[int]
    """the state the policy continued: the prompt and a restart prefix (never trained on)"""
    response_ids: list[int]
    """the generated ids the episode took (through the stop token)"""
    logprobs: list[float] | None
    """the generator's log-probabilities of ``response_ids``, where it gave them"""
    truncated: bool
    outcome: dict[str, Any]
    """:func:`outcome` of the episode"""

    @property
    def reward(self) -> float:
        return self.outcome["reward"]

    def columns(self) -> dict[str, float]:
        """The episode as numbers a framework logs: ``satori_<term>`` for every reward term,
        ``satori_<action>`` COAT counts, ``satori_correct``, ``satori_from_restart``."""
        result = self.outcome
        columns = {f"satori_{name}": value for name, value in result["reward_terms"].items()}
        columns.update({f"satori_{action}": float(count) for action, count in result["actions"].items()})
        columns.update(satori_correct=float(result["correct"]), satori_from_restart=float(result["from_restart"]))
        return columns


class EpisodePool:
    """Environments that play one episode each around an awaited generation call, sharing one
    restart buffer (Restart-and-Explore) and the generator of restart draws. Coroutines of one
    event loop may play concurrently: each takes an idle environment or makes one.

    Args:
        make_env: builds an environment (token observations are not needed: the pool reads
            :attr:`~satori_env.SatoriMathEnv.tokens`).
        restart_prob: share of episodes that start from a restart state of their problem.
        seed: seed of the restart draws.
    """

    def __init__(self, make_env: Callable[[], SatoriMathEnv], restart_prob: float = 0.0, seed: int = 0) -> None:
        if not 0 <= restart_prob <= 1:
            raise ValueError(f"restart_prob must be in [0, 1], got {restart_prob}")
        self.make_env = make_env
        self.idle = [make_env()]
        probe = self.idle[0]
        self.restart_prob = float(restart_prob)
        self.buffer = (
            RestartBuffer(probe.tokenizer, max_prefix_tokens=probe.max_new_tokens + 1) if restart_prob else None
        )
        self.rng = np.random.default_rng(seed)
        # the env's actions: never the padding token, nor ids of a model's vocabulary past the tokenizer's
        self.allowed_ids = np.flatnonzero(probe.action_masks()).tolist()

    async def play(self, problem: Problem, generate: Generate, max_length: int | None = None) -> Played:
        """One episode of ``problem`` (or of a restart state of it): the env's prompt ids go to
        ``generate``, the ids it returns are applied through the first stop token and judged
        (the verifier off the event loop). ``max_length``: the framework's limit on prompt and
        response together (an episode it would cut short is refused, naming the limit)."""
        env = self.idle.pop() if self.idle else self.make_env()
        try:
            env.reset(options=start_of(problem, self.buffer, self.restart_prob, self.rng))
            prompt_ids = env.tokens.tolist()
            if max_length is not None and len(prompt_ids) + env.tokens_left > max_length:
                raise ValueError(
                    f"an episode needs up to {len(prompt_ids) + env.tokens_left} tokens (its prompt and restart "
                    f"prefix {len(prompt_ids)}, the response {env.tokens_left}), more than the framework's "
                    f"max length {max_length}: raise it, or lower the env's max_new_tokens"
                )
            token_ids, logprobs = await generate(prompt_ids, env.tokens_left, self.allowed_ids)
            response_ids = env.clip_to_episode(token_ids)
            step = await asyncio.get_running_loop().run_in_executor(None, env.step_tokens, response_ids)
            _, reward, terminated, truncated, info = step
            if not (terminated or truncated):
                raise RuntimeError(
                    f"the generator returned {len(token_ids)} tokens without a stop token, short of the "
                    f"episode's {len(response_ids) + env.tokens_left}: its token limit must be the env's"
                )
            if self.buffer is not None:
                self.buffer.add(info["trajectory"])
        finally:
            self.idle.append(env)
        taken = None if logprobs is None else [float(lp) for lp in logprobs[: len(response_ids)]]
        return Played(prompt_ids, response_ids, taken, bool(truncated), outcome(reward, info))
