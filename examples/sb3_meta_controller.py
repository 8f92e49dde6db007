"""stable-baselines3 learns *when to reflect*: PPO and DQN controllers over COAT meta-actions,
with the format-tuned tiny LM frozen underneath, against always-continue and random controllers.

The controller sees a feature vector (step, meta-action counts, the LM's confidence in its last
step, the LM's own next-meta-action preference, whether the answer changed) and picks continue,
reflect, explore or answer; the LM writes each step (see :mod:`agents.meta_controller`).

    python examples/sb3_meta_controller.py --timesteps 4096
    python examples/sb3_meta_controller.py --model runs/tiny/sft/model --timesteps 256 --n-steps 64 \
        --learning-starts 32 --train-problems 32 --test-per-level 10      # a quick look (about a minute)
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from agents.config import preset
from agents.meta_controller import CoatMetaEnv, LMStepWriter, play
from agents.train import stage_one
from satori_env import load_problems


def evaluate(env: CoatMetaEnv, controller, problems) -> dict[str, float]:
    """Accuracy, steps and meta-action rates of ``controller(obs) -> action`` on ``problems``."""
    infos = play(env, controller, problems)
    return {
        "accuracy": float(np.mean([info["correct"] for info in infos])),
        "steps": float(np.mean([len(info["choices"]) for info in infos])),
        "reflect / episode": float(np.mean([info["choices"].count("reflect") for info in infos])),
        "explore / episode": float(np.mean([info["choices"].count("explore") for info in infos])),
    }


def main(
    model: str | None = None,
    timesteps: int = 4096,
    train_problems: int = 512,
    test_per_level: int = 200,
    levels: tuple[int, ...] = (2, 3),
    seed: int = 0,
    out: str = "runs/meta_controller",
    n_steps: int = 512,
    learning_starts: int = 256,
) -> dict[str, dict[str, float]]:
    from stable_baselines3 import DQN, PPO

    torch.manual_seed(seed)
    if model is None:
        print("no --model: building and format-tuning the tiny policy in runs/tiny (stage one, minutes)", flush=True)
        model = str(stage_one(replace(preset("tiny"), out="runs/tiny")))
    writer = LMStepWriter.from_pretrained(model, max_step_tokens=48)
    train = [
        p
        for level in levels
        for p in load_problems("arith:train", level=level, limit=train_problems // len(levels), seed=seed)
    ]
    test = [p for level in levels for p in load_problems("arith:test", level=level, limit=test_per_level, seed=seed)]
    env, test_env = CoatMetaEnv(writer, tasks=train), CoatMetaEnv(writer, tasks=test)
    rng = np.random.default_rng(seed)
    controllers = {
        "always continue": lambda obs: 0,
        "random": lambda obs: int(rng.integers(4)),
        "LM's own choice": lambda obs: int(np.argmax(obs[6:9])),  # the meta-action the LM would write
    }
    learners = {
        "PPO": PPO(
            "MlpPolicy",
            env,
            n_steps=n_steps,
            batch_size=min(64, n_steps),
            ent_coef=0.01,
            seed=seed,
            device="cpu",
            verbose=0,
        ),
        "DQN": DQN(
            "MlpPolicy",
            env,
            learning_starts=learning_starts,
            exploration_fraction=0.3,
            target_update_interval=250,
            train_freq=4,
            seed=seed,
            device="cpu",
            verbose=0,
        ),
    }
    for name, learner in learners.items():
        print(f"training the {name} controller for {timesteps} steps", flush=True)
        learner.learn(total_timesteps=timesteps, progress_bar=True)
        controllers[name] = lambda obs, learner=learner: int(learner.predict(obs, deterministic=True)[0])
    print(f"evaluating {len(controllers)} controllers on {len(test)} held-out problems", flush=True)
    results = {name: evaluate(test_env, controller, test) for name, controller in controllers.items()}
    base, rand = results["always continue"]["accuracy"], results["random"]["accuracy"]
    lines = [
        f"held-out arith:test levels {list(levels)}, {len(test)} problems; SB3 trained {timesteps} steps on "
        f"{len(train)} problems",
        "",
        "| controller | accuracy | vs always-continue | vs random | steps | reflect / ep. | explore / ep. |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in results.items():
        lines.append(
            f"| {name} | {row['accuracy']:.3f} | {row['accuracy'] - base:+.3f} | {row['accuracy'] - rand:+.3f} "
            f"| {row['steps']:.2f} | {row['reflect / episode']:.2f} | {row['explore / episode']:.2f} |"
        )
    table = "\n".join(lines)
    print(table)
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "results.md").write_text(table + "\n")
    (Path(out) / "results.json").write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a format-tuned policy (default: build runs/tiny with stage one)")
    parser.add_argument("--timesteps", type=int, default=4096)
    parser.add_argument("--train-problems", type=int, default=512)
    parser.add_argument("--test-per-level", type=int, default=200)
    parser.add_argument("--n-steps", type=int, default=512, help="PPO's rollout length per update")
    parser.add_argument("--learning-starts", type=int, default=256, help="DQN's steps before it learns")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/meta_controller")
    args = parser.parse_args()
    main(
        args.model,
        args.timesteps,
        args.train_problems,
        args.test_per_level,
        seed=args.seed,
        out=args.out,
        n_steps=args.n_steps,
        learning_starts=args.learning_starts,
    )
