"""Wrappers for SatoriMath environments."""

from __future__ import annotations

import string

import gymnasium as gym
from gymnasium import spaces

__all__ = ["TextActions"]


class TextActions(gym.Wrapper):
    """Act with text instead of token ids, for agents that produce text (an API model, a
    scripted solver): each action is a string, tokenized and applied with ``step_tokens``.

    Write the tokenizer's EOS text (``env.unwrapped.tokenizer.eos_token``) to end the episode;
    text the tokenizer knows as a special token (``<|reflect|>``) becomes that token. Text past
    the end of the episode (after a stop token, or beyond the token limit) is dropped, as
    stepping token by token would end the episode there; ``info["dropped_tokens"]`` counts it.
    Put this wrapper directly around the environment: wrappers between it and the base
    environment do not see the tokens it applies.

    Examples:
        >>> import gymnasium as gym, satori_env
        >>> env = TextActions(gym.make("SatoriMath-v0"))
        >>> _, info = env.reset(seed=0, options={"problem": satori_env.Problem("demo", "What is 2+3?", "5", "demo")})
        >>> text = r"<|continue|>2+3=5<|continue|>The answer is \\boxed{5}.<|endoftext|>"
        >>> _, reward, terminated, _, info = env.step(text)
        >>> reward, terminated, info["correct"], info["actions"]["continue"]
        (0.0, True, True, 2)
    """

    def __init__(self, env: gym.Env, max_length: int = 1 << 16) -> None:
        super().__init__(env)
        self.action_space = spaces.Text(max_length=max_length, charset=string.printable)

    def step(self, action: str):
        if not isinstance(action, str):
            raise TypeError(f"TextActions expects a str action, got {type(action).__name__}")
        base = self.env.unwrapped
        ids = base.tokenizer.encode(action, add_special_tokens=False)
        applied = base.clip_to_episode(ids)
        observation, reward, terminated, truncated, info = base.step_tokens(applied)
        return observation, reward, terminated, truncated, {**info, "dropped_tokens": len(ids) - len(applied)}
