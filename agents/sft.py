"""Format tuning: supervised fine-tuning on COAT demonstrations (Satori's stage one).

    satori sft --model runs/tiny/base --data runs/tiny/demos.jsonl --out runs/tiny/sft

The loss covers response tokens only: not the prompt, and not the segments a demonstration
marks untrained (an injected wrong step). Examples are bucketed by length into batches of about
``batch_tokens`` tokens (little padding, no cross-example attention). AdamW with linear warm-up
and cosine decay; bf16 autocast where the device has it; gradient-norm clipping. Checkpoints
(atomic; model, optimiser, scheduler, RNG and data position) every ``checkpoint_every`` steps,
and at the end; ``--resume`` continues from the newest one exactly (a finished run is extended
with a larger ``--steps``, its cosine schedule stretched to the new end); TensorBoard logs in
``OUT/tb``; the final model in ``OUT/model``, evaluated greedily on held-out procedural problems.

``--validation N`` holds N demonstrations out and logs their loss every ``validate_every``
steps; with ``--patience P`` training stops after P validations without a new best, and
``OUT/model`` is the best one (early stopping).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from agents.arguments import check_fields
from agents.checkpoint import clean_partial_writes, latest_checkpoint, load_checkpoint, save_checkpoint
from agents.data.synth import Demonstration, read_demos
from agents.device import autocast, choose_device, padded_length
from agents.models import load_policy, save_policy
from agents.schedules import warmup_cosine
from satori_env.atomic import atomic_write
from satori_env.coat import get_template

__all__ = ["Example", "SFTArgs", "bucket_batches", "split_validation", "tokenize_demos", "train_sft", "validation_loss"]

IGNORE = -100  # label of a token the loss skips (PyTorch's cross-entropy convention)


@dataclass(frozen=True)
class Example:
    """One tokenized demonstration: inputs and labels (``IGNORE`` where no loss)."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]


def tokenize_demos(
    demos: Sequence[Demonstration], tokenizer, template: str = "compact", max_length: int = 512
) -> list[Example]:
    """Prompt (no loss) + segments (loss where trained) + EOS (loss); longer ones are dropped."""
    template_ = get_template(template)
    examples = []
    for demo in demos:
        ids = tokenizer.encode(template_.format(demo.problem.question), add_special_tokens=False)
        labels = [IGNORE] * len(ids)
        for text, trained in demo.segments:
            piece = tokenizer.encode(text, add_special_tokens=False)
            ids += piece
            labels += piece if trained else [IGNORE] * len(piece)
        ids.append(tokenizer.eos_token_id)
        labels.append(tokenizer.eos_token_id)
        if len(ids) <= max_length:
            examples.append(Example(tuple(ids), tuple(labels)))
    return examples


def bucket_batches(lengths: Sequence[int], batch_tokens: int, seed: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, each at most ``batch_tokens`` padded
    tokens; the order of examples and of batches is shuffled by ``seed``."""
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    order.sort(key=lambda i: lengths[i])  # stable: equal lengths stay shuffled
    batches, current, longest = [], [], 0
    for index in order:
        longest_if_added = max(longest, lengths[index])
        if current and longest_if_added * (len(current) + 1) > batch_tokens:
            batches.append(current)
            current, longest_if_added = [], lengths[index]
        current.append(index)
        longest = longest_if_added
    if current:
        batches.append(current)
    rng.shuffle(batches)
    return batches


def _collate(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    width = padded_length(max(len(e.input_ids) for e in examples))
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


@dataclass
class SFTArgs:
    """Format tuning: supervised fine-tuning on COAT demonstrations."""

    model: str = "runs/tiny/base"
    """the model to tune: a local checkpoint or hub id"""
    data: str = "runs/tiny/demos.jsonl"
    """demonstrations (satori synth)"""
    out: str = "runs/tiny/sft"
    """run directory: OUT/model, OUT/checkpoints, OUT/tb, OUT/metrics.json"""
    steps: int = 1000
    """optimiser steps"""
    batch_tokens: int = 4096
    """padded tokens per step"""
    lr: float = 2e-3
    """peak learning rate"""
    warmup: int = 50
    """linear warm-up steps"""
    min_lr_ratio: float = 0.05
    """the cosine schedule ends at this share of the peak"""
    weight_decay: float = 0.0
    """AdamW weight decay"""
    grad_clip: float = 1.0
    """gradient-norm clipping"""
    max_length: int = 512
    """longer demonstrations are dropped"""
    prompt_template: str = "compact"
    """how problems are shown (must match the environment's)"""
    bf16: bool = True
    """bf16 autocast where the device supports it"""
    checkpoint_every: int = 250
    """steps between checkpoints"""
    validation: int = 0
    """demonstrations held out (drawn by the seed) for a validation loss every validate_every steps (0: none)"""
    validate_every: int = 100
    """steps between validation losses"""
    max_minutes: float = 0.0
    """stop after this many minutes of training in this process, wherever the schedule is, with a checkpoint
    that --resume continues from (0: no limit)"""
    patience: int = 0
    """early stopping: stop after this many validations without a new best loss, and keep the best weights
    (OUT/best); 0: run all steps (the final model is then the last one)"""
    resume: bool = False
    """continue from the newest checkpoint in OUT"""
    eval_per_level: int = 200
    """held-out procedural problems per level for the final greedy evaluation (0: none)"""
    eval_repair_per_level: int = 100
    """of those, per level, also started from an injected slip followed by <|reflect|> (0: none)"""
    eval_levels: tuple[int, ...] = (1, 2, 3)
    """levels of the final evaluation"""
    eval_max_new_tokens: int = 256
    """token budget of each evaluation answer"""
    seed: int = 0
    """seed of the data order and everything else"""
    device: str = "auto"
    """"auto", "cpu" or "cuda" """
    threads: int = 0
    """CPU threads for torch (0: torch's default)"""
    progress: bool = True
    """show a progress bar"""

    def __post_init__(self) -> None:
        from satori_env.tasks.arithmetic import LEVELS

        check_fields(
            self,
            at_least={
                "steps": 1,
                "batch_tokens": 1,
                "warmup": 0,
                "min_lr_ratio": 0,
                "weight_decay": 0,
                "max_length": 2,
                "checkpoint_every": 1,
                "validation": 0,
                "validate_every": 1,
                "patience": 0,
                "max_minutes": 0,
                "eval_per_level": 0,
                "eval_repair_per_level": 0,
                "eval_max_new_tokens": 1,
                "seed": 0,
                "threads": 0,
            },
            above={"lr": 0, "grad_clip": 0},
            at_most={"min_lr_ratio": 1},
            subsets={"eval_levels": sorted(LEVELS)},
        )
        get_template(self.prompt_template)
        if self.patience and not self.validation:
            raise ValueError("--patience needs held-out demonstrations: set --validation N (e.g. 500)")


def train_sft(args: SFTArgs) -> dict[str, Any]:
    """Run format tuning; returns the metrics it also writes to ``OUT/metrics.json``."""
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    device = choose_device(args.device)
    model, tokenizer = load_policy(args.model, device=args.device)
    examples = tokenize_demos(read_demos(args.data), tokenizer, args.prompt_template, args.max_length)
    if len(examples) <= args.validation:
        raise ValueError(
            f"{args.data} holds {len(examples)} demonstrations of at most {args.max_length} tokens, not more than "
            f"--validation {args.validation}"
        )
    examples, held_out = split_validation(examples, args.validation, args.seed)
    lengths = [padded_length(len(e.input_ids)) for e in examples]
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay, betas=(0.9, 0.95))
    scheduler = warmup_cosine(optimizer, args.warmup, args.steps, args.min_lr_ratio)

    step, epoch, position = 0, 0, 0
    validation = {"best_loss": math.inf, "best_step": 0, "stale": 0, "history": []}
    clean_partial_writes(out)
    checkpoint = latest_checkpoint(out) if args.resume else None
    if checkpoint is not None:
        state = load_checkpoint(checkpoint, model, {"adamw": optimizer}, {"schedule": scheduler})
        step, epoch, position = state["step"], state["epoch"], state["position"]
        validation = state.get("validation", validation)
    batches = bucket_batches(lengths, args.batch_tokens, args.seed + epoch)

    def save(at: int) -> None:
        progress = {"epoch": epoch, "position": position, "validation": validation}
        save_checkpoint(out, at, model, tokenizer, {"adamw": optimizer}, {"schedule": scheduler}, progress)

    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(out / "tb"))
    model.train()
    bar = tqdm(total=args.steps, initial=step, desc="format tuning", disable=not args.progress)
    started, tokens_seen, last_loss, stop_reason = time.perf_counter(), 0, float("nan"), "schedule end"
    while step < args.steps:
        if position >= len(batches):
            epoch, position = epoch + 1, 0
            batches = bucket_batches(lengths, args.batch_tokens, args.seed + epoch)
        batch = _collate([examples[i] for i in batches[position]], tokenizer.pad_token_id)
        position += 1
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast(device, args.bf16):
            loss = model(**batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        optimizer.step()
        scheduler.step()
        step += 1
        tokens_seen += int(batch["attention_mask"].sum())
        last_loss = loss.item()
        bar.update(1)
        bar.set_postfix(loss=f"{last_loss:.3f}")
        if step % 10 == 0 or step == args.steps:
            elapsed = time.perf_counter() - started
            writer.add_scalar("train/loss", last_loss, step)
            writer.add_scalar("train/lr", scheduler.get_last_lr()[0], step)
            writer.add_scalar("perf/tokens_per_s", tokens_seen / max(elapsed, 1e-9), step)
        if held_out and step % args.validate_every == 0:
            loss_now = validation_loss(model, held_out, tokenizer.pad_token_id, args.batch_tokens, device, args.bf16)
            writer.add_scalar("validation/loss", loss_now, step)
            validation["history"].append([step, loss_now])
            if loss_now < validation["best_loss"]:
                validation.update(best_loss=loss_now, best_step=step, stale=0)
                if args.patience:
                    save_policy(model, tokenizer, out / "best", args.prompt_template)
            else:
                validation["stale"] += 1
            if args.patience and validation["stale"] >= args.patience:
                stop_reason = "early stopping"  # the best weights are in OUT/best
                break
        if args.max_minutes and time.perf_counter() - started >= 60 * args.max_minutes:
            stop_reason = "time limit"
            break
        if step % args.checkpoint_every == 0 and step < args.steps:
            save(step)
    save(step)  # --resume continues from here exactly (a finished run: with more --steps)
    bar.close()
    train_seconds = time.perf_counter() - started

    if args.patience and validation["best_step"]:
        model, tokenizer = load_policy(str(out / "best"), device=args.device)
    save_policy(model, tokenizer, out / "model", args.prompt_template)
    metrics: dict[str, Any] = {
        "steps": step,
        "stop_reason": stop_reason,
        "validation": validation if held_out else None,
        "final_loss": last_loss,
        "train_seconds": train_seconds,
        "tokens_per_s": tokens_seen / max(train_seconds, 1e-9),
        "examples": len(examples),
    }
    if args.eval_per_level:
        metrics["eval"] = evaluate_format_tuning(model, tokenizer, args)
        for name, value in metrics["eval"]["held_out"].items():
            if isinstance(value, (int, float)):
                writer.add_scalar(f"eval/{name}", value, step)
    writer.close()
    atomic_write(out / "metrics.json", json.dumps({**metrics, "args": asdict(args)}, indent=2).encode())
    return metrics


def split_validation(examples: list[Example], count: int, seed: int) -> tuple[list[Example], list[Example]]:
    """``count`` examples drawn by ``seed`` held out for validation, and the rest (in order)."""
    held = set(random.Random(seed).sample(range(len(examples)), count)) if count else set()
    return [e for i, e in enumerate(examples) if i not in held], [e for i, e in enumerate(examples) if i in held]


@torch.no_grad()
def validation_loss(model, examples: Sequence[Example], pad_id: int, batch_tokens: int, device, bf16: bool) -> float:
    """Mean loss per trained token over ``examples`` (the model left in training mode)."""
    model.eval()
    total, tokens = 0.0, 0
    for indices in bucket_batches([padded_length(len(e.input_ids)) for e in examples], batch_tokens, seed=0):
        batch = {k: v.to(device) for k, v in _collate([examples[i] for i in indices], pad_id).items()}
        count = int((batch["labels"][:, 1:] != IGNORE).sum())
        with autocast(device, bf16):
            total += float(model(**batch).loss) * count
        tokens += count
    model.train()
    return total / max(tokens, 1)


def evaluate_format_tuning(model, tokenizer, args: SFTArgs) -> dict[str, dict[str, float]]:
    """Greedy answers to held-out procedural problems per level, and how often the model repairs
    an injected slip after ``<|reflect|>`` (right after it, and after a whole wrong solution)."""
    from agents.engines import HFEngine, SamplingParams
    from agents.evaluation.episodes import evaluate, self_correction
    from satori_env import load_problems

    by_level = {
        level: load_problems("arith:test", level=level, limit=args.eval_per_level, seed=args.seed)
        for level in args.eval_levels
    }
    problems = [p for level_problems in by_level.values() for p in level_problems]
    repair = [p for level_problems in by_level.values() for p in level_problems[: args.eval_repair_per_level]]
    template = get_template(args.prompt_template)
    stops = [tokenizer.eos_token_id, *(tokenizer.convert_tokens_to_ids(s) for s in template.stop)]
    engine = HFEngine(model, tokenizer.pad_token_id, stops)
    params = SamplingParams(max_new_tokens=args.eval_max_new_tokens, temperature=0.0)
    results = {"held_out": evaluate(engine, tokenizer, problems, params=params, prompt_template=template).row()}
    if repair:
        for name, at_end in (("repair_after_slip", False), ("repair_after_wrong_answer", True)):
            results[name] = self_correction(engine, tokenizer, repair, params, at_end, prompt_template=template).row()
    return results
