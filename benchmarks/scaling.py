"""Scaling out: rollout throughput with 1 and 2 Ray workers, the bytes an iteration moves, and a
projection to 8 and 64 GPUs.

    python benchmarks/scaling.py              # about a minute on 2 CPU cores (needs ray)

1. Rollout throughput (episodes/s) of the tiny preset's model (3.4M parameters, random weights,
   up to ``--new-tokens`` tokens per episode) over ``--episodes`` procedural episodes: the same
   starts given to 1 and then 2 Ray rollout workers (each a vector env shard and the HF engine,
   one thread each), in the same run. On a 2-core machine the ratio is bounded by 2 and by what
   else runs; it says whether the workers overlap, not what a cluster gains.
2. Bytes per iteration: weights out (the actor's state dict, sent to every worker through Ray's
   object store) and trajectories in (the workers' :class:`~agents.rollout.Episodes`, pickled,
   as Ray sends them).
3. A projection for 8 and 64 GPUs of the 7b preset (``--project``), from stated assumptions
   (printed with the table): generation and learner throughput per GPU, the interconnect.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import tempfile
import time
from dataclasses import replace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from agents.speed_report import Ratio, machine, write_json  # noqa: E402

# Assumptions of the projection (7b preset: 1024 episodes of up to 3072 new tokens per iteration,
# PPO with a separate critic; bf16 weights on the wire).
PROJECTION = {
    "parameters": 7.62e9,
    "critic_parameters": 7.07e9,
    "episodes": 1024,
    "mean_tokens": 1500,  # prompt + response per episode (GSM8K-like: responses well under the 3072 cap)
    "generation_tokens_per_gpu_s": 15_000,  # vLLM, 7B bf16, large decode batches on an H100
    "learner_mfu": 0.35,  # model FLOPs utilisation of the FSDP2 learner
    "gpu_flops": 989e12,  # H100 SXM bf16 dense
    "interconnect_bytes_s": 25e9,  # 200 Gb/s InfiniBand between nodes (NVLink inside a node is faster)
}


def _workers(config, model_path: str, count: int, size: int, window: int):
    import ray

    from agents.distributed.ray_train import WorkerActor

    actor = ray.remote(WorkerActor).options(num_cpus=1)
    sizes = [size // count + (i < size % count) for i in range(count)]
    return [actor.remote(config, model_path, part, window, None, i) for i, part in enumerate(sizes)], sizes


def rollout_throughput(
    model_path: str, episodes: int, new_tokens: int, repeats: int
) -> tuple[dict[int, float], int, int]:
    """Episodes/s with 1 and 2 workers (best of ``repeats``), the weights' bytes, and the
    trajectories' bytes of one iteration."""
    import ray

    from agents.config import preset
    from agents.engines import SamplingParams
    from agents.models import load_policy
    from agents.train import make_envs

    config = replace(preset("tiny"), device="cpu", threads=1, max_new_tokens=new_tokens, restart_prob=0.0)
    model, tokenizer = load_policy(model_path, device="cpu")
    planner = make_envs(config, tokenizer, episodes)
    planner.reset_groups(1)
    starts, window = planner.starts(), planner.envs[0].max_prompt_tokens
    params = SamplingParams(new_tokens, 0.7, 1.0, seed=0)
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    ray.init(num_cpus=max(os.cpu_count() or 1, 2), include_dashboard=False, log_to_driver=False)
    rates, trajectories = {}, 0
    try:
        for count in (1, 2):
            workers, sizes = _workers(config, model_path, count, episodes, window)
            offsets = [sum(sizes[:i]) for i in range(count)]
            ray.get([w.run.remote(starts[o : o + n], params, o) for w, n, o in zip(workers, sizes, offsets)])  # warm-up
            best = float("inf")
            for _ in range(repeats):
                started = time.perf_counter()
                results = ray.get(
                    [w.run.remote(starts[o : o + n], params, o) for w, n, o in zip(workers, sizes, offsets)]
                )
                best = min(best, time.perf_counter() - started)
            rates[count] = episodes / best
            trajectories = sum(len(pickle.dumps(episodes_)) for episodes_, _ in results)
            for worker in workers:
                ray.kill(worker)
    finally:
        ray.shutdown()
    return rates, weights, trajectories


def projection(gpus: int) -> dict[str, float]:
    """Seconds per iteration of the 7b preset on ``gpus`` GPUs, half generating and half learning."""
    p = PROJECTION
    workers = learners = gpus // 2
    tokens = p["episodes"] * p["mean_tokens"]
    generate = tokens / (p["generation_tokens_per_gpu_s"] * workers)
    # PPO: scoring (forward of actor, critic) and one epoch of forward+backward of both: about 8 P per token
    flops = (2 + 6) * (p["parameters"] + p["critic_parameters"]) * tokens
    learn = flops / (p["gpu_flops"] * p["learner_mfu"] * learners)
    sync = 2 * p["parameters"] / p["interconnect_bytes_s"]  # one bf16 copy of the actor to each worker node
    return {
        "gpus": gpus,
        "generate_s": generate,
        "learn_s": learn,
        "sync_s": sync,
        "iteration_s": generate + learn + sync,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", default=None, help="write the ratio rows here")
    args = parser.parse_args()

    from agents.models import build_model

    with tempfile.TemporaryDirectory() as tmp:
        build_model("tiny", os.path.join(tmp, "tiny"), seed=0)
        rates, weights, trajectories = rollout_throughput(
            os.path.join(tmp, "tiny"), args.episodes, args.new_tokens, args.repeats
        )
    print(f"machine: {machine()}")
    print(
        f"rollout of {args.episodes} episodes (<= {args.new_tokens} new tokens, tiny model, HF engine, 1 thread each)"
    )
    print("| workers | episodes/s |\n|---|---|")
    for count, rate in rates.items():
        print(f"| {count} | {rate:.1f} |")
    print(f"\nbytes per iteration: weights out {weights / 1e6:.1f} MB per worker, ", end="")
    print(f"trajectories in {trajectories / 1e6:.2f} MB")
    assumptions = ", ".join(f"{name}={value:g}" for name, value in PROJECTION.items())
    print(f"\nprojection, 7b preset (assumptions: {assumptions})")
    print("| GPUs | generate s | learn s | weights sync s | s/iteration |\n|---|---|---|---|---|")
    for gpus in (8, 64):
        row = projection(gpus)
        cells = (row["generate_s"], row["learn_s"], row["sync_s"], row["iteration_s"])
        print(f"| {gpus} | " + " | ".join(f"{cell:.1f}" for cell in cells) + " |")
    write_json(
        [Ratio("scaling", f"rollout episodes/s, {args.episodes} episodes", rates[2], rates[1], "1 worker", False)],
        args.json,
    )


if __name__ == "__main__":
    main()
