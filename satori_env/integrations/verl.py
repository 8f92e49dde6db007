"""SatoriMath in verl (``pip install verl``, in its own environment: see the docs' verl page).

* :class:`SatoriAgentLoop`, registered as ``satori_agent`` (the ``agent_name`` of the rows
  ``satori verl-data`` writes): each trajectory is one SatoriMath episode. The env builds the
  prompt ids from the row's problem with its template (Satori's), or starts from a restart state
  of that problem (Restart-and-Explore, ``restart_prob``; the prefix is part of the prompt, so
  verl never trains on it); verl's own server writes the response from those ids
  (``server_manager.generate``); the env applies the ids it takes (``step_tokens``) and judges
  them. The output carries the response mask, the generator's log-probabilities, the env's reward
  (``reward_score``) and every reward term, the verdict, the COAT counts and the arm in
  ``reward_extra_info`` (columns ``satori_<term>``, ``satori_correct``, ...).
  Settings come from the agent loop config (``rollout.agent.agent_loop_config_path``)::

      - name: satori_agent
        _target_: satori_env.integrations.verl.SatoriAgentLoop
        restart_prob: 0.5
        reward: satori
        bonus_scale: 0.5

* :class:`SatoriCurriculumSampler`: verl's curriculum-sampler interface (``__init__(data_source,
  data_config)``, ``update(batch)``): the dataset rows are drawn by a satori curriculum over
  the rows' arms, and the outcomes of each batch steer it.

The loops of one verl worker process share a pool of environments and one restart buffer
(:class:`~satori_env.integrations.episodes.EpisodePool`).
"""

from __future__ import annotations

import time
from collections.abc import Sized
from typing import Any
from uuid import uuid4

import numpy as np
from torch.utils.data import Sampler
from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopOutput, _agent_loop_registry, register

from satori_env.curriculum import AdaptiveCurriculum, Curriculum, FixedMix
from satori_env.env import SatoriMathEnv
from satori_env.integrations.episodes import EpisodePool
from satori_env.integrations.verl_data import AGENT_NAME, problem_of
from satori_env.rewards import make_reward
from satori_env.tokenizer import tokenizer_fingerprint

__all__ = ["SatoriAgentLoop", "SatoriCurriculumSampler"]


_POOLS: dict[tuple, EpisodePool] = {}  # the loops of one process share their settings' pool


class SatoriAgentLoop(AgentLoopBase):
    """One SatoriMath episode per trajectory (see the module docstring).

    Args:
        restart_prob: share of episodes that start from a restart state of their problem.
        reward: the env's reward (preset name, term names, or a dict of term weights).
        bonus_scale: scale of the reflection bonus (Satori: 0.5).
        prompt_template: how the env shows problems (Satori's released models: ``satori``).
    """

    def __init__(
        self,
        *args: Any,
        restart_prob: float = 0.0,
        reward: Any = None,
        bonus_scale: float = 0.5,
        prompt_template: str = "satori",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        prompt_length, response_length = self.rollout_config.prompt_length, self.rollout_config.response_length
        key = (tokenizer_fingerprint(self.tokenizer), prompt_template, prompt_length, response_length)
        key += (repr(reward), bonus_scale, restart_prob)
        if key not in _POOLS:
            spec = make_reward(reward, bonus_scale=bonus_scale)
            _POOLS[key] = EpisodePool(
                lambda: SatoriMathEnv(
                    tokenizer=self.tokenizer,
                    prompt_template=prompt_template,
                    max_prompt_tokens=prompt_length,
                    max_new_tokens=response_length,
                    reward=spec,
                ),
                restart_prob=restart_prob,
                seed=int(self.rollout_config.seed),
            )
        self.pool = _POOLS[key]

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        extra_info = dict(kwargs.get("extra_info") or {})
        problem = problem_of(extra_info)
        timing: dict[str, float] = {}
        preempted: list[int] = []

        async def generate(prompt_ids: list[int], max_tokens: int, allowed_ids: list[int]):
            params = {**sampling_params, "max_tokens": max_tokens, "allowed_token_ids": allowed_ids}
            started = time.perf_counter()
            output = await self.server_manager.generate(
                request_id=uuid4().hex, prompt_ids=prompt_ids, sampling_params=params
            )
            timing["generate_sequences"] = time.perf_counter() - started
            preempted.append(output.num_preempted if output.num_preempted is not None else -1)
            return output.token_ids, output.log_probs or None

        played = await self.pool.play(problem, generate)
        reward_extra_info = {**played.columns(), "satori_arm": str(extra_info.get("arm", problem.source))}
        return AgentLoopOutput(
            prompt_ids=played.prompt_ids,
            response_ids=played.response_ids,
            response_mask=[1] * len(played.response_ids),
            response_logprobs=played.logprobs,
            reward_score=played.reward,
            num_turns=2,
            metrics={**timing, "num_preempted": preempted[0]},
            extra_fields={"reward_extra_info": reward_extra_info, "turn_scores": [], "tool_rewards": []},
        )


# a config file's entry (with its settings) wins over this default one: hydra imports this module
# while building the first loop, after verl read the file
if AGENT_NAME not in _agent_loop_registry:
    register(AGENT_NAME)(SatoriAgentLoop)


class SatoriCurriculumSampler(Sampler[int]):
    """Rows drawn by a satori curriculum over the rows' arms (``extra_info.arm``, in the order
    they first appear: easiest first); :meth:`update` feeds it each batch's outcomes
    (``satori_correct`` of the episodes that did not start from a restart state).

    Settings under ``data.sampler``: ``curriculum`` (``adaptive``, the default, or ``uniform``),
    ``options`` (the curriculum's arguments, e.g. ``{band: [0.2, 0.8], min_episodes: 32}``),
    ``seed``.
    """

    def __init__(self, data_source: Sized, data_config: Any) -> None:
        settings = dict((data_config.get("sampler") or {}) if hasattr(data_config, "get") else {})
        rows = list(data_source.dataframe["extra_info"])
        arms: dict[str, list] = {}
        self._rows: dict[tuple[str, str], int] = {}
        for index, extra_info in enumerate(rows):
            problem, arm = problem_of(extra_info), str(extra_info.get("arm", ""))
            arms.setdefault(arm, []).append(problem)
            self._rows[(arm, problem.id)] = index
        self.curriculum = _curriculum(settings.get("curriculum", "adaptive"), arms, dict(settings.get("options") or {}))
        self.rng = np.random.default_rng(settings.get("seed", 0))
        self._size = len(rows)

    def __len__(self) -> int:
        return self._size

    def __iter__(self):
        for _ in range(self._size):
            arm, problem = self.curriculum.draw(self.rng)
            yield self._rows[(arm, problem.id)]

    def update(self, batch: Any) -> None:
        """Record the outcomes of a trained batch (a verl ``DataProto`` whose non-tensor batch has
        the agent loop's ``satori_arm``, ``satori_correct`` and ``satori_from_restart``)."""
        columns = batch.non_tensor_batch
        missing = {"satori_arm", "satori_correct", "satori_from_restart"} - set(columns)
        if missing:
            raise KeyError(f"the batch has no {sorted(missing)}: are its rows run by the satori_agent loop?")
        for arm, correct, restarted in zip(
            columns["satori_arm"], columns["satori_correct"], columns["satori_from_restart"]
        ):
            if not restarted:  # a restart state's episode is not the curriculum's draw
                self.curriculum.update(str(arm), bool(correct))

    def state_dict(self) -> dict[str, Any]:
        return {"curriculum": self.curriculum.state_dict(), "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.curriculum.load_state_dict(state["curriculum"])
        self.rng.bit_generator.state = state["rng"]


def _curriculum(name: str, arms: dict[str, list], options: dict[str, Any]) -> Curriculum:
    if name == "adaptive":
        return AdaptiveCurriculum(arms, **options)
    if name == "uniform":
        return FixedMix(arms, **options)
    raise ValueError(f"data.sampler.curriculum must be 'adaptive' or 'uniform', got {name!r}")
