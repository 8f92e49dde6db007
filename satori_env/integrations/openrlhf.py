"""SatoriMath in OpenRLHF (0.11): an agent executor for ``--train.agent_func_path``.

OpenRLHF loads the class ``AgentExecutor`` from the file it is given and builds it without
arguments, once per vLLM engine; ``examples/openrlhf_agent.py`` is such a file::

    from satori_env.integrations.openrlhf import SatoriAgentExecutor

    class AgentExecutor(SatoriAgentExecutor):
        def __init__(self):
            super().__init__(restart_prob=0.5, reward="satori", max_new_tokens=3072)

:class:`SatoriAgentExecutor` is an ``AgentExecutorBase`` (the token-level interface), not an
``AgentInstanceBase``: OpenRLHF's multi-turn executor hands an agent instance decoded text and
re-tokenises what it returns, which would break the token-exact contract. Per prompt, the row's
problem (``--data.label_key extra_info`` of the rows ``satori verl-data`` writes) starts an
episode, or a restart state of it starts one (``restart_prob``); the env's prompt ids go to the
engine (only the env's actions allowed); the ids the episode takes are applied with
``step_tokens`` and judged. The result's action range covers the response only, so a restart
prefix in the prompt is never trained on; ``reward`` is the env's, and ``extra_logs`` holds
every reward term, the verdict and the COAT counts (OpenRLHF logs them).
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

from openrlhf.utils.agent import AgentExecutorBase

from satori_env.env import SatoriMathEnv
from satori_env.integrations.episodes import EpisodePool
from satori_env.integrations.verl_data import problem_of
from satori_env.rewards import make_reward

__all__ = ["SatoriAgentExecutor"]


class SatoriAgentExecutor(AgentExecutorBase):
    """One SatoriMath episode per sample (see the module docstring); the samples of one engine
    share a pool of environments and a restart buffer.

    Args:
        restart_prob: share of episodes that start from a restart state of their problem.
        reward: the env's reward (preset name, term names, or a dict of term weights).
        bonus_scale: scale of the reflection bonus (Satori: 0.5).
        prompt_template: how the env shows problems (Satori's released models: ``satori``).
        max_new_tokens: the episode's response limit (Satori: 3072).
        max_prompt_tokens: the prompt and a restart prefix together (Satori: 1024 + 3072).
        seed: seed of the restart draws.
    """

    def __init__(
        self,
        restart_prob: float = 0.0,
        reward: Any = None,
        bonus_scale: float = 0.5,
        prompt_template: str = "satori",
        max_new_tokens: int = 3072,
        max_prompt_tokens: int = 4096,
        seed: int = 0,
    ) -> None:
        self.settings = {
            "prompt_template": prompt_template,
            "max_new_tokens": max_new_tokens,
            "max_prompt_tokens": max_prompt_tokens,
            "reward": make_reward(reward, bonus_scale=bonus_scale),
        }
        self.restart_prob, self.seed = restart_prob, seed
        self.pool: EpisodePool | None = None

    async def execute(
        self, prompt, label, sampling_params, max_length: int, hf_tokenizer, llm_engine, images=None
    ) -> dict[str, Any]:
        if images:
            raise ValueError("SatoriMath is text only: the row has images")
        if self.pool is None:  # the first sample brings the policy's tokenizer
            self.pool = EpisodePool(
                lambda: SatoriMathEnv(tokenizer=hf_tokenizer, **self.settings), self.restart_prob, self.seed
            )
        want_logprobs = getattr(sampling_params, "logprobs", None) is not None

        async def generate(prompt_ids: list[int], max_tokens: int, allowed_ids: list[int]):
            params = deepcopy(sampling_params)
            params.max_tokens, params.allowed_token_ids = max_tokens, allowed_ids
            output = (await llm_engine.generate(prompt_ids, params)).outputs[0]
            ids = list(output.token_ids)
            if not want_logprobs or output.logprobs is None:
                return ids, None
            return ids, [float(entry[token].logprob) for token, entry in zip(ids, output.logprobs)]

        played = await self.pool.play(problem_of(label), generate, max_length)
        start, end = len(played.prompt_ids), len(played.prompt_ids) + len(played.response_ids)
        return {
            "prompt": prompt,
            "label": label,
            "images": images,
            "mm_train_inputs": None,
            "observation_tokens": played.prompt_ids + played.response_ids,
            "action_ranges": [(start, end)],
            "rollout_log_probs": None if played.logprobs is None else [0.0] * start + played.logprobs,
            "truncated": played.truncated,
            "reward": played.reward,
            "scores": played.reward,
            "extra_logs": played.columns(),
        }
