"""One full RL step (rollout + update): satori's PPO against TRL's GRPOTrainer.

    pip install trl                     # the baseline (not a dependency of satori-env)
    python benchmarks/ppo_step.py       # about 3 minutes on 2 CPU cores
    python benchmarks/ppo_step.py --satori ppo:hf grpo:hf ppo:vllm   # more rows (vllm: the vLLM engine)
    python benchmarks/ppo_step.py --steps 12 --satori ppo:hf grpo:hf --trl-static   # on a GPU: a minute

Both sides get the same tiny Llama-style policy (the ``tiny`` preset, 3.4M parameters, saved
locally and loaded by each from that path), the same procedural problems and prompt, the same
batch (128 completions: 16 prompts x 8 samples), the same sampling (temperature 1, at most 128
new tokens), the same optimiser batch (128 completions in micro-batches of 32), and a rule
reward from the same verifier. A step is everything from sampling the completions to the
optimiser step:

* satori: ``collect_rollout`` (HF engine + ``SatoriMathVectorEnv.step_tokens``), scoring
  (the critic's values; old log-probabilities only where the rollout serves several optimiser
  steps), PPO update (GAE, clipped losses);
* TRL: ``GRPOTrainer`` one ``train`` step (generation, reward, group advantages, loss, update).

With ``--model PATH`` both sides load a format-tuned policy instead of the random one (with
``--sft-steps N`` the script format-tunes one first), so that completions stop at their own
lengths as in training (where padding and finished rows cost work). ``--bf16``: both learners
under bf16 autocast, each library's default (satori's tiny preset; TRL's ``GRPOConfig``), and
on a CPU satori's rollout samples in bf16 too (``rollout_precision="auto"``); default here fp32
on both sides. On a CPU satori's models compute short bf16 attention as matmuls
(:mod:`agents.attention`); ``--trl-eager`` adds a TRL row whose model does the same
(``attn_implementation="eager"``).

Everything runs on the GPU when there is one (fp32 on both sides unless ``--bf16``), where satori's HF engine
decodes with its CUDA-graph step. The first step of each run is a warm-up and is not counted
(on a GPU it compiles the decoding step). Printed: median seconds per step, completion tokens
per step, the ratio TRL / satori (target >= 2), where satori's time goes (rollout, scoring,
update) and every step's seconds: on a GPU the first run in the process also pays CUDA's own
warm-up over its first several steps, which the list shows.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from agents.config import preset  # noqa: E402
from agents.models import build_model  # noqa: E402
from agents.speed_report import Ratio, machine, write_json  # noqa: E402
from agents.train import stage_one, train_rl  # noqa: E402
from satori_env import load_problems  # noqa: E402
from satori_env.coat import get_template  # noqa: E402
from satori_env.verifier import default_verifier  # noqa: E402

PROMPTS, SAMPLES, NEW_TOKENS, MICRO_BATCH = 16, 8, 128, 32


def satori_steps(
    model_path: str, steps: int, out: str, algo: str = "ppo", engine: str = "hf", bf16: bool = False
) -> tuple[list[float], list[float]]:
    """Seconds and completion tokens of each iteration of ``satori train``'s loop."""
    config = replace(
        preset("tiny"),
        out=out,
        algo=algo,
        engine=engine,
        iterations=steps,
        episodes_per_iteration=PROMPTS * SAMPLES,
        group_size=SAMPLES,
        minibatch_size=PROMPTS * SAMPLES,
        micro_batch_size=MICRO_BATCH,
        max_new_tokens=NEW_TOKENS,
        temperature=1.0,  # TRL's side samples at 1 too
        restart_prob=0.0,
        curriculum=None,  # random problems, as TRL's side gets
        eval_per_level=0,
        checkpoint_every=10**9,
        bf16=bf16,
        progress=False,
    )
    history = train_rl(config, model_path)["history"]
    phases = {
        phase: statistics.median(h[f"perf/{phase}_seconds"] for h in history[1:])
        for phase in ("rollout", "score", "update")
    }
    print(
        f"satori {algo} ({engine}), median seconds per step: "
        + ", ".join(f"{phase} {s:.3f}" for phase, s in phases.items())
    )
    seconds = [h["perf/iteration_seconds"] for h in history]
    tokens = [h["rollout/response_length"] * config.episodes_per_iteration for h in history]
    return seconds, tokens


def trl_steps(
    model_path: str,
    steps: int,
    out: str,
    cache: str | None = None,
    bf16: bool = False,
    attention: str | None = None,
) -> tuple[list[float], list[float]]:
    """Seconds and completion tokens of each GRPOTrainer step (``cache``: its
    ``cache_implementation`` option, None is TRL's default, a dynamic cache; ``attention``: the
    model's ``attn_implementation``, None is the default, SDPA)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    template = get_template("compact")
    problems = load_problems("arith:train", limit=PROMPTS * (steps + 1), seed=0)
    data = Dataset.from_list([{"prompt": template.format(p.question), "answer": p.answer} for p in problems])
    verifier = default_verifier()

    def rule_reward(completions: list[str], answer: list[str], **_) -> list[float]:
        return [float(v.correct) - 1.0 for v in verifier.check_batch(zip(completions, answer))]

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.seconds: list[float] = []
            self.started = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.seconds.append(time.perf_counter() - self.started)

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(
        model_path, **({"attn_implementation": attention} if attention else {})
    )
    args = GRPOConfig(
        output_dir=out,
        max_steps=steps,
        per_device_train_batch_size=MICRO_BATCH,
        gradient_accumulation_steps=PROMPTS * SAMPLES // MICRO_BATCH,
        num_generations=SAMPLES,
        max_completion_length=NEW_TOKENS,
        temperature=1.0,
        learning_rate=1e-5,
        beta=0.0,
        gradient_checkpointing=False,  # TRL's default recomputes activations; satori's learner here does not
        use_cpu=not torch.cuda.is_available(),
        bf16=bf16,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=0,
        disable_tqdm=True,
        cache_implementation=cache,
    )
    timer = StepTimer()
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=rule_reward,
        args=args,
        train_dataset=data,
        processing_class=tokenizer,
        callbacks=[timer],
    )
    trainer.train()
    lengths = [log["completions/mean_length"] for log in trainer.state.log_history if "completions/mean_length" in log]
    return timer.seconds, [length * PROMPTS * SAMPLES for length in lengths]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4, help="steps per side; the first is a warm-up")
    parser.add_argument(
        "--satori",
        nargs="+",
        default=["ppo:hf"],
        help="ALGO:ENGINE runs of satori's loop (e.g. ppo:hf grpo:hf ppo:vllm)",
    )
    parser.add_argument(
        "--trl-static", action="store_true", help="add a TRL row with its cache_implementation='static' option"
    )
    parser.add_argument(
        "--trl-eager",
        action="store_true",
        help="add a TRL row with attn_implementation='eager' (attention as matmuls, which satori's models use "
        "for short bf16 sequences on a CPU)",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="a format-tuned policy both sides load (completions then stop at their own lengths, as in "
        "training); default: the tiny preset's random weights (every completion runs to the limit)",
    )
    parser.add_argument(
        "--sft-steps",
        type=int,
        default=0,
        help="without --model: format-tune the tiny model this many steps first (a few minutes), so that "
        "completions stop at their own lengths; 0: random weights",
    )
    parser.add_argument(
        "--bf16",
        action="store_true",
        help="bf16 autocast in both learners (each library's default; default here: fp32 on both sides)",
    )
    parser.add_argument("--json", default=None, help="write the ratio rows here (for satori bench)")
    args = parser.parse_args()
    try:
        import trl  # noqa: F401
    except ImportError:
        print("the baseline needs TRL: pip install trl", file=sys.stderr)
        return 2
    torch.set_num_threads(os.cpu_count() or 1)
    runs: list[tuple[str, Callable[..., tuple[list[float], list[float]]]]] = []
    for run in args.satori:
        algo, _, engine = run.partition(":")
        runs.append(
            (
                f"satori {algo} ({engine or 'hf'})",
                partial(satori_steps, algo=algo, engine=engine or "hf", bf16=args.bf16),
            )
        )
    runs.append(("TRL GRPOTrainer", partial(trl_steps, bf16=args.bf16)))
    if args.trl_static:
        runs.append(("TRL GRPOTrainer (static cache)", partial(trl_steps, cache="static", bf16=args.bf16)))
    if args.trl_eager:
        runs.append(("TRL GRPOTrainer (eager attention)", partial(trl_steps, attention="eager", bf16=args.bf16)))
    rows: dict[str, tuple[float, float]] = {}
    every_step: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        model_path = args.model or str(Path(tmp) / "model")
        if args.model is None and args.sft_steps:
            config = replace(
                preset("tiny"), out=str(Path(tmp) / "sft"), sft_steps=args.sft_steps, sft_validation=0, progress=False
            )
            model_path = str(stage_one(config))
        elif args.model is None:
            build_model("tiny", model_path, seed=0)
        for index, (name, run_steps) in enumerate(runs):
            seconds, tokens = run_steps(model_path, args.steps, str(Path(tmp) / f"run{index}"))
            every_step[name] = seconds
            rows[name] = statistics.median(seconds[1:]), statistics.mean(tokens[1:])
    theirs_s, theirs_t = rows["TRL GRPOTrainer"]
    print(f"machine: {machine()}")
    print(
        f"batch: {PROMPTS} prompts x {SAMPLES} samples, <= {NEW_TOKENS} new tokens, micro-batch {MICRO_BATCH}; "
        f"{args.steps - 1} timed steps each; learners in {'bf16 autocast' if args.bf16 else 'fp32'}"
    )
    print("| run | s/step | tokens/step | tokens/s | speed-up vs TRL (s/step) | speed-up (tokens/s) |")
    print("|---|---|---|---|---|---|")
    for name, (step_s, step_t) in rows.items():
        print(
            f"| {name} | {step_s:.2f} | {step_t:.0f} | {step_t / step_s:.0f} | {theirs_s / step_s:.2f}x | "
            f"{(step_t / step_s) / (theirs_t / theirs_s):.2f}x |"
        )
    print("target: >= 2x for satori's PPO step")
    for name, seconds in every_step.items():
        print(f"{name}, every step (the first is the warm-up): {', '.join(f'{x:.2f}' for x in seconds)} s")
    write_json(
        [
            Ratio(
                "RL step",
                f"{name}, s/step ({PROMPTS} x {SAMPLES} completions, <= {NEW_TOKENS} tokens)",
                step_s,
                theirs_s,
                "TRL GRPOTrainer",
                True,
                2.0 if "ppo" in name else None,
            )
            for name, (step_s, _) in rows.items()
            if not name.startswith("TRL")
        ],
        args.json,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
