"""A random agent in SatoriMath-v0: it writes allowed tokens at random until each episode ends.

python examples/random_agent.py --episodes 3
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

import satori_env  # noqa: F401  (registers SatoriMath-v0)


def main(episodes: int = 3, seed: int = 0) -> list[float]:
    env = gym.make("SatoriMath-v0", max_new_tokens=24, render_mode="ansi")
    rng = np.random.default_rng(seed)
    returns = []
    for episode in range(episodes):
        env.reset(seed=seed + episode)
        done, total = False, 0.0
        while not done:
            allowed = np.flatnonzero(env.unwrapped.action_masks())
            _, reward, terminated, truncated, info = env.step(int(rng.choice(allowed)))
            total += reward
            done = terminated or truncated
        returns.append(total)
        print(env.render(), end="")
        print(
            f"episode {episode}: return {total}, answer {info['answer']!r} (gold {info['gold']}), "
            f"{'terminated' if terminated else 'truncated'} after {info['num_new_tokens']} tokens\n"
        )
    env.close()
    return returns


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.episodes, args.seed)
