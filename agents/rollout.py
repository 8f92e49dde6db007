"""Rollouts: a generation engine writes completions, the vector env judges them.

The MDP has one definition, the environment's: prompts come from its resets (problems, or
restart states drawn from its restart buffer), completions are applied with its batched
``step_tokens``, and rewards, verdicts and trajectories come from its ``info``. This module
only turns that into padded tensors for the learner.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from agents.device import padded_length
from agents.engines import GenerationEngine, SamplingParams
from satori_env import SatoriMathVectorEnv

__all__ = ["Rollout", "collect_rollout"]


@dataclass
class Rollout:
    """The episodes of one iteration. ``B`` episodes, ``T`` tokens (state and response,
    right-padded); per-token tensors are ``(B, T - 1)`` and line up with the token written next."""

    tokens: torch.Tensor  # (B, T) long
    attention_mask: torch.Tensor  # (B, T) long
    action_mask: torch.Tensor  # (B, T-1) float: 1 where tokens[:, 1:] was written by the policy
    rewards: torch.Tensor  # (B,) the environment's episode reward
    group: torch.Tensor  # (B,) long: episodes of one group share a start (problem or restart state)
    infos: list[dict[str, Any]]  # the environment's final info of each episode
    trajectories: list[Any]  # satori_env.Trajectory of each episode, for the restart buffer
    old_logprobs: torch.Tensor | None = None  # (B, T-1), filled by the learner before updating
    values: torch.Tensor | None = None  # (B, T-1)
    ref_logprobs: torch.Tensor | None = None  # (B, T-1)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_episodes(self) -> int:
        return self.tokens.shape[0]

    @property
    def num_generated(self) -> int:
        return int(self.action_mask.sum())


def _start_groups(envs: SatoriMathVectorEnv, group_size: int) -> None:
    """Reset every copy; the copies of a group share the start their first copy drew."""
    if envs.num_envs % group_size:
        raise ValueError(f"the number of environments ({envs.num_envs}) must be a multiple of group_size ({group_size})")
    for first in range(0, envs.num_envs, group_size):
        lead = envs.envs[first]
        lead.reset()
        if lead.restart_state is not None:
            start = {"restart_state": lead.restart_state}
        else:  # the group's episodes all count for the curriculum's arm, when there is one
            start = {"problem": lead.problem, "curriculum_arm": lead.curriculum_arm}
        for env in envs.envs[first + 1 : first + group_size]:
            env.reset(options=start)


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
    _start_groups(envs, group_size)
    prompts = [env.tokens.tolist() for env in envs.envs]
    completions = engine.generate(prompts, params)
    _, rewards, _, _, infos = envs.step_tokens(completions)
    final = infos.get("final_info", infos)  # same-step autoreset, or none
    episode_infos = [_episode_info(final, i) for i in range(envs.num_envs)]
    return _pad(prompts, completions, rewards, envs.envs[0].pad_id, group_size, episode_infos, list(final["trajectory"]))


def _episode_info(final: dict[str, Any], i: int) -> dict[str, Any]:
    """The i-th episode's entries of a vector env's batched final info."""
    info = {}
    for key, value in final.items():
        if key.startswith("_"):
            continue
        info[key] = _episode_info(value, i) if isinstance(value, dict) else value[i]
    return info


def _pad(
    prompts: Sequence[Sequence[int]],
    completions: Sequence[Sequence[int]],
    rewards,
    pad_id: int,
    group_size: int,
    infos: list[dict[str, Any]],
    trajectories: list[Any],
) -> Rollout:
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
    return Rollout(tokens, attention, actions, torch.as_tensor(rewards, dtype=torch.float32), group, infos, trajectories)
