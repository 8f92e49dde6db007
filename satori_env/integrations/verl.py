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

The loops of one verl worker process share a pool of environments and one restart buffer.
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
from satori_env.integrations.episodes import outcome, start_of
from satori_env.integrations.verl_data import AGENT_NAME, problem_of
from satori_env.restart import RestartBuffer
from satori_env.rewards import make_reward
from satori_env.tokenizer import tokenizer_fingerprint

__all__ = ["SatoriAgentLoop", "SatoriCurriculumSampler"]


class _Process:
    """What the agent loops of one process share: idle environments, the restart buffer, the
    generator of restart draws, and the ids the env accepts as actions."""

    def __init__(self, make_env, restarts: bool, seed: int) -> None:
        self.make_env = make_env
        self.idle: list[SatoriMathEnv] = [make_env()]
        probe = self.idle[0]
        self.buffer = RestartBuffer(probe.tokenizer, max_prefix_tokens=probe.max_new_tokens + 1) if restarts else None
        self.rng = np.random.default_rng(seed)
        # the env's actions: never the padding token, nor ids of the model's vocabulary past the tokenizer's
        self.allowed_ids = np.flatnonzero(probe.action_masks()).tolist()

    def acquire(self) -> SatoriMathEnv:
        return self.idle.pop() if self.idle else self.make_env()


_PROCESSES: dict[tuple, _Process] = {}


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
        if not 0 <= restart_prob <= 1:
            raise ValueError(f"restart_prob must be in [0, 1], got {restart_prob}")
        self.restart_prob = float(restart_prob)
        self.reward = make_reward(reward, bonus_scale=bonus_scale)
        settings = (prompt_template, self.rollout_config.prompt_length, self.rollout_config.response_length)
        key = (tokenizer_fingerprint(self.tokenizer), *settings, repr(reward), bonus_scale, self.restart_prob > 0)
        if key not in _PROCESSES:
            _PROCESSES[key] = _Process(
                lambda: SatoriMathEnv(
                    tokenizer=self.tokenizer,
                    prompt_template=prompt_template,
                    max_prompt_tokens=settings[1],
                    max_new_tokens=settings[2],
                    reward=self.reward,
                ),
                restarts=self.restart_prob > 0,
                seed=int(self.rollout_config.seed),
            )
        self.shared = _PROCESSES[key]

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        extra_info = dict(kwargs.get("extra_info") or {})
        problem = problem_of(extra_info)
        env = self.shared.acquire()
        try:
            start = start_of(problem, self.shared.buffer, self.restart_prob, self.shared.rng)
            env.reset(options=start)
            prompt_ids = env.tokens.tolist()
            params = {**sampling_params, "max_tokens": env.tokens_left, "allowed_token_ids": self.shared.allowed_ids}
            started = time.perf_counter()
            output = await self.server_manager.generate(
                request_id=uuid4().hex, prompt_ids=prompt_ids, sampling_params=params
            )
            generate_seconds = time.perf_counter() - started
            response_ids = env.clip_to_episode(output.token_ids)
            # the verifier may take a while: off the event loop the other trajectories run on
            _, reward, terminated, truncated, info = await self.loop.run_in_executor(
                None, env.step_tokens, response_ids
            )
            if not (terminated or truncated):
                raise RuntimeError(
                    f"the server returned {len(output.token_ids)} tokens without a stop token, short of the "
                    f"episode's {len(response_ids) + env.tokens_left} (stop reason {output.stop_reason!r})"
                )
            if self.shared.buffer is not None:
                self.shared.buffer.add(info["trajectory"])
        finally:
            self.shared.idle.append(env)
        result = outcome(reward, info)
        reward_extra_info = {f"satori_{name}": value for name, value in result["reward_terms"].items()}
        reward_extra_info.update(
            {f"satori_{action}": float(count) for action, count in result["actions"].items()},
            satori_correct=float(result["correct"]),
            satori_from_restart=float(result["from_restart"]),
            satori_arm=str(extra_info.get("arm", problem.source)),
        )
        log_probs = list(output.log_probs[: len(response_ids)]) if output.log_probs else None
        return AgentLoopOutput(
            prompt_ids=prompt_ids,
            response_ids=response_ids,
            response_mask=[1] * len(response_ids),
            response_logprobs=log_probs,
            reward_score=float(reward),
            num_turns=2,
            metrics={"generate_sequences": generate_seconds, "num_preempted": output.num_preempted or -1},
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
