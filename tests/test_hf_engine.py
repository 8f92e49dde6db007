"""The HF engine's two decodings: transformers ``generate`` and satori's static-cache loop
("graph", compiled into a CUDA graph on a GPU) write the same completions."""

import pytest
import torch

from agents.engines import HFEngine, SamplingParams
from agents.engines.hf import sample_next
from agents.models import build_model
from satori_env import SatoriMathVectorEnv


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "base"
    model, _ = build_model("tiny", path, seed=0)
    envs = SatoriMathVectorEnv(num_envs=8, tokenizer=str(path), max_new_tokens=40)
    envs.reset(seed=0)
    # prompts of different lengths: left padding, position ids and the cache must line up
    prompts = [env.tokens.tolist()[: 12 + 5 * i] for i, env in enumerate(envs.envs)]
    return model.eval(), envs, prompts


def _engines(model, envs, **kwargs):
    return HFEngine.for_env(model, envs, decoding="generate", **kwargs), HFEngine.for_env(
        model, envs, decoding="graph", **kwargs
    )


@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(40, temperature=0.0),
        SamplingParams(40, temperature=1.0, seed=3),
        SamplingParams(40, temperature=0.7, seed=5),
    ],
)
def test_graph_decoding_writes_what_generate_writes(setup, params):
    model, envs, prompts = setup
    generate, graph = _engines(model, envs)
    expected = generate.generate(prompts, params)
    assert graph.generate(prompts, params) == expected
    assert all(len(c) == 40 for c in expected)  # a random model runs to the limit
    assert graph.generate(prompts, params) == expected  # the reused, emptied cache gives the same again


def test_stops_end_each_completion_and_forbidden_ids_never_appear(setup):
    model, envs, prompts = setup
    greedy = SamplingParams(40, temperature=0.0)
    free = HFEngine(model, envs.envs[0].pad_id, stop_ids=[], decoding="graph").generate(prompts, greedy)
    stop = free[0][5]  # a token the model writes: make it a stop id
    banned = [t for t in free[1] if t not in free[0][:6]][:3]  # and forbid tokens it would write elsewhere
    engines = [
        HFEngine(model, envs.envs[0].pad_id, [stop], forbidden_ids=banned, decoding=d) for d in ("generate", "graph")
    ]
    for params in (greedy, SamplingParams(40, temperature=1.0, seed=1)):
        a, b = (engine.generate(prompts, params) for engine in engines)
        assert a == b
        for completion in b:
            assert stop not in completion[:-1] and (completion[-1] == stop or len(completion) == 40)
            assert not set(banned) & set(completion) and envs.envs[0].pad_id not in completion
    greedy_completions = engines[1].generate(prompts, greedy)
    assert len(greedy_completions[0]) <= 6 and greedy_completions[0][-1] == stop  # stopped early


def test_nucleus_and_greedy_choices():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2, 1e-9]])).repeat(4000, 1)
    torch.manual_seed(0)
    drawn = sample_next(logits, None, SamplingParams(temperature=1.0, top_p=0.6))
    assert set(drawn.tolist()) == {0, 1}  # 0.5 alone is short of 0.6; 0.5 + 0.3 reaches it
    assert abs((drawn == 0).float().mean().item() - 0.5 / 0.8) < 0.03
    forbidden = torch.tensor([0])
    assert sample_next(logits[:2], forbidden, SamplingParams(temperature=0.0)).tolist() == [1, 1]
    assert set(sample_next(logits, forbidden, SamplingParams(temperature=1.0)).tolist()) <= {1, 2, 3}


def test_bad_decoding_settings_are_explained(setup):
    model, _, _ = setup
    with pytest.raises(ValueError, match=r"decoding must be one of \('auto', 'generate', 'graph'\)"):
        HFEngine(model, 0, [1], decoding="fast")
    with pytest.raises(ValueError, match="static cache"):
        HFEngine(model, 0, [1], cache="dynamic", decoding="graph")


@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(40, temperature=0.0),
        SamplingParams(40, temperature=1.0, seed=2),
        SamplingParams(40, temperature=1.0, seed=4, seed_per_prompt=True),
    ],
)
def test_dropping_finished_rows_changes_no_completion(setup, params, monkeypatch):
    """Graph decoding drops finished rows from the batch and the KV cache (on a CPU): every
    completion, greedy or sampled, is what decoding the whole batch to the end writes."""
    from transformers import StaticCache

    import agents.engines.hf as hf

    model, envs, prompts = setup
    free = HFEngine(model, envs.envs[0].pad_id, stop_ids=[], decoding="graph").generate(prompts, params)
    stops = sorted({row[3] for row in free[:5]})  # five rows end at their fourth token at the latest
    engine = HFEngine(model, envs.envs[0].pad_id, stops, decoding="graph")
    monkeypatch.setattr(hf, "COMPACT_SHARE", 2.0)  # never drop a row
    whole = engine.generate(prompts, params)
    kept, reorder = [], StaticCache.reorder_cache

    def counted(cache, rows):
        kept.append(len(rows))
        return reorder(cache, rows)

    monkeypatch.setattr(StaticCache, "reorder_cache", counted)
    monkeypatch.setattr(hf, "COMPACT_SHARE", 0.25)
    assert engine.generate(prompts, params) == whole
    assert kept and kept[0] < len(prompts)  # finished rows were dropped
    assert sum(len(c) < 40 for c in whole) >= 2 and any(len(c) == 40 for c in whole)
    assert HFEngine(model, envs.envs[0].pad_id, stops, decoding="generate").generate(prompts, params) == whole


def test_uncompiled_decoding_reads_only_the_filled_cache(setup, monkeypatch):
    """On a CPU every attention call reads the cached positions filled so far, not the whole
    preallocated cache, and the completions are those of a full-length read."""
    import agents.engines.hf as hf

    model, envs, prompts = setup
    params = SamplingParams(40, temperature=1.0, seed=3)
    engine = HFEngine.for_env(model, envs, decoding="graph")
    read = []
    original = torch.nn.functional.scaled_dot_product_attention

    def recording(query, key, *args, **kwargs):
        read.append(key.shape[-2])
        return original(query, key, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", recording)
    prefix = engine.generate(prompts, params)
    layers = model.config.num_hidden_layers
    width = read[0]  # the prefill reads the padded prompt
    assert read[::layers] == list(range(width, width + len(read) // layers))  # one more position per step
    monkeypatch.setattr(hf, "_read_prefix_only", lambda cache: None)  # the plain static cache
    read.clear()
    assert HFEngine.for_env(model, envs, decoding="graph").generate(prompts, params) == prefix
    assert set(read[layers:]) == {width + 40}


@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(30, temperature=0.0),
        SamplingParams(30, temperature=1.0, seed=5),
        SamplingParams(30, temperature=1.0, seed=6, seed_per_prompt=True),
    ],
)
def test_a_group_prefills_its_shared_prompt_once(setup, params):
    """Rollout groups repeat their prompt: graph decoding prefills each distinct prompt once and
    copies its cache, and every completion is still the one ``generate`` writes."""
    model, envs, prompts = setup
    groups = [prompt for prompt in prompts[:3] for _ in range(4)]
    generate, graph = _engines(model, envs)
    prefill_rows = []
    hook = model.register_forward_pre_hook(
        lambda module, args, kwargs: prefill_rows.append(kwargs["input_ids"].shape), with_kwargs=True
    )
    try:
        completions = graph.generate(groups, params)
    finally:
        hook.remove()
    assert prefill_rows[0][0] == 3 and prefill_rows[1][0] == len(groups)  # 3 prompts prefilled, 12 rows decoded
    assert completions == generate.generate(groups, params)
    assert len({tuple(c) for c in completions}) > 3 or params.temperature == 0  # samples of a group differ


def test_under_bf16_autocast_the_cache_holds_bf16_and_decoding_is_unchanged(setup, monkeypatch):
    """Rollouts in the learner's bf16 (``rollout_precision``): the uncompiled decoding stores its
    keys and values in autocast's dtype as they are written, and writes what a cache kept in
    fp32 and cast at every read writes (the same bf16 values reach attention)."""
    import agents.engines.hf as hf

    model, envs, prompts = setup
    params = SamplingParams(40, temperature=1.0, seed=7)
    engine = HFEngine.for_env(model, envs, decoding="graph")

    def stored_as(engine):
        return {layer.keys.dtype for layer in engine._static_cache[-1].layers}

    with torch.autocast("cpu", torch.bfloat16):
        in_bf16 = engine.generate(prompts, params)
        assert stored_as(engine) == {torch.bfloat16}
        monkeypatch.setattr(hf, "_autocast_dtype", lambda device: None)  # keep fp32, cast at each read
        cast_at_read = HFEngine.for_env(model, envs, decoding="graph")
        assert cast_at_read.generate(prompts, params) == in_bf16
        assert stored_as(cast_at_read) == {torch.float32}
    monkeypatch.undo()
    assert engine.generate(prompts, params) != in_bf16  # without autocast: fp32 throughout, other numerics
    assert stored_as(engine) == {torch.float32}
