"""SatoriMath in TRL's ``GRPOTrainer`` (``pip install -e ".[trl]"``).

Two ways in:

* :class:`SatoriRollout`, a ``rollout_func``: each group of ``num_generations`` prompts starts one
  SatoriMath episode start (the group's problem, or, with ``restart_prob``, a restart state of
  it drawn from the run's restart buffer: Restart-and-Explore); the trainer's own generator (its
  vLLM engine or ``transformers``) writes the completions from the state's token ids; the env
  applies them with ``step_tokens`` and judges them. It returns the prompt ids (a restart prefix
  included, so it is never trained on), the completion ids, the generator's log-probabilities, and
  every reward term as an extra field; :meth:`SatoriRollout.reward_funcs` reads those fields
  back, one function per term, so TRL logs each (``rewards/satori_<term>/mean``) and trains on
  their sum, the env's reward. Finished trajectories feed the restart buffer.
* :func:`reward_funcs`, for TRL's own generation: the verifier and the reward terms on TRL's
  completions (no restarts, so the reflection bonus is 0).

    trainer = GRPOTrainer(model=..., processing_class=tokenizer,
                          args=GRPOConfig(..., generation_kwargs=rollout.generation_kwargs()),
                          train_dataset=rollout.dataset(512), rollout_func=rollout,
                          reward_funcs=rollout.reward_funcs())
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode

from satori_env.coat import META_ACTIONS, get_template
from satori_env.integrations.episodes import outcome, start_of
from satori_env.restart import RestartBuffer
from satori_env.rewards import Episode, make_reward
from satori_env.tasks import Problem, make_source
from satori_env.tokenizer import add_coat_tokens, load_tokenizer, tokenizer_fingerprint
from satori_env.tokens import cut_after_stop
from satori_env.vector import SatoriMathVectorEnv
from satori_env.verifier import Verifier, default_verifier

__all__ = ["SatoriRemoteRollout", "SatoriRollout", "reward_funcs"]


class _GroupRollout:
    """What the rollouts share: the dataset of problems, the group bookkeeping, and the per-term
    reward fields; a subclass plays the episodes (:meth:`_play`)."""

    def __init__(self, tasks: Any, tokenizer: Any, prompt_template: str, reward: Any, seed: int) -> None:
        self.tokenizer = load_tokenizer(tokenizer)
        add_coat_tokens(self.tokenizer)
        self.source = make_source(tasks)
        self.template = get_template(prompt_template)
        self.reward = make_reward(reward)
        self.rng = np.random.default_rng(seed)
        self._problems: dict[str, Problem] = {}

    def dataset(self, size: int, seed: int = 0):
        """A ``datasets.Dataset`` of ``size`` problems drawn from the tasks, with the columns TRL
        needs (``prompt``: the problem in the template) and ``problem_id``, ``answer``."""
        from datasets import Dataset

        rng = np.random.default_rng(seed)
        rows = []
        for _ in range(size):
            problem = self.source.sample(rng)
            prompt = self.template.format(problem.question)
            self._problems[prompt] = problem
            rows.append({"prompt": prompt, "problem_id": problem.id, "answer": problem.answer})
        return Dataset.from_list(rows)

    def reward_funcs(self) -> list[Callable[..., list[float]]]:
        """One reward function per reward term, each reading the term the rollout returned: TRL
        logs every term and trains on their sum (reward weights 1)."""
        return [_field_reward(f"satori_{name}") for name in self.reward.terms]

    def generation_kwargs(self, vllm: bool = False) -> dict[str, Any]:
        """``GRPOConfig(generation_kwargs=...)`` that keep the generator to the env's actions:
        the padding token is never written (for ``transformers`` generation, or TRL's vLLM with
        ``vllm=True``)."""
        if not self._forbidden_ids:
            return {}
        if vllm:
            return {"allowed_token_ids": [i for i in range(len(self.tokenizer)) if i not in self._forbidden_ids]}
        return {"suppress_tokens": sorted(self._forbidden_ids)}

    @property
    def _forbidden_ids(self) -> set[int]:
        pad, eos = self.tokenizer.pad_token_id, self.tokenizer.eos_token_id
        return {pad} if pad is not None and pad != eos else set()

    def _generate(self, trainer: Any, prompt_ids: list[list[int]]) -> tuple[list[list[int]], list | None]:
        """The trainer's completions of ``prompt_ids``, checked to hold only actions."""
        generated, logprobs = generate_with_trainer(trainer, prompt_ids)
        for ids in generated:
            bad = self._forbidden_ids.intersection(cut_after_stop(ids, [self.tokenizer.eos_token_id]))
            if bad:
                raise ValueError(
                    f"the trainer generated token id {min(bad)} (padding), which is not an action of the env: "
                    f"pass GRPOConfig(generation_kwargs=rollout.generation_kwargs(vllm=...)) to keep it out"
                )
        return generated, logprobs

    def __call__(self, prompts: Sequence[str], trainer: Any) -> dict[str, Any]:
        """Episodes for ``prompts`` (TRL repeats each prompt ``num_generations`` times in a row:
        each run of repeats is one group with one start)."""
        self._check_tokenizer(trainer)
        group = trainer.num_generations if trainer.model.training else trainer.num_generations_eval
        if len(prompts) % group:
            raise ValueError(f"the rollout got {len(prompts)} prompts, not whole groups of num_generations={group}")
        unknown = [p for p in prompts[::group] if p not in self._problems]
        if unknown:
            raise ValueError(
                f"prompt {unknown[0][:80]!r} is not one of this rollout's problems: build the train dataset "
                f"with {type(self).__name__}.dataset(...)"
            )
        problems = [self._problems[p] for p in prompts[::group]]
        prompt_ids, completion_ids, logprobs, episodes = self._play(problems, group, trainer)
        names = set(episodes[0]["reward_terms"])
        if names != set(self.reward.terms):
            raise ValueError(
                f"the episodes have reward terms {sorted(names)}, the rollout's reward functions "
                f"{sorted(self.reward.terms)}: pass the environment's reward as reward="
            )
        fields = {f"satori_{name}": [e["reward_terms"][name] for e in episodes] for name in self.reward.terms}
        fields["satori_correct"] = [float(e["correct"]) for e in episodes]
        fields["satori_from_restart"] = [float(e["from_restart"]) for e in episodes]
        return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": logprobs, **fields}

    def _play(self, problems: list[Problem], group: int, trainer: Any) -> tuple[list, list, list | None, list[dict]]:
        """Prompt ids, completion ids, their log-probabilities and the episodes' outcomes
        (:func:`~satori_env.integrations.episodes.outcome`), ``group`` episodes per problem."""
        raise NotImplementedError

    def _check_tokenizer(self, trainer: Any) -> None:
        theirs = getattr(trainer, "processing_class", None)
        if theirs is not None and tokenizer_fingerprint(theirs) != tokenizer_fingerprint(self.tokenizer):
            raise ValueError(
                "the trainer's tokenizer is not the rollout's (their vocabularies differ): pass the trainer's "
                f"tokenizer to {type(self).__name__}(tokenizer=...), with the COAT tokens added (add_coat_tokens)"
            )


class SatoriRollout(_GroupRollout):
    """A ``rollout_func`` for ``trl.GRPOTrainer`` that runs SatoriMath episodes in this process.

    Args:
        tasks: where the training problems come from (anything the env's ``tasks=`` takes).
        tokenizer: the trainer's tokenizer (a path, an object, None for the shipped one); the
            trainer's ``processing_class`` must be the same (checked at the first call).
        restart_prob: share of groups that start from a restart state of their problem.
        restart_buffer: the buffer to draw from and feed (None: a new one when restarts are on).
        max_new_tokens: the env's response limit (set the trainer's ``max_completion_length`` to it).
        prompt_template: how problems are shown (the model's own template).
        reward: the env's reward (preset, terms, ``RewardSpec``); its terms become the reward functions.
        seed: seed of the dataset order and the restart draws.
    """

    def __init__(
        self,
        tasks: Any = "arith:train",
        tokenizer: Any = None,
        restart_prob: float = 0.0,
        restart_buffer: RestartBuffer | None = None,
        max_new_tokens: int = 192,
        prompt_template: str = "compact",
        reward: Any = None,
        seed: int = 0,
    ) -> None:
        super().__init__(tasks, tokenizer, prompt_template, reward, seed)
        self.restart_prob = float(restart_prob)
        if restart_buffer is None and restart_prob > 0:
            restart_buffer = RestartBuffer(self.tokenizer, max_prefix_tokens=max_new_tokens + 1, seed=seed)
        self.restart_buffer = restart_buffer
        self.max_new_tokens = max_new_tokens
        self._envs: dict[int, SatoriMathVectorEnv] = {}

    def _play(self, problems: list[Problem], group: int, trainer: Any) -> tuple[list, list, list | None, list[dict]]:
        envs = self._vector_env(len(problems) * group)
        envs.reset_groups(group, [start_of(p, self.restart_buffer, self.restart_prob, self.rng) for p in problems])
        prompt_ids = [tokens.tolist() for tokens in envs.tokens]
        generated, logprobs = self._generate(trainer, prompt_ids)
        completion_ids = [env.clip_to_episode(ids) for env, ids in zip(envs.envs, generated)]
        _, rewards, _, _, info = envs.step_tokens(completion_ids)
        if self.restart_buffer is not None:
            self.restart_buffer.add_trajectories(info["trajectory"])
        episodes = [outcome(rewards[i], _row(info, i)) for i in range(envs.num_envs)]
        return prompt_ids, completion_ids, _clipped(logprobs, completion_ids), episodes

    def _vector_env(self, size: int) -> SatoriMathVectorEnv:
        if size not in self._envs:
            self._envs[size] = SatoriMathVectorEnv(
                num_envs=size,
                tasks=self.source,
                tokenizer=self.tokenizer,
                max_new_tokens=self.max_new_tokens,
                prompt_template=self.template,
                reward=self.reward,
                restart_buffer=self.restart_buffer,
                restart_prob=0.0,  # starts are chosen per group above
                autoreset_mode=AutoresetMode.DISABLED,
            )
        return self._envs[size]


class SatoriRemoteRollout(_GroupRollout):
    """A ``rollout_func`` for ``trl.GRPOTrainer`` whose episodes run on a SatoriMath OpenEnv
    server (``satori serve-openenv``; ``pip install -e ".[openenv]"``): one session per
    completion, the server's shared restart buffer for Restart-and-Explore.

    Args:
        base_url: the server (``http://host:port``).
        tasks: where the training problems come from (sent to the server with each reset).
        tokenizer: the trainer's tokenizer; the server must use the same one.
        restart_prob: share of groups that start from one of the server's restart states of their problem.
        prompt_template: how the dataset shows problems (the server's template builds the prompt ids).
        reward: the server's reward (its terms become the reward functions; checked at the first call).
        seed: seed of the dataset order and the restart draws.
    """

    def __init__(
        self,
        base_url: str,
        tasks: Any = "arith:train",
        tokenizer: Any = None,
        restart_prob: float = 0.0,
        prompt_template: str = "compact",
        reward: Any = None,
        seed: int = 0,
    ) -> None:
        super().__init__(tasks, tokenizer, prompt_template, reward, seed)
        self.base_url = base_url
        self.restart_prob = float(restart_prob)
        self._sessions: list[Any] = []

    def _play(self, problems: list[Problem], group: int, trainer: Any) -> tuple[list, list, list | None, list[dict]]:
        from concurrent.futures import ThreadPoolExecutor

        from satori_env.integrations.openenv import SatoriAction

        sessions = self._open(len(problems) * group)
        with ThreadPoolExecutor(len(sessions)) as pool:
            starts = list(
                pool.map(lambda i: sessions[i].reset(problem=problems[i // group].to_dict()), range(len(sessions)))
            )
            self._check_server_tokenizer(starts[0].observation.tokenizer_fingerprint)
            restarts: dict[int, str] = {}  # Restart-and-Explore: one state of the group's problem for the group
            for g in range(len(problems)):
                ids = starts[g * group].observation.restart_states
                if ids and self.rng.random() < self.restart_prob:
                    restarts.update(dict.fromkeys(range(g * group, (g + 1) * group), str(self.rng.choice(ids))))
            for i, start in zip(restarts, pool.map(lambda i: sessions[i].reset(restart_state=restarts[i]), restarts)):
                starts[i] = start
            prompt_ids = [start.observation.tokens for start in starts]
            generated, logprobs = self._generate(trainer, prompt_ids)
            actions = [SatoriAction(tokens=[int(t) for t in ids], clip=True) for ids in generated]
            ends = list(pool.map(lambda i: sessions[i].step(actions[i]), range(len(sessions))))
        completion_ids = [end.observation.tokens[len(prompt) :] for end, prompt in zip(ends, prompt_ids)]
        unfinished = [i for i, end in enumerate(ends) if not end.done]
        if unfinished:
            raise RuntimeError(
                f"{len(unfinished)} episode(s) did not end with the generated tokens: set the trainer's "
                "max_completion_length to the server's max_new_tokens"
            )
        episodes = [end.observation.result for end in ends]
        return prompt_ids, completion_ids, _clipped(logprobs, completion_ids), episodes

    def _check_server_tokenizer(self, fingerprint: str) -> None:
        if fingerprint != tokenizer_fingerprint(self.tokenizer):
            raise ValueError(
                f"the server at {self.base_url} uses another tokenizer (fingerprint {fingerprint}; the trainer's is "
                f"{tokenizer_fingerprint(self.tokenizer)}): start it with the policy's tokenizer (--tokenizer)"
            )

    def _open(self, count: int) -> list[Any]:
        from satori_env.integrations.openenv import SatoriEnvClient

        while len(self._sessions) < count:
            self._sessions.append(SatoriEnvClient(base_url=self.base_url).sync().connect())
        return self._sessions[:count]

    def close(self) -> None:
        """Close the sessions."""
        for session in self._sessions:
            session.close()
        self._sessions.clear()


def generate_with_trainer(
    trainer: Any, prompt_ids: list[list[int]]
) -> tuple[list[list[int]], list[list[float]] | None]:
    """Completions of ``prompt_ids`` by the trainer's own generation path (its vLLM engine, with
    its weight synchronisation, or ``transformers`` generate), one per prompt, and their
    log-probabilities where the generator gives them (vLLM)."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    return trainer._generate_single_turn(prompt_ids, None, {}, 1)


def _clipped(logprobs: list | None, completion_ids: list[list[int]]) -> list | None:
    """The log-probabilities of the tokens the episodes took."""
    if logprobs is None:
        return None
    return [list(lp[: len(ids)]) for lp, ids in zip(logprobs, completion_ids)]


def _row(info: dict[str, Any], index: int) -> dict[str, Any]:
    """Episode ``index`` of a vector env's batched info."""
    return {
        key: (_row(value, index) if isinstance(value, dict) else value[index])
        for key, value in info.items()
        if not key.startswith("_")
    }


def _field_reward(field: str) -> Callable[..., list[float]]:
    def reward(completions: list, **kwargs: Any) -> list[float]:
        return [float(value) for value in kwargs[field]]

    reward.__name__ = field
    return reward


def reward_funcs(reward: Any = None, verifier: Verifier | None = None) -> list[Callable[..., list[float]]]:
    """Reward functions for TRL's own generation (no ``rollout_func``): each completion judged by
    the verifier against the dataset's ``answer`` column, one function per term of ``reward``
    (TRL logs each). The COAT actions are counted in the completion text; there are no restarts,
    so the reflection bonus is 0. The verdicts of a batch are computed once for all terms."""
    spec = make_reward(reward)
    memo: dict[str, Any] = {"key": None, "terms": None}

    def terms_of(completions: list, answer: list[str], completion_ids: list | None) -> list[dict[str, float]]:
        key = (id(completions), len(completions))
        if memo["key"] != key:
            texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
            verdicts = (verifier or default_verifier()).check_batch(zip(texts, answer))
            episodes = [
                Episode(
                    problem=Problem("trl", "", gold, "trl"),
                    completion=text,
                    answer=verdict.predicted,
                    correct=verdict.correct,
                    verifier_status=verdict.status,
                    actions={name: text.count(token) for name, token in META_ACTIONS.items()},
                    num_tokens=len(completion_ids[i]) if completion_ids is not None else len(text),
                    truncated=False,
                    reflect_status=0,
                )
                for i, (text, gold, verdict) in enumerate(zip(texts, answer, verdicts))
            ]
            memo.update(key=key, terms=spec.batch(episodes))
        return memo["terms"]

    def term_reward(name: str) -> Callable[..., list[float]]:
        def reward_fn(
            completions: list, answer: list[str], completion_ids: list | None = None, **_: Any
        ) -> list[float]:
            return [terms[name] for terms in terms_of(completions, answer, completion_ids)]

        reward_fn.__name__ = f"satori_{name}"
        return reward_fn

    return [term_reward(name) for name in spec.terms]
