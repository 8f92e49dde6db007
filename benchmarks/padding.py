"""Padding in the RL update: length buckets against one padded micro-batch, on the rollouts the
tiny preset actually produces.

    python benchmarks/padding.py --model runs/tiny/sft/model   # a format-tuned policy (satori sft / train)
    python benchmarks/padding.py                               # format-tunes one first (about 3 minutes)

A format-tuned policy writes one iteration of the tiny preset (128 episodes, its sampling, its
levels and restart-free starts); the PPO update (scoring and one epoch of minibatches of 32)
then runs on that same rollout twice from the same weights: with ``length_buckets`` (ours) and
with each minibatch as one micro-batch padded to its longest row (the baseline, what the update
did before). Printed: the share of padding in the tokens each ran on, and the median seconds of
``--repeats`` updates each.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from unittest import mock

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import agents.algorithms.base as base  # noqa: E402
from agents.config import preset  # noqa: E402
from agents.rollout import collect_rollout  # noqa: E402
from agents.speed_report import Ratio, machine, write_json  # noqa: E402
from agents.train import LocalRun, sampling, stage_one  # noqa: E402


def one_bucket(rows, lengths, max_rows, device):
    """The baseline: the minibatch's rows as micro-batches of ``max_rows`` in their drawn order."""
    return [rows[start : start + max_rows] for start in range(0, len(rows), max_rows)]


def timed_updates(run: LocalRun, rollout, repeats: int, bucketed: bool) -> tuple[float, float]:
    """Median seconds of scoring + update from the same weights, and the padding share."""
    seconds, share = [], 0.0
    for _ in range(repeats):
        policy = copy.deepcopy(run.policy)
        algorithm = type(run.algorithm)(policy, run.config)
        with mock.patch.object(base, "length_buckets", base.length_buckets if bucketed else one_bucket):
            start = time.perf_counter()
            metrics = algorithm.update(rollout)
            seconds.append(time.perf_counter() - start)
        share = metrics["perf/padding_share"]
    return statistics.median(seconds), share


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a format-tuned policy (default: format-tune one)")
    parser.add_argument("--sft-steps", type=int, default=400, help="format-tuning steps when no --model is given")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        config = replace(
            preset("tiny"), out=tmp, restart_prob=0.0, curriculum=None, eval_per_level=0, progress=False, bf16=False
        )
        model = args.model or str(stage_one(replace(config, sft_steps=args.sft_steps, sft_validation=0)))
        run = LocalRun(config, model)
        run.envs.reset(seed=0)
        rollout = collect_rollout(run.envs, run.engine, sampling(config, 0), run.group_size)
        lengths = rollout.attention_mask.sum(1)
        print(
            f"rollout: {rollout.num_episodes} episodes, lengths {int(lengths.min())}-{int(lengths.max())} "
            f"(mean {float(lengths.float().mean()):.0f}) tokens"
        )
        baseline, baseline_share = timed_updates(run, rollout, args.repeats, bucketed=False)
        ours, share = timed_updates(run, rollout, args.repeats, bucketed=True)
    print(f"padding share: {baseline_share:.1%} one padded micro-batch per minibatch, {share:.1%} length buckets")
    print(f"scoring + update: {baseline:.2f} s -> {ours:.2f} s ({baseline / ours:.2f}x)")
    write_json(
        [
            Ratio("padding", "tiny preset update (s)", ours, baseline, "one padded micro-batch", lower_is_better=True),
            Ratio("padding", "padded tokens (share)", share, baseline_share, "one padded micro-batch", True),
        ],
        args.json,
    )


if __name__ == "__main__":
    main()
