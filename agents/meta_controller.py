"""COAT at the level of meta-actions: a Gymnasium env in which a controller decides *when to
reflect* and a frozen language model writes the steps.

Each step the controller picks one of :data:`META_CHOICES`; the env appends that meta-action
token (``answer`` appends ``<|continue|>The answer is``) and the frozen LM writes the step, up
to the next meta-action token it would write itself (which is not appended: choosing it is the
controller's job) or the end of the solution. The token-level :class:`~satori_env.SatoriMathEnv`
underneath applies the tokens and judges the episode, so rewards and ``info`` are the ones it
defines (default reward: "binary", 1 for a right answer).

The observation is a small feature vector (:data:`FEATURES`): the step index, the meta-action
counts, the LM's confidence in the step it just wrote, the LM's own preference for the next
meta-action, and whether the step changed the current answer (the last number written).
stable-baselines3's PPO and DQN learn on it directly::

    env = CoatMetaEnv(LMStepWriter.from_pretrained("runs/tiny/sft/model"))
    stable_baselines3.PPO("MlpPolicy", env).learn(4096)
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from agents.policy import masked_log_softmax
from satori_env import Problem, SatoriMathEnv
from satori_env.coat import CONTINUE, META_ACTIONS

__all__ = ["FEATURES", "META_CHOICES", "CoatMetaEnv", "LMStepWriter", "StepWriter", "WrittenStep", "play"]

META_CHOICES: tuple[str, ...] = ("continue", "reflect", "explore", "answer")
"""The controller's actions, in action-index order."""
ANSWER_PREFIX = f"{CONTINUE}The answer is"
FEATURES: tuple[str, ...] = (
    "step_fraction",
    "continue_fraction",
    "reflect_fraction",
    "explore_fraction",
    "step_mean_prob",
    "step_min_prob",
    "lm_prefers_continue",
    "lm_prefers_reflect",
    "lm_prefers_explore",
    "answer_changed",
)
"""Names of the observation's entries (counts are divided by ``max_steps``)."""
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class WrittenStep:
    """What the LM wrote after a meta-action, and how sure it was.

    Attributes:
        tokens: the ids written; the last is EOS when the LM ended the solution.
        mean_prob: mean probability the LM gave the tokens it wrote (1.0 for an empty step).
        min_prob: the smallest of them.
        next_action_probs: the LM's probability of writing ``<|continue|>``, ``<|reflect|>``,
            ``<|explore|>`` next, where the step ended.
    """

    tokens: tuple[int, ...]
    mean_prob: float
    min_prob: float
    next_action_probs: tuple[float, float, float]


class StepWriter(Protocol):
    """Writes one COAT step: continues ``tokens`` (a state ending in a meta-action or the answer
    prefix) until the next meta-action or the end of the solution."""

    tokenizer: Any

    def write(self, tokens: Sequence[int]) -> WrittenStep: ...


class LMStepWriter:
    """A frozen causal LM writing steps greedily, with a KV cache; steps are memoised by state,
    so revisited states (the same problem, the same choices) cost nothing.

    Args:
        model: a transformers causal LM (put in eval mode; never trained here).
        tokenizer: its tokenizer, with the COAT tokens.
        max_step_tokens: most tokens in one step.
        memo_size: states whose steps are remembered.
    """

    def __init__(self, model: Any, tokenizer: Any, max_step_tokens: int = 48, memo_size: int = 100_000) -> None:
        self.model, self.tokenizer = model.eval(), tokenizer
        self.max_step_tokens, self.memo_size = max_step_tokens, memo_size
        self.meta_ids = [tokenizer.convert_tokens_to_ids(token) for token in META_ACTIONS.values()]
        self.eos_id = tokenizer.eos_token_id
        self.device = next(model.parameters()).device
        # what the token env refuses: padding, and ids beyond the tokenizer (padded embeddings)
        self.forbidden = torch.zeros(
            model.get_output_embeddings().weight.shape[0], dtype=torch.bool, device=self.device
        )
        self.forbidden[len(tokenizer) :] = True
        if tokenizer.pad_token_id is not None:
            self.forbidden[tokenizer.pad_token_id] = True
        self._memo: OrderedDict[tuple[int, ...], WrittenStep] = OrderedDict()

    @classmethod
    def from_pretrained(cls, path: str, device: str = "cpu", **kwargs: Any) -> LMStepWriter:
        """Load a policy (local path or hub id) as a step writer."""
        from agents.models import load_policy

        model, tokenizer = load_policy(path, device=device)
        return cls(model, tokenizer, **kwargs)

    def write(self, tokens: Sequence[int]) -> WrittenStep:
        key = tuple(int(t) for t in tokens)
        if key in self._memo:
            self._memo.move_to_end(key)
            return self._memo[key]
        step = self._write(key)
        self._memo[key] = step
        if len(self._memo) > self.memo_size:
            self._memo.popitem(last=False)
        return step

    @torch.no_grad()
    def _write(self, tokens: tuple[int, ...]) -> WrittenStep:
        logits, cache = self._forward(list(tokens), None)
        written: list[int] = []
        probs: list[float] = []
        for _ in range(self.max_step_tokens):
            distribution = masked_log_softmax(logits, self.forbidden, 1.0).exp()
            token = int(distribution.argmax())
            if token in self.meta_ids:
                break
            written.append(token)
            probs.append(float(distribution[token]))
            if token == self.eos_id:
                break
            logits, cache = self._forward([token], cache)
        else:
            distribution = masked_log_softmax(logits, self.forbidden, 1.0).exp()
        next_probs = tuple(float(distribution[i]) for i in self.meta_ids)
        return WrittenStep(tuple(written), float(np.mean(probs)) if probs else 1.0, min(probs, default=1.0), next_probs)

    def _forward(self, ids: list[int], cache: Any) -> tuple[torch.Tensor, Any]:
        """Next-token logits after ``ids`` and the KV cache (passed by position: transformers
        names the argument ``cache`` from 5.20 on, ``past_key_values`` before)."""
        out = self.model(torch.tensor([ids], device=self.device), None, None, cache, use_cache=True)
        return out.logits[0, -1], out.cache if "cache" in out else out.past_key_values


class CoatMetaEnv(gym.Env):
    """Choose the next meta-action; a frozen LM writes the step. See the module docstring.

    ## Action Space
    ``Discrete(4)``: :data:`META_CHOICES` (continue, reflect, explore, answer). At the last of
    ``max_steps`` steps every action answers.

    ## Observation Space
    ``Box(0, 1, (10,), float32)``: :data:`FEATURES`.

    ## Rewards and Episode End
    Those of the token-level env underneath (``reward``, default "binary"): 0 until the episode
    ends, when the LM writes EOS (after an answer, or on its own within a step). An answer step
    that does not end is closed with EOS.

    ## Info
    The token-level env's info (``correct``, ``reward_terms``, ``actions``, ``completion``...)
    plus ``choices``: the controller's actions so far.

    Args:
        writer: the frozen LM (a :class:`StepWriter`, e.g. :class:`LMStepWriter`).
        tasks: problems, as ``SatoriMathEnv(tasks=...)`` takes them (default: procedural arithmetic).
        max_steps: meta-actions per episode, the final answer included.
        reward: the token-level env's reward (default "binary").
        **env_kwargs: more arguments of the token-level env (``prompt_template``, ``verifier``...).
    """

    metadata = {"render_modes": []}

    def __init__(
        self, writer: StepWriter, tasks: Any = None, max_steps: int = 8, reward: Any = "binary", **env_kwargs: Any
    ) -> None:
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        self.writer, self.max_steps = writer, max_steps
        step_tokens = getattr(writer, "max_step_tokens", 64)
        self.env = SatoriMathEnv(
            tasks=tasks,
            tokenizer=writer.tokenizer,
            observation_mode="tokens",
            reward=reward,
            max_new_tokens=max_steps * (step_tokens + 8) + 1,
            **env_kwargs,
        )
        tokenizer = self.env.tokenizer
        self._prefix = {name: [tokenizer.convert_tokens_to_ids(token)] for name, token in META_ACTIONS.items()}
        self._prefix["answer"] = tokenizer.encode(ANSWER_PREFIX, add_special_tokens=False)
        self.action_space = spaces.Discrete(len(META_CHOICES))
        self.observation_space = spaces.Box(0.0, 1.0, shape=(len(FEATURES),), dtype=np.float32)
        self._choices: list[str] = []
        self._last: WrittenStep | None = None
        self._answer: str | None = None  # the last number written so far
        self._answer_changed = False
        self._prompt_length = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        _, info = self.env.reset(seed=seed, options=options)
        self._choices, self._last, self._answer, self._answer_changed = [], None, None, False
        self._prompt_length = info["prompt_length"]
        return self._features(), {**info, "choices": []}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(
                f"action must be an integer in [0, {len(META_CHOICES)}) ({', '.join(META_CHOICES)}), got {action!r}"
            )
        choice = META_CHOICES[int(action)] if len(self._choices) < self.max_steps - 1 else "answer"
        self._choices.append(choice)
        state = self.env.tokens.tolist() + self._prefix[choice]
        step = self.writer.write(state)
        chunk = self._prefix[choice] + list(step.tokens)
        if choice == "answer" and (not step.tokens or step.tokens[-1] != self.env.eos_id):
            chunk.append(self.env.eos_id)
        _, reward, terminated, truncated, info = self.env.step_tokens(chunk)
        self._last = step
        answer = self._current_answer()
        self._answer_changed, self._answer = answer != self._answer, answer
        return self._features(), float(reward), terminated, truncated, {**info, "choices": list(self._choices)}

    def _current_answer(self) -> str | None:
        """The last number written so far (the running answer of a step-by-step solution)."""
        written = self.env.tokenizer.decode(self.env.tokens[self._prompt_length :].tolist())
        numbers = _NUMBER.findall(written)
        return numbers[-1] if numbers else None

    def _features(self) -> np.ndarray:
        last = self._last or WrittenStep((), 1.0, 1.0, (0.0, 0.0, 0.0))
        counts = [self._choices.count(name) for name in ("continue", "reflect", "explore")]
        values = [len(self._choices), *counts]
        features = [v / self.max_steps for v in values]
        features += [last.mean_prob, last.min_prob, *last.next_action_probs, float(self._answer_changed)]
        return np.clip(np.asarray(features, dtype=np.float32), 0.0, 1.0)


def play(
    env: CoatMetaEnv, controller: Callable[[np.ndarray], int], problems: Iterable[Problem]
) -> list[dict[str, Any]]:
    """One episode per problem with ``controller(observation) -> action``; the final infos."""
    infos = []
    for problem in problems:
        observation, _ = env.reset(options={"problem": problem})
        done = False
        while not done:
            observation, _, terminated, truncated, info = env.step(controller(observation))
            done = terminated or truncated
        infos.append(info)
    return infos
