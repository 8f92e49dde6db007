"""SatoriMath in TRL's GRPOTrainer: the trainer's own generator writes, the environment judges
(per-term rewards, Restart-and-Explore), TRL optimises.

    pip install -e ".[trl]"
    python examples/trl_grpo.py --steps 20                  # the tiny format-tuned policy (stage one if missing)
    python examples/trl_grpo.py --model /path/to/model --steps 200 --vllm   # a GPU: TRL's vLLM generation
    python examples/trl_grpo.py --openenv local             # episodes on an OpenEnv server (".[openenv]")
    python examples/trl_grpo.py --openenv http://host:8000  # ... one started with `satori serve-openenv`

Each step TRL samples ``--batch / --generations`` problems from the dataset; every group of
``--generations`` completions shares one start (the problem, or with ``--restart-prob`` a restart
state of it); TRL logs ``rewards/satori_<term>/mean`` for every reward term.
"""

from __future__ import annotations

import argparse
import os
import time
from contextlib import ExitStack, closing
from dataclasses import replace


def main(
    model: str | None = None,
    steps: int = 20,
    batch: int = 16,
    generations: int = 4,
    restart_prob: float = 0.25,
    max_new_tokens: int = 96,
    learning_rate: float = 1e-5,
    out: str = "runs/trl_grpo",
    vllm: bool = False,
    openenv: str | None = None,
) -> dict:
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from transformers import AutoTokenizer

    from satori_env.tokenizer import add_coat_tokens

    if model is None:
        from agents.config import preset
        from agents.train import stage_one

        model = str(stage_one(replace(preset("tiny"), out="runs/tiny")))
    tokenizer = AutoTokenizer.from_pretrained(model)
    add_coat_tokens(tokenizer)
    with ExitStack() as stack:
        if openenv is None:
            from satori_env.integrations.trl import SatoriRollout

            rollout = SatoriRollout("arith:train", tokenizer, restart_prob=restart_prob, max_new_tokens=max_new_tokens)
        else:
            from satori_env.integrations.openenv import background_server
            from satori_env.integrations.trl import SatoriRemoteRollout

            if openenv == "local":
                openenv = stack.enter_context(background_server(tokenizer=model, max_new_tokens=max_new_tokens))
            rollout = stack.enter_context(closing(SatoriRemoteRollout(openenv, "arith:train", tokenizer, restart_prob)))
        return _train(model, tokenizer, rollout, steps, batch, generations, max_new_tokens, learning_rate, out, vllm)


def _train(model, tokenizer, rollout, steps, batch, generations, max_new_tokens, learning_rate, out, vllm) -> dict:
    import torch
    from transformers import AutoModelForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    args = GRPOConfig(
        output_dir=out, max_steps=steps, per_device_train_batch_size=batch, gradient_accumulation_steps=1,
        num_generations=generations, max_completion_length=max_new_tokens, temperature=0.7, learning_rate=learning_rate,
        beta=0.0, use_cpu=not torch.cuda.is_available(), bf16=torch.cuda.is_available(), logging_steps=1,
        save_strategy="no", report_to="none", seed=0, use_vllm=vllm, vllm_mode="colocate",
        generation_kwargs=rollout.generation_kwargs(vllm),
    )  # fmt: skip
    trainer = GRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(model), args=args, processing_class=tokenizer,
        train_dataset=rollout.dataset(steps * batch), rollout_func=rollout, reward_funcs=rollout.reward_funcs(),
    )  # fmt: skip
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    logs = [log for log in trainer.state.log_history if "rewards/satori_rule/mean" in log]
    tokens = sum(log["completions/mean_length"] * batch for log in logs)
    print("| step | reward | rule | reflection | correct share |\n|---|---|---|---|---|")
    for step, log in enumerate(logs, 1):
        correct = log["rewards/satori_rule/mean"] + 1  # the rule reward is the verdict minus 1
        print(f"| {step} | {log['reward']:.3f} | {log['rewards/satori_rule/mean']:.3f} "
              f"| {log['rewards/satori_reflection/mean']:.3f} | {correct:.3f} |")  # fmt: skip
    print(f"{steps} steps in {seconds:.1f} s; {tokens / seconds:.0f} completion tokens/s")
    return {"logs": logs, "seconds": seconds, "tokens_per_s": tokens / seconds}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--restart-prob", type=float, default=0.25)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--learning-rate", type=float, default=1e-5)
    parser.add_argument("--out", default="runs/trl_grpo")
    parser.add_argument("--vllm", action="store_true", help="TRL's colocated vLLM generation (a GPU)")
    parser.add_argument("--openenv", default=None, help="'local' (a server in this process) or a server's URL")
    args = parser.parse_args()
    options = (args.restart_prob, args.max_new_tokens, args.learning_rate, args.out, args.vllm, args.openenv)
    main(args.model, args.steps, args.batch, args.generations, *options)
