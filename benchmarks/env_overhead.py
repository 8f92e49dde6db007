"""Environment overhead: what SatoriMath costs next to a small model generating through it.

    python benchmarks/env_overhead.py            # about a minute on 2 CPU cores

1. Env-only throughput (tokens/s, no model): a single env stepped token by token; the native
   vector env (64 copies) stepped token by token; and the same fed whole 128-token chunks with
   ``step_tokens`` (what an LLM rollout does: generate, then apply).
2. Model in the loop: a Llama-style model of about 1M parameters generates 128 new tokens for
   a batch of 64 prompts with ``transformers``' ``generate`` (sampling), measured
   * raw: ``generate`` alone (the baseline, measured in the same run);
   * chunk path: ``generate``, then ``step_tokens`` on the batch (verification and autoreset
     included);
   * per-token path: ``generate`` with a logits processor that steps the vector env with the
     token sampled at every step.
   The env's share of wall time is ``env time / total``. Target: <= 5 % on the chunk path.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch
from transformers import LlamaForCausalLM, LogitsProcessor, LogitsProcessorList

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from agents.models import llama_config  # noqa: E402
from agents.speed_report import Ratio, machine, write_json  # noqa: E402
from satori_env import SatoriMathEnv, SatoriMathVectorEnv  # noqa: E402
from satori_env.verifier import default_verifier  # noqa: E402

BATCH, NEW_TOKENS = 64, 128


def tiny_model(vocab_size: int, seed: int = 0) -> LlamaForCausalLM:
    """About 1M parameters, random weights (timing does not depend on training)."""
    torch.manual_seed(seed)
    return LlamaForCausalLM(llama_config("1m", vocab_size)).eval()


def left_padded_prompts(envs: SatoriMathVectorEnv) -> tuple[torch.Tensor, torch.Tensor]:
    prompts = [env.tokens for env in envs.envs]
    width = max(map(len, prompts))
    ids = torch.full((len(prompts), width), envs.envs[0].pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, prompt in enumerate(prompts):
        ids[i, width - len(prompt) :] = torch.from_numpy(prompt)
        mask[i, width - len(prompt) :] = 1
    return ids, mask


class StepEnvEveryToken(LogitsProcessor):
    """Steps the vector env with the token sampled at the previous generation step."""

    def __init__(self, envs: SatoriMathVectorEnv, prompt_width: int) -> None:
        self.envs, self.prompt_width, self.seconds = envs, prompt_width, 0.0

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[1] > self.prompt_width:
            start = time.perf_counter()
            self.envs.step(input_ids[:, -1].numpy())
            self.seconds += time.perf_counter() - start
        return scores


def generate(model, ids, mask, pad_id: int, processors=None) -> torch.Tensor:
    with torch.inference_mode():
        out = model.generate(
            ids,
            attention_mask=mask,
            max_new_tokens=NEW_TOKENS,
            min_new_tokens=NEW_TOKENS,
            do_sample=True,
            temperature=1.0,
            top_k=0,
            pad_token_id=pad_id,
            suppress_tokens=[pad_id],  # the policy's job: padding is outside the action space
            logits_processor=processors,
        )
    return out[:, ids.shape[1] :]


def env_only_throughput(seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    single = SatoriMathEnv(max_new_tokens=NEW_TOKENS)
    single.reset(seed=seed)
    tokens = rng.integers(6, single.num_actions, size=20 * NEW_TOKENS)
    start = time.perf_counter()
    for token in tokens.tolist():
        _, _, terminated, truncated, _ = single.step(token)
        if terminated or truncated:
            single.reset()
    single_rate = len(tokens) / (time.perf_counter() - start)

    envs = SatoriMathVectorEnv(num_envs=BATCH, max_new_tokens=NEW_TOKENS)
    envs.reset(seed=seed)
    chunk = rng.integers(6, single.num_actions, size=(BATCH, NEW_TOKENS))
    start = time.perf_counter()
    for column in chunk.T:
        envs.step(column)
    vector_rate = chunk.size / (time.perf_counter() - start)
    start = time.perf_counter()
    envs.step_tokens(chunk)
    chunk_rate = chunk.size / (time.perf_counter() - start)
    return {
        "single env, step": single_rate,
        f"vector env ({BATCH}), step": vector_rate,
        f"vector env ({BATCH}), step_tokens": chunk_rate,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="measurements per path (the median is reported)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="write the ratio rows here (for satori bench)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    default_verifier().start()  # a training run starts it once; keep its start-up out of the timing

    throughput = env_only_throughput(args.seed)
    envs = SatoriMathVectorEnv(num_envs=BATCH, max_new_tokens=NEW_TOKENS)
    pad = envs.envs[0].pad_id
    model = tiny_model(len(envs.tokenizer), args.seed)
    n_params = sum(p.numel() for p in model.parameters())
    envs.reset(seed=args.seed)
    generate(model, *left_padded_prompts(envs), pad)  # warm-up

    raw, chunk_env, chunk_gen, token_env, token_total = [], [], [], [], []
    for repeat in range(args.repeats):
        envs.reset(seed=args.seed + repeat)
        ids, mask = left_padded_prompts(envs)
        start = time.perf_counter()
        generate(model, ids, mask, pad)
        raw.append(time.perf_counter() - start)

        start = time.perf_counter()
        new_tokens = generate(model, ids, mask, pad)
        chunk_gen.append(time.perf_counter() - start)
        start = time.perf_counter()
        envs.step_tokens(new_tokens.numpy())  # every episode ends here: verify and autoreset
        chunk_env.append(time.perf_counter() - start)

        envs.reset(seed=args.seed + repeat)
        stepper = StepEnvEveryToken(envs, ids.shape[1])
        start = time.perf_counter()
        new_tokens = generate(model, ids, mask, pad, LogitsProcessorList([stepper]))
        last = time.perf_counter()
        envs.step(new_tokens[:, -1].numpy())  # the final token ends every episode
        stepper.seconds += time.perf_counter() - last
        token_total.append(time.perf_counter() - start)
        token_env.append(stepper.seconds)

    med = statistics.median
    chunk_share = med(chunk_env) / (med(chunk_gen) + med(chunk_env))
    token_share = med(token_env) / med(token_total)
    print(
        f"machine: {machine()}; {args.threads} threads; "
        f"model {n_params / 1e6:.2f}M parameters; batch {BATCH}, {NEW_TOKENS} new tokens; median of {args.repeats}"
    )
    print("\n| env only | tokens/s |\n|---|---|")
    for name, rate in throughput.items():
        print(f"| {name} | {rate:,.0f} |")
    print("\n| model in the loop | seconds | env share of wall time |\n|---|---|---|")
    print(f"| raw generate (baseline) | {med(raw):.3f} | - |")
    print(f"| generate, then step_tokens | {med(chunk_gen) + med(chunk_env):.3f} | {chunk_share:.1%} |")
    print(f"| generate stepping the env every token | {med(token_total):.3f} | {token_share:.1%} |")
    print(
        f"\nchunk path: env overhead {chunk_share:.1%} (target <= 5 %); "
        f"total / raw generate = {(med(chunk_gen) + med(chunk_env)) / med(raw):.3f}"
    )
    write_json(
        [
            Ratio(
                "env overhead",
                f"generate + step_tokens, s ({BATCH} x {NEW_TOKENS} tokens)",
                med(chunk_gen) + med(chunk_env),
                med(raw),
                "raw generate",
                True,
                0.95,
            )
        ],
        args.json,
    )
    return 0 if chunk_share <= 0.05 else 1


if __name__ == "__main__":
    raise SystemExit(main())
