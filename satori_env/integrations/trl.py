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

    trainer = GRPOTrainer(model=..., args=GRPOConfig(...), processing_class=tokenizer,
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
from satori_env.integrations.episodes import applicable, outcome, start_of
from satori_env.restart import RestartBuffer
from satori_env.rewards import Episode, make_reward
from satori_env.tasks import Problem, make_source
from satori_env.tokenizer import add_coat_tokens, load_tokenizer, tokenizer_fingerprint
from satori_env.vector import SatoriMathVectorEnv
from satori_env.verifier import Verifier, default_verifier

__all__ = ["SatoriRollout", "reward_funcs"]


class SatoriRollout:
    """A ``rollout_func`` for ``trl.GRPOTrainer`` that runs SatoriMath episodes.

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
        self.tokenizer = load_tokenizer(tokenizer)
        add_coat_tokens(self.tokenizer)
        self.source = make_source(tasks)
        self.template = get_template(prompt_template)
        self.reward = make_reward(reward)
        self.restart_prob = float(restart_prob)
        if restart_buffer is None and restart_prob > 0:
            restart_buffer = RestartBuffer(self.tokenizer, max_prefix_tokens=max_new_tokens + 1, seed=seed)
        self.restart_buffer = restart_buffer
        self.max_new_tokens = max_new_tokens
        self.rng = np.random.default_rng(seed)
        self._problems: dict[str, Problem] = {}
        self._envs: dict[int, SatoriMathVectorEnv] = {}

    # -- the data TRL samples from ---------------------------------------------------------------

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

    # -- the rollout -----------------------------------------------------------------------------

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
                "with SatoriRollout.dataset(...)"
            )
        envs = self._vector_env(len(prompts))
        starts = [
            start_of(self._problems[p], self.restart_buffer, self.restart_prob, self.rng) for p in prompts[::group]
        ]
        envs.reset_groups(group, starts)
        prompt_ids = [tokens.tolist() for tokens in envs.tokens]
        generated, logprobs = generate_with_trainer(trainer, prompt_ids)
        completion_ids = [applicable(env, ids) for env, ids in zip(envs.envs, generated)]
        if logprobs is not None:
            logprobs = [list(lp[: len(ids)]) for lp, ids in zip(logprobs, completion_ids)]
        _, rewards, _, _, info = envs.step_tokens(completion_ids)
        episodes = [outcome(rewards[i], _row(info, i)) for i in range(envs.num_envs)]
        if self.restart_buffer is not None:
            self.restart_buffer.add_trajectories(info["trajectory"])
        fields = {f"satori_{name}": [e["reward_terms"][name] for e in episodes] for name in self.reward.terms}
        fields["satori_correct"] = [float(e["correct"]) for e in episodes]
        fields["satori_from_restart"] = [float(e["from_restart"]) for e in episodes]
        return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": logprobs, **fields}

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

    def _check_tokenizer(self, trainer: Any) -> None:
        theirs = getattr(trainer, "processing_class", None)
        if theirs is not None and tokenizer_fingerprint(theirs) != tokenizer_fingerprint(self.tokenizer):
            raise ValueError(
                "the trainer's tokenizer is not the rollout's (their vocabularies differ): pass the trainer's "
                "tokenizer to SatoriRollout(tokenizer=...), with the COAT tokens added (add_coat_tokens)"
            )


def generate_with_trainer(
    trainer: Any, prompt_ids: list[list[int]]
) -> tuple[list[list[int]], list[list[float]] | None]:
    """Completions of ``prompt_ids`` by the trainer's own generation path (its vLLM engine, with
    its weight synchronisation, or ``transformers`` generate), one per prompt, and their
    log-probabilities where the generator gives them (vLLM)."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    return trainer._generate_single_turn(prompt_ids, None, {}, 1)


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
