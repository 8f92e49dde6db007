"""Format tuning: response-only loss, bucketing, a schedule, learning, and exact resumption."""

import json
from dataclasses import replace

import pytest
import torch

from agents.data.synth import arithmetic_demo, synthesize, write_demos
from agents.models import build_model
from agents.schedules import warmup_cosine
from agents.sft import IGNORE, SFTArgs, bucket_batches, tokenize_demos, train_sft
from satori_env import ArithmeticTasks
from satori_env.tokenizer import default_tokenizer

TOKENIZER = default_tokenizer()


def test_loss_covers_trained_response_tokens_only():
    import random

    problem = ArithmeticTasks([2], seed=0).sample()
    demo = arithmetic_demo(problem, "fix", random.Random(0))
    (example,) = tokenize_demos([demo], TOKENIZER)
    assert len(example.input_ids) == len(example.labels)
    trained = [t for t, label in zip(example.input_ids, example.labels) if label != IGNORE]
    expected = "".join(text for text, keep in demo.segments if keep) + TOKENIZER.eos_token
    assert TOKENIZER.decode(trained) == expected
    prompt = TOKENIZER.encode(f"Problem: {problem.question}\nSolution:")
    assert list(example.input_ids[: len(prompt)]) == prompt and set(example.labels[: len(prompt)]) == {IGNORE}


def test_too_long_demonstrations_are_dropped():
    demos, _ = synthesize(20, seed=0)
    assert len(tokenize_demos(demos, TOKENIZER, max_length=40)) < 20 == len(tokenize_demos(demos, TOKENIZER))


def test_bucketing_covers_every_example_once_within_the_budget():
    lengths = [int(x) for x in torch.randint(5, 200, (500,), generator=torch.Generator().manual_seed(0))]
    batches = bucket_batches(lengths, 1024, seed=1)
    assert sorted(i for b in batches for i in b) == list(range(500))
    assert all(max(lengths[i] for i in b) * len(b) <= 1024 for b in batches)
    assert batches == bucket_batches(lengths, 1024, seed=1) != bucket_batches(lengths, 1024, seed=2)
    spread = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches]
    assert sum(spread) / len(spread) < 15  # similar lengths share a batch: little padding


def test_warmup_then_cosine():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = warmup_cosine(optimizer, warmup=4, total=20, min_ratio=0.1)
    rates = []
    for _ in range(21):
        rates.append(schedule.get_last_lr()[0])
        optimizer.step()
        schedule.step()
    assert rates[:4] == [0.25, 0.5, 0.75, 1.0] and rates[4] == 1.0
    assert rates[12] == pytest.approx(0.1 + 0.9 * 0.5) and rates[20] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(rates[4:], rates[5:]))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("sft")
    build_model("tiny", root / "base", seed=0)
    demos, _ = synthesize(300, levels=(1,), seed=0)
    write_demos(demos, root / "demos.jsonl")
    return root


def _args(root, out, **overrides):
    settings = dict(
        model=str(root / "base"),
        data=str(root / "demos.jsonl"),
        out=str(root / out),
        steps=12,
        batch_tokens=1024,
        lr=3e-3,
        warmup=2,
        checkpoint_every=6,
        eval_per_level=0,
        progress=False,
        threads=2,
    )
    return SFTArgs(**{**settings, **overrides})


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "model" / "model.safetensors"))


def test_a_crash_then_resume_ends_exactly_where_an_uninterrupted_run_does(setup, monkeypatch):
    train_sft(_args(setup, "straight"))

    import agents.sft as sft

    saved = []
    original = sft.save_checkpoint

    def save_then_crash(*args, **kwargs):
        saved.append(original(*args, **kwargs))
        raise KeyboardInterrupt("simulated crash right after the step-6 checkpoint")

    monkeypatch.setattr(sft, "save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        train_sft(_args(setup, "resumed"))
    monkeypatch.setattr(sft, "save_checkpoint", original)
    assert [p.name for p in saved] == ["step-000006"] and not (setup / "resumed" / "model").exists()
    metrics = train_sft(_args(setup, "resumed", resume=True))
    assert metrics["steps"] == 12
    straight, resumed = _weights(setup / "straight"), _weights(setup / "resumed")
    assert straight.keys() == resumed.keys() and all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_a_finished_run_extends_from_its_end_with_more_steps(setup):
    train_sft(_args(setup, "extended"))  # ends at the schedule's end (12 steps) with a checkpoint there
    assert (setup / "extended" / "checkpoints" / "step-000012").is_dir()
    twelve = _weights(setup / "extended")
    extended = train_sft(_args(setup, "extended", steps=16, resume=True))
    assert extended["steps"] == 16 and extended["stop_reason"] == "schedule end"
    assert not all(torch.equal(twelve[k], v) for k, v in _weights(setup / "extended").items())


def test_format_tuning_learns_and_reports(setup):
    metrics = train_sft(_args(setup, "learn", steps=40, eval_per_level=8, eval_levels=(1,), eval_max_new_tokens=48))
    logged = json.loads((setup / "learn" / "metrics.json").read_text())
    assert logged["steps"] == 40 and (setup / "learn" / "tb").is_dir()
    # measured: the loss falls from ln(1024) = 6.9 to 2.7 in 40 steps of this setup
    assert metrics["final_loss"] < 3.5
    held_out = metrics["eval"]["held_out"]
    assert held_out["n"] == 8 and 0.0 <= held_out["well_formed"] <= 1.0
    assert set(metrics["eval"]) == {"held_out", "repair_after_slip", "repair_after_wrong_answer"}


def test_early_stopping_keeps_the_weights_of_the_best_validation_loss(setup):
    args = _args(setup, "early", steps=400, lr=1e-2, validation=60, validate_every=5, patience=3, checkpoint_every=1000)
    metrics = train_sft(args)
    history = metrics["validation"]["history"]
    losses = [loss for _, loss in history]
    best = min(range(len(losses)), key=losses.__getitem__)
    assert metrics["stop_reason"] == "early stopping" and metrics["steps"] < 400
    assert metrics["validation"]["best_step"] == history[best][0] and len(history) == best + 1 + 3  # 3 stale, then stop
    assert all(loss >= losses[best] for loss in losses[best:])
    from safetensors.torch import load_file

    final, kept = _weights(setup / "early"), load_file(str(setup / "early" / "best" / "model.safetensors"))
    assert all(torch.equal(final[k], kept[k]) for k in final)  # OUT/model is the best weights, not the last
    assert (setup / "early" / "checkpoints" / f"step-{metrics['steps']:06d}").is_dir()  # --resume continues there
    continued = train_sft(replace(args, patience=0, resume=True, max_minutes=0.05))
    assert continued["stop_reason"] == "time limit" and continued["steps"] > metrics["steps"]
    with pytest.raises(ValueError, match="--patience needs held-out demonstrations: set --validation"):
        _args(setup, "bad", patience=2)
