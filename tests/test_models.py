"""Models built offline from a preset, and any local checkpoint, load where a model is asked for."""

import gymnasium as gym
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

import satori_env  # noqa: F401
from agents.engines import HFEngine, SamplingParams
from agents.models import MODEL_PRESETS, build_model, load_policy
from satori_env.tokenizer import default_tokenizer
from tests.helpers import mid_vocab_pad_tokenizer


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "base"
    build_model("tiny", path, seed=0)
    return path


def test_the_tiny_preset_is_a_small_llama_that_transformers_loads(tiny):
    model = AutoModelForCausalLM.from_pretrained(tiny)
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    assert isinstance(model, LlamaForCausalLM) and 1e6 <= model.num_parameters() <= 5e6
    assert tokenizer.get_vocab() == default_tokenizer().get_vocab()  # the tokenizer the environment ships
    assert model.config.vocab_size == len(tokenizer) and model.config.pad_token_id == tokenizer.pad_token_id


def test_building_is_deterministic(tiny, tmp_path):
    model, _ = build_model("tiny", tmp_path / "again", seed=0)
    reference = AutoModelForCausalLM.from_pretrained(tiny)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))


def test_a_built_model_plays_the_environment(tiny):
    model, tokenizer = load_policy(str(tiny), device="cpu")
    envs = gym.make_vec("SatoriMath-v0", num_envs=2, tokenizer=str(tiny), max_new_tokens=8)
    obs, _ = envs.reset(seed=0)
    engine = HFEngine.for_env(model, envs)
    prompts = [obs["tokens"][i, : obs["length"][i, 0]].tolist() for i in range(2)]
    _, rewards, terminated, truncated, _ = envs.step_tokens(
        engine.generate(prompts, SamplingParams(max_new_tokens=8, seed=0))
    )
    assert (terminated | truncated).all() and set(rewards.tolist()) <= {0.0, -1.0}


def test_a_checkpoint_without_coat_tokens_gets_them(tmp_path):
    path = mid_vocab_pad_tokenizer(tmp_path / "ckpt")
    tokenizer = AutoTokenizer.from_pretrained(path)
    LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
        )
    ).save_pretrained(path)
    model, tokenizer = load_policy(str(path), device="cpu")
    assert model.get_input_embeddings().num_embeddings == len(tokenizer)
    assert len(tokenizer.encode("<|reflect|>", add_special_tokens=False)) == 1


def test_unknown_preset_lists_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match=r"unknown model preset 'huge'; valid presets: \['small', 'tiny'\]"):
        build_model("huge", tmp_path / "x")
    assert set(MODEL_PRESETS) == {"tiny", "small"}
