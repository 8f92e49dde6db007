"""The toy run the distributed tests compare: :func:`tests.helpers.toy_policy` learning to write
"a b c" with PPO, in any layout (one process, ``torchrun`` ranks, Ray actors). Runnable as a
script, so that ``torchrun`` and a SIGKILL test can start it:

    python -m tests.distributed_toy OUT [--ray] [--learner-ranks N] [--kill-at ITERATION] [--resume]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

import torch

from satori_env import Problem, RewardSpec
from tests.helpers import gloo_threads

TARGET = ["a", "b", "c"]
ITERATIONS = 6


def prefix_matched(episode) -> float:
    """The share of "a b c" written right from the start."""
    matched = 0
    for word, want in zip(episode.completion.split(), TARGET):
        if word != want:
            break
        matched += 1
    return matched / len(TARGET)


def toy_config(out: str | Path, **overrides):
    from agents.config import TrainConfig

    settings = dict(
        out=str(out), algo="ppo", critic="separate", iterations=ITERATIONS, episodes_per_iteration=16, max_new_tokens=3,
        prompt_template="{question}", actor_lr=1e-2, critic_lr=1e-2, minibatch_size=8, micro_batch_size=4, ppo_epochs=2,
        seed_per_episode=True, restart_prob=0.0, eval_per_level=0, checkpoint_every=2, bf16=False, progress=False,
        device="cpu", threads=1, rollout_workers=2,
    )  # fmt: skip
    return TrainConfig(**{**settings, **overrides})


def run_toy(out: str | Path, policy: str | Path, **overrides) -> dict:
    from agents.train import train_rl

    reward = RewardSpec({"matched": (prefix_matched, 1.0)})
    return train_rl(
        toy_config(out, **overrides), str(policy), tasks=[Problem("toy", "q", "a b c", "toy")], reward=reward
    )


def _kill_mid_save(iteration: int) -> None:
    """SIGKILL this process while it writes checkpoint ``iteration`` (after the learner's shards,
    before the trainer state): a real kill in the middle of a distributed save."""
    import agents.distributed.run as run

    real = run.save_trainer_state

    def save_then_die(directory, step, *args, **kwargs):
        if step == iteration:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(directory, step, *args, **kwargs)

    run.save_trainer_state = save_then_die


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--policy", required=True)
    parser.add_argument("--ray", action="store_true")
    parser.add_argument("--learner-ranks", type=int, default=1)
    parser.add_argument("--kill-at", type=int, default=None)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    if args.kill_at is not None:
        _kill_mid_save(args.kill_at)
    torch.set_num_threads(1)
    run_toy(args.out, args.policy, ray=args.ray, learner_ranks=args.learner_ranks, resume=args.resume)
    leftover = gloo_threads()  # a torchrun rank must have ended its group: its threads can abort the exit
    assert not leftover, f"gloo threads outlived the run: {leftover}"
    return 0


if __name__ == "__main__":
    sys.exit(main())
