"""Rollouts: a generation engine writes completions, the vector env judges them.

The MDP has one definition, the environment's: prompts come from its resets (problems, or
restart states drawn from its restart buffer), completions are applied with its batched
``step_tokens``, and rewards, verdicts and trajectories come from its ``info``. This module
only turns that into padded tensors for the learner.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from agents.device import padded_length
from agents.engines import GenerationEngine, SamplingParams
from satori_env import SatoriMathVectorEnv

__all__ = ["Episodes", "Rollout", "assemble_rollout", "collect_rollout", "run_episodes"]


@dataclass(frozen=True)
class Rollout:
    """The episodes of one iteration, as the environment produced them (the learner's own view,
    :class:`~agents.algorithms.Scores`, is kept apart). ``B`` episodes, ``T`` tokens (state and
    response, right-padded); per-token tensors are ``(B, T - 1)`` and line up with the token
    written next.

    Attributes:
        tokens: ``(B, T)`` long: each episode's state (prompt, restart prefix) and response.
        attention_mask: ``(B, T)`` long: 1 on real tokens.
        action_mask: ``(B, T - 1)`` float: 1 where ``tokens[:, 1:]`` was written by the policy.
        rewards: ``(B,)`` the environment's episode reward.
        group: ``(B,)`` long: episodes of one group share a start (problem or restart state).
        truncated: ``(B,)`` bool: the episode hit the token limit instead of ending with a stop
            token (its reward judges the answer as it stands; an algorithm may bootstrap there).
        infos: the environment's final info of each episode.
        trajectories: the ``satori_env.Trajectory`` of each episode, for the restart buffer.
    """

    tokens: torch.Tensor
    attention_mask: torch.Tensor
    action_mask: torch.Tensor
    rewards: torch.Tensor
    group: torch.Tensor
    truncated: torch.Tensor
    infos: list[dict[str, Any]]
    trajectories: list[Any]

    @property
    def num_episodes(self) -> int:
        return self.tokens.shape[0]

    @property
    def num_generated(self) -> int:
        return int(self.action_mask.sum())


@dataclass(frozen=True)
class Episodes:
    """Finished episodes as token ids and the environment's judgement: what a rollout worker
    sends back (never re-tokenised text).

    Attributes:
        prompts: each episode's state when generation began (prompt, restart prefix).
        completions: the tokens the engine wrote, through the stop token.
        rewards, truncated: per episode, as the environment's step returned them.
        infos: the environment's final info of each episode.
        trajectories: the ``satori_env.Trajectory`` of each episode, for the restart buffer.
    """

    prompts: list[list[int]]
    completions: list[list[int]]
    rewards: list[float]
    truncated: list[bool]
    infos: list[dict[str, Any]]
    trajectories: list[Any]

    @classmethod
    def concat(cls, parts: Sequence[Episodes]) -> Episodes:
        """The episodes of ``parts``, in order."""
        return cls(*(sum((getattr(part, field) for part in parts), []) for field in cls.__dataclass_fields__))


def run_episodes(envs: SatoriMathVectorEnv, engine: GenerationEngine, params: SamplingParams) -> Episodes:
    """Generate from every copy's current state (reset it first) and apply the completions: one
    finished episode per copy."""
    prompts = [tokens.tolist() for tokens in envs.tokens]
    completions = engine.generate(prompts, params)
    _, rewards, _, truncated, infos = envs.step_tokens(completions)
    final = infos.get("final_info", infos)  # same-step autoreset, or none
    return Episodes(
        prompts,
        [list(c) for c in completions],
        [float(r) for r in rewards],
        [bool(t) for t in truncated],
        [_episode_info(final, i) for i in range(envs.num_envs)],
        list(final["trajectory"]),
    )


def collect_rollout(
    envs: SatoriMathVectorEnv,
    engine: GenerationEngine,
    params: SamplingParams,
    group_size: int = 1,
) -> Rollout:
    """One episode per environment copy: reset (in groups), generate, apply, and pad.

    ``envs`` must have been seeded once with ``envs.reset(seed=...)``; each call continues the
    copies' generators, so a run is reproducible. Every copy is reset here, so a vector env
    made with ``autoreset_mode=AutoresetMode.DISABLED`` saves the resets it would otherwise do
    at the end of each episode (either mode works).
    """
    envs.reset_groups(group_size)
    return assemble_rollout(run_episodes(envs, engine, params), envs.envs[0].pad_id, group_size)


def _episode_info(final: dict[str, Any], i: int) -> dict[str, Any]:
    """The i-th episode's entries of a vector env's batched final info."""
    info = {}
    for key, value in final.items():
        if key.startswith("_"):
            continue
        info[key] = _episode_info(value, i) if isinstance(value, dict) else value[i]
    return info


def assemble_rollout(episodes: Episodes, pad_id: int, group_size: int) -> Rollout:
    """The learner's tensors of ``episodes`` (right-padded to a multiple of 16 tokens); episodes
    ``i * group_size`` to ``(i + 1) * group_size - 1`` form group ``i``."""
    prompts, completions = episodes.prompts, episodes.completions
    lengths = [len(p) + len(c) for p, c in zip(prompts, completions)]
    width = padded_length(max(lengths))
    tokens = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(prompts), width), dtype=torch.long)
    actions = torch.zeros((len(prompts), width - 1), dtype=torch.float32)
    for row, (prompt, completion) in enumerate(zip(prompts, completions)):
        sequence = list(prompt) + list(completion)
        tokens[row, : len(sequence)] = torch.tensor(sequence)
        attention[row, : len(sequence)] = 1
        actions[row, len(prompt) - 1 : len(sequence) - 1] = 1.0
    group = torch.arange(len(prompts)) // group_size
    rewards = torch.as_tensor(episodes.rewards, dtype=torch.float32)
    truncated = torch.as_tensor(episodes.truncated, dtype=torch.bool)
    return Rollout(tokens, attention, actions, rewards, group, truncated, episodes.infos, episodes.trajectories)
