"""SatoriMathVectorEnv: many SatoriMath episodes stepped together, for LLM rollouts.

``gym.make_vec("SatoriMath-v0", num_envs=N)`` returns it (``vectorization_mode="sync"`` or
``"async"`` give Gymnasium's generic vector envs instead). Compared with those it

* steps all copies in one process with one vectorised action check,
* takes whole completions per copy with :meth:`step_tokens` (the fast path an LLM rollout
  uses: generate, then apply),
* verifies all episodes that end in a step in one :meth:`Verifier.check_batch` call, and
* resets finished copies in the same step (``AutoresetMode.SAME_STEP``, the default): the
  returned observation is the new episode's; the finished one's is in ``info["final_obs"]`` and
  its info in ``info["final_info"]``. With ``autoreset_mode=AutoresetMode.DISABLED`` (what a
  trainer that resets every copy itself before each rollout wants) finished copies stay
  finished: the step returns their final observation and info as they are, no problem is drawn
  for an episode that would never run, and a copy must be reset before it is stepped again.

The copies share one tokenizer (and its cache of encoded prompts: the copies of a rollout group
encode their problem once), one problem source (so a curriculum sees every episode), one
restart buffer and one reward; reward terms with a ``batch`` method (a neural scorer) are
called once per step for all episodes that end.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from satori_env.curriculum import Curriculum
from satori_env.env import SatoriMathEnv
from satori_env.graders import judge
from satori_env.tokens import cut_after_stop, token_array
from satori_env.verifier import default_verifier

__all__ = ["SatoriMathVectorEnv"]


class SatoriMathVectorEnv(VectorEnv):
    """``num_envs`` copies of :class:`SatoriMathEnv`; every other argument goes to each copy.

    Seeding: ``reset(seed=s)`` seeds copy ``i`` with ``s + i``; a list seeds each copy.
    ``autoreset_mode``: ``AutoresetMode.SAME_STEP`` (default) or ``AutoresetMode.DISABLED`` (or
    their values, "SameStep" / "Disabled"); see the module docstring.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": ["ansi"]}
    AUTORESET_MODES = (AutoresetMode.SAME_STEP, AutoresetMode.DISABLED)

    def __init__(
        self, num_envs: int = 1, autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP, **env_kwargs: Any
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        modes = {mode.value: mode for mode in self.AUTORESET_MODES}
        mode = modes.get(autoreset_mode.value if isinstance(autoreset_mode, AutoresetMode) else autoreset_mode)
        if mode is None:
            raise ValueError(
                f"autoreset_mode must be one of {sorted(modes)} (or those AutoresetMode members), got "
                f"{autoreset_mode!r}"
            )
        self.metadata = {**type(self).metadata, "autoreset_mode": mode}
        first = SatoriMathEnv(**env_kwargs)
        shared = {
            "tokenizer": first.tokenizer,
            "tasks": first.source,  # a curriculum too: one for all copies
            "curriculum": None,
            "max_prompt_tokens": first.max_prompt_tokens,
            "reward": first.reward_spec,
        }
        self.envs = [first] + [SatoriMathEnv(**{**env_kwargs, **shared}) for _ in range(num_envs - 1)]
        for env in self.envs[1:]:  # same tokenizer and template: one cache of encoded prompts
            env.prompt_cache = first.prompt_cache
        self.num_envs = num_envs
        self.render_mode = first.render_mode
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(first.observation_space, num_envs)
        self.action_space = batch_space(first.action_space, num_envs)
        self._action_mask = first.action_masks()

    @property
    def tokenizer(self):
        return self.envs[0].tokenizer

    @property
    def restart_buffer(self):
        """The restart buffer all copies draw from (None without one); assigning one gives it to
        every copy (checked against their tokenizer)."""
        return self.envs[0].restart_buffer

    @restart_buffer.setter
    def restart_buffer(self, buffer) -> None:
        for env in self.envs:
            env.restart_buffer = buffer

    def rng_states(self) -> list[dict[str, Any]]:
        """Each copy's generator state (JSON-able), for a checkpoint."""
        return [env.np_random.bit_generator.state for env in self.envs]

    def set_rng_states(self, states: Sequence[dict[str, Any]]) -> None:
        """Restore what :meth:`rng_states` returned: the copies draw exactly as they would have."""
        if len(states) != self.num_envs:
            raise ValueError(f"set_rng_states got {len(states)} states for {self.num_envs} environments")
        for env, state in zip(self.envs, states):
            env.np_random.bit_generator.state = state

    @property
    def curriculum(self):
        """The curriculum all copies share (None without one)."""
        source = self.envs[0].source
        return source if isinstance(source, Curriculum) else None

    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | Sequence[dict[str, Any] | None] | None = None,
    ):
        """Reset every copy. ``options`` is one dict for all copies or one per copy, e.g.
        ``[{"problem": p} for p in problems]`` to evaluate a list of problems."""
        if seed is None or isinstance(seed, (int, np.integer)):
            seeds = [None if seed is None else int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"reset(seed=...) got {len(seeds)} seeds for {self.num_envs} environments")
        if options is None or isinstance(options, dict):
            per_env = [options] * self.num_envs
        else:
            per_env = list(options)
            if len(per_env) != self.num_envs:
                raise ValueError(f"reset(options=...) got {len(per_env)} option dicts for {self.num_envs} environments")
        infos = {}
        for i, (env, env_seed, env_options) in enumerate(zip(self.envs, seeds, per_env)):
            _, info = env.reset(seed=env_seed, options=env_options)
            infos = self._add_info(infos, info, i)
        return self._observations(), infos

    def reset_groups(self, group_size: int, starts: Sequence[dict[str, Any] | None] | None = None):
        """Reset every copy in groups of ``group_size`` consecutive copies that share a start
        (GRPO-style groups, or ``k`` samples per problem in an evaluation).

        Group ``g`` starts from ``starts[g]`` (reset options: ``{"problem": p}`` or
        ``{"restart_state": s}``) when given; otherwise its first copy draws as a plain
        ``reset()`` does (a restart state, or a problem from the tasks or the curriculum) and the
        other copies take the same start, counted for the same curriculum arm. Returns what
        :meth:`reset` returns.
        """
        if (
            isinstance(group_size, bool)
            or not isinstance(group_size, int)
            or group_size < 1
            or self.num_envs % group_size
        ):
            raise ValueError(f"group_size must divide the number of environments ({self.num_envs}), got {group_size!r}")
        groups = self.num_envs // group_size
        starts = [None] * groups if starts is None else list(starts)
        if len(starts) != groups:
            raise ValueError(f"reset_groups got {len(starts)} starts for {groups} groups of {group_size}")
        infos = {}
        for group, start in enumerate(starts):
            lead = group * group_size
            for i in range(lead, lead + group_size):
                _, info = self.envs[i].reset(options=start)
                infos = self._add_info(infos, info, i)
                if start is None:
                    start = self._start_of(self.envs[lead])
        return self._observations(), infos

    def starts(self) -> list[dict[str, Any]]:
        """Each copy's current start as reset options (``{"problem": p}`` or
        ``{"restart_state": s}``): another vector env given them with :meth:`reset_groups` (one
        copy per group) starts the same episodes, e.g. a rollout worker's share of them."""
        return [
            {"restart_state": env.restart_state} if env.restart_state is not None else {"problem": env.problem}
            for env in self.envs
        ]

    @property
    def tokens(self) -> list[np.ndarray]:
        """Each copy's current token ids (prompt, restart prefix, tokens written), copies: the
        prompts an engine continues."""
        return [env.tokens for env in self.envs]

    def step(self, actions):
        """One token per copy: ``actions`` has shape ``(num_envs,)``."""
        actions = token_array(actions, self.envs[0].num_actions)
        if actions.shape != (self.num_envs,) or not np.issubdtype(actions.dtype, np.integer):
            raise ValueError(
                f"actions must be {self.num_envs} token ids, got an array of shape {actions.shape} and dtype "
                f"{actions.dtype}"
            )
        if not all(env.running for env in self.envs):
            raise RuntimeError("a copy has no running episode: call reset() first")
        checked = self.envs[0].check_ids(actions.astype(np.int64, copy=False))
        return self._advance([(token,) for token in checked])

    def step_tokens(self, tokens: Sequence[Sequence[int]] | np.ndarray):
        """Apply a chunk of tokens to each copy: ``tokens[i]`` goes to copy ``i``.

        Rows of a 2-D array (as a generation engine returns them) are cut after the first
        stop token, and trailing padding is dropped; each row must then fit the copy's episode
        (see :meth:`SatoriMathEnv.step_tokens`). Returns what :meth:`step` returns; rewards
        are those of the chunk's last token.
        """
        if len(tokens) != self.num_envs:
            raise ValueError(
                f"step_tokens needs one token sequence per environment ({self.num_envs}), got {len(tokens)}"
            )
        rows = [self._trim(token_array(row, self.envs[0].num_actions)) for row in tokens]
        checked = [env.check_tokens(row) for env, row in zip(self.envs, rows)]
        return self._advance(checked)

    def action_masks(self) -> np.ndarray:
        """``(num_envs, vocab_size)`` boolean masks (the same for every copy)."""
        return np.broadcast_to(self._action_mask, (self.num_envs, self._action_mask.size))

    def render(self) -> tuple[str | None, ...]:
        return tuple(env.render() for env in self.envs)

    def close_extras(self, **kwargs: Any) -> None:
        for env in self.envs:
            env.close()

    # -- internals -------------------------------------------------------------------------------

    @staticmethod
    def _start_of(env: SatoriMathEnv) -> dict[str, Any]:
        """Reset options that start another copy where ``env`` just started."""
        if env.restart_state is not None:
            return {"restart_state": env.restart_state}
        return {"problem": env.problem, "curriculum_arm": env.curriculum_arm}

    def _trim(self, row: np.ndarray) -> list[int]:
        """A generated row up to its first stop token; without one, less its trailing padding."""
        env = self.envs[0]
        ids = cut_after_stop(row, env.stop_ids)
        if ids and ids[-1] in env.stop_ids:
            return ids
        keep = len(ids)
        while keep and ids[keep - 1] == env.pad_id:
            keep -= 1
        return ids[:keep]

    def _advance(self, chunks: list[Sequence[int]]):
        ended = [env.append_tokens(chunk) for env, chunk in zip(self.envs, chunks)]
        finished = [i for i, end in enumerate(ended) if end is not None]
        completions = {i: self.envs[i].completion_text() for i in finished}
        verifier = self.envs[0].verifier or default_verifier()
        verdicts = judge(verifier, [completions[i] for i in finished], [self.envs[i].problem for i in finished])
        verdict_of = dict(zip(finished, verdicts))

        infos = {}
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        episodes = [self.envs[i].episode_record(ended[i], completions[i], verdict_of[i]) for i in finished]
        terms_of = dict(zip(finished, self.envs[0].reward_spec.batch(episodes)))  # one scorer call
        for i, episode in zip(finished, episodes):
            env = self.envs[i]
            final_obs, rewards[i], terminated[i], truncated[i], final_info = env.finish_episode(
                ended[i], episode, terms_of[i]
            )
            if self.metadata["autoreset_mode"] is AutoresetMode.DISABLED:
                infos = self._add_info(infos, final_info, i)
                continue
            infos = self._add_info(infos, {"final_obs": final_obs, "final_info": final_info}, i)
            _, info = env.reset()
            infos = self._add_info(infos, info, i)
        return self._observations(), rewards, terminated, truncated, infos

    def _observations(self):
        """The batched observation, built straight from the copies' token buffers."""
        if isinstance(self.single_observation_space, spaces.Dict):
            return {
                "tokens": np.stack([env.token_buffer for env in self.envs]),
                "length": np.array([[env.length] for env in self.envs], dtype=np.int64),
            }
        return tuple(env.observation() for env in self.envs)
