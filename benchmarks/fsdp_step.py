"""The sharded learner's step on the devices there are: s/step and peak memory per device, next to
what the memory plan says, for a model built from a config (random weights: timing and memory do
not depend on training).

    torchrun --nproc-per-node NUM_GPUS benchmarks/fsdp_step.py --shape 1.5b     # a GPU machine
    torchrun --nproc-per-node 2 benchmarks/fsdp_step.py --shape tiny --steps 2   # any CPU (gloo)

Each step is one PPO update (separate critic, as the GPU presets) on a synthetic rollout of
``--episodes`` sequences of ``--tokens`` tokens (a third of them prompt), ``--micro-batch``
sequences per forward pass, one optimiser step (minibatch = the rollout). Rank 0 prints the
table; ``--json PATH`` writes it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SHAPES = {  # Qwen2.5-1.5B's shape, and the tiny preset's
    "1.5b": dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                 num_attention_heads=12, num_key_value_heads=2, tie_word_embeddings=True),
    "tiny": dict(vocab_size=1024, hidden_size=256, intermediate_size=672, num_hidden_layers=4,
                 num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=False),
}  # fmt: skip


def build(shape: str, directory: Path) -> None:
    """A Qwen2 model of ``shape`` with random weights and the shipped tokenizer, saved."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from satori_env.tokenizer import default_tokenizer, save_tokenizer

    tokenizer = default_tokenizer()
    config = Qwen2Config(
        **SHAPES[shape], eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None
    )
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(directory)
    save_tokenizer(tokenizer, directory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="1.5b")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument("--micro-batch", type=int, default=2)
    parser.add_argument("--offload", action="store_true", help="optimiser state on the CPU")
    parser.add_argument("--checkpointing", action="store_true", help="gradient checkpointing")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import torch
    import torch.distributed as dist

    from agents.config import preset
    from agents.distributed.group import open_process_group, release_process_group
    from agents.distributed.learner import ShardedLearner, learner_device
    from agents.distributed.memory import GIB, device_memory_bytes, plan_memory
    from agents.rollout import Rollout

    world = int(os.environ.get("WORLD_SIZE", "1"))
    config = replace(
        preset("1.5b"), device="auto", algo="ppo", critic="separate", episodes_per_iteration=args.episodes,
        minibatch_size=args.episodes, micro_batch_size=args.micro_batch, kl_coef=0.0, learner_ranks=world,
        offload_optimizer=args.offload, gradient_checkpointing=args.checkpointing, restart_prob=0.0,
        tasks="arith", max_new_tokens=args.tokens - args.tokens // 3, threads=0,
    )  # fmt: skip
    device = learner_device(config)
    open_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank()
    shared = [tempfile.mkdtemp() if rank == 0 else None]
    dist.broadcast_object_list(shared, src=0)
    path = Path(shared[0]) / "model"
    if rank == 0:
        build(args.shape, path)
    dist.barrier()
    learner = ShardedLearner(config, str(path), [])
    vocabulary = learner.tokenizer.vocab_size
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(10, vocabulary, (args.episodes, args.tokens), generator=generator)
    mask = torch.zeros(args.episodes, args.tokens - 1)
    mask[:, args.tokens // 3 :] = 1
    rollout = Rollout(
        tokens, torch.ones_like(tokens), mask, torch.randn(args.episodes, generator=generator),
        torch.arange(args.episodes), torch.zeros(args.episodes, dtype=torch.bool), [], [],
    )  # fmt: skip
    times = []
    for _ in range(args.steps + 1):  # the first step warms up
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        learner.update(rollout)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else float("nan")
    peaks = [None] * world
    dist.all_gather_object(peaks, peak)
    if rank == 0:
        from transformers import AutoConfig

        plan = plan_memory(AutoConfig.from_pretrained(path), config, device_memory_bytes(config), world, args.offload)
        step = sorted(times[1:])[len(times[1:]) // 2]
        row = {
            "shape": args.shape, "ranks": world, "device": str(device.type), "episodes": args.episodes,
            "tokens": args.tokens, "micro_batch": args.micro_batch, "offload": args.offload,
            "checkpointing": args.checkpointing, "s_per_step": step,
            "peak_gib_per_device": [p / GIB for p in peaks], "plan_gib_per_device": plan.needed / GIB,
            "plan": plan.describe(),
        }  # fmt: skip
        print(json.dumps(row, indent=1))
        if args.json:
            Path(args.json).write_text(json.dumps(row, indent=1))
    del learner
    release_process_group()


if __name__ == "__main__":
    main()
