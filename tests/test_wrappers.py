"""TextActions: acting with text agrees with stepping token by token, also past the episode's end."""

import gymnasium as gym
import numpy as np
import pytest

import satori_env
from satori_env.wrappers import TextActions

PROBLEM = satori_env.Problem("demo", "What is 2+3?", "5", "demo")


def test_sampled_text_actions_never_raise():
    env = TextActions(gym.make("SatoriMath-v0", max_new_tokens=24))
    env.action_space.seed(0)
    env.reset(seed=0)
    episodes = 0
    for _ in range(200):
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        if terminated or truncated:
            episodes += 1
            env.reset()
    assert episodes > 20  # long random texts end episodes by truncation, without errors


@pytest.mark.parametrize(
    "text",
    [
        "<|continue|>" + "2+3=5 " * 40,  # past the token limit
        "<|continue|>The answer is \\boxed{5}.<|endoftext|> and then some more text",  # past EOS
    ],
)
def test_text_past_the_end_is_what_stepping_token_by_token_applies(text):
    wrapped = TextActions(gym.make("SatoriMath-v0", max_new_tokens=24))
    wrapped.reset(seed=0, options={"problem": PROBLEM})
    observation, reward, terminated, truncated, info = wrapped.step(text)

    plain = gym.make("SatoriMath-v0", max_new_tokens=24)
    plain.reset(seed=0, options={"problem": PROBLEM})
    ids = plain.unwrapped.tokenizer.encode(text, add_special_tokens=False)
    applied = 0
    for token in ids:
        expected, applied = plain.step(token), applied + 1
        if expected[2] or expected[3]:
            break
    assert np.array_equal(observation["tokens"], expected[0]["tokens"])
    assert (reward, terminated, truncated) == expected[1:4]
    assert info["dropped_tokens"] == len(ids) - applied > 0
    assert info["correct"] == expected[4]["correct"]
