"""Local directories and hub ids: a missing path fails at once in one line; a hub id is served
from the local hub cache without the network."""

import shutil
import time

import gymnasium as gym
import pytest
from huggingface_hub import constants

import satori_env  # noqa: F401 - registers the environments
from agents.models import build_model, load_policy
from satori_env.pretrained import load_pretrained, locate_pretrained


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("policy") / "base"
    build_model("tiny", path, seed=0)
    return path


@pytest.mark.parametrize(
    "path", ["/no/such/model", "./missing", "../missing", "~/missing-model", "runs/tiny/sft/model", "two words"]
)
def test_a_missing_path_fails_at_once(path):
    with pytest.raises(FileNotFoundError, match=r"no such local directory \(and not a hub id"):
        locate_pretrained(path)


def test_a_missing_path_under_an_existing_directory_is_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(FileNotFoundError, match="'runs/model': no such local directory"):
        locate_pretrained("runs/model")


def test_hub_ids_and_directories_pass(tiny, tmp_path):
    assert locate_pretrained("Qwen/Qwen2.5-Math-7B") == "Qwen/Qwen2.5-Math-7B"
    assert locate_pretrained(tiny) == str(tiny)
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(NotADirectoryError, match="is a file; pass the directory"):
        locate_pretrained(tmp_path / "weights.bin")


@pytest.mark.parametrize("call", ["env", "policy"])
def test_the_env_and_the_agents_fail_in_one_line(call, tmp_path):
    missing = str(tmp_path / "model")
    start = time.monotonic()
    with pytest.raises(FileNotFoundError, match="no such local directory") as error:
        gym.make("SatoriMath-v0", tokenizer=missing) if call == "env" else load_policy(missing)
    assert time.monotonic() - start < 2.0
    assert "\n" not in str(error.value)


def test_an_unreachable_hub_id_fails_in_one_line_without_retries(monkeypatch):
    from transformers import AutoTokenizer

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    start = time.monotonic()
    with pytest.raises(
        OSError,
        match=r"'nobody/nothing' is not a local directory, not in the local hub cache, "
        r"and the hub cannot be reached \(HF_HUB_OFFLINE",
    ):
        load_pretrained(AutoTokenizer.from_pretrained, "nobody/nothing", "tokenizer")
    assert time.monotonic() - start < 5.0


def _cache_as_hub_id(directory, cache, repo_id):
    """Lay out a saved model as the hub cache holds a downloaded ``repo_id``."""
    revision = "0" * 40
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    shutil.copytree(directory, repo / "snapshots" / revision)


def test_a_hub_id_loads_from_the_local_cache_offline(tiny, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    _cache_as_hub_id(tiny, tmp_path, "satori-test/tiny")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    model = load_pretrained(AutoModelForCausalLM.from_pretrained, "satori-test/tiny", cache_dir=str(tmp_path))
    assert model.config.num_hidden_layers >= 1
