"""Checkpoints load without running code; partial writes are cleaned up; RNG states round-trip."""

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.checkpoint import clean_partial_writes, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from agents.models import build_model, load_policy
from satori_env.atomic import atomic_directory, atomic_write, remove_partial_writes


class _Payload:
    """Unpickling this would create ``path``: what a hostile checkpoint does to its victim."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    path = tmp_path_factory.mktemp("policy") / "base"
    build_model("tiny", path, seed=0)
    model, tokenizer = load_policy(str(path), device="cpu")
    return model, tokenizer


def _optimizer(model):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.tensor([[1, 2, 3]]), labels=torch.tensor([[1, 2, 3]])).loss.backward()
    optimizer.step()
    return optimizer


def test_a_checkpoint_round_trips_with_plain_data_only(policy, tmp_path):
    model, tokenizer = policy
    optimizer = _optimizer(model)
    random.seed(3), np.random.seed(4), torch.manual_seed(5)
    state = {"iteration": 2, "env_rng": [np.random.default_rng(7).bit_generator.state], "history": [{"a": 1.0}]}
    path = save_checkpoint(tmp_path, 2, model, tokenizer, {"adamw": optimizer}, {}, state)
    expected = (random.random(), np.random.random(), torch.rand(1))
    torch.load(path / "trainer_state.pt", weights_only=True)  # plain data only
    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    loaded = load_checkpoint(path, model, {"adamw": torch.optim.AdamW(model.parameters(), lr=1e-3)}, {})
    assert (random.random(), np.random.random()) == expected[:2] and torch.equal(torch.rand(1), expected[2])
    assert loaded == {**state, "step": 2}


def test_rng_state_restores_every_generator():
    state = rng_state()
    draws = (random.random(), np.random.random(), np.random.normal(), torch.rand(2))
    set_rng_state(state)
    again = (random.random(), np.random.random(), np.random.normal(), torch.rand(2))
    assert draws[:3] == again[:3] and torch.equal(draws[3], again[3])


def test_a_pickled_payload_is_refused_and_nothing_runs(policy, tmp_path):
    model, tokenizer = policy
    path = save_checkpoint(tmp_path, 1, model, tokenizer, {}, {}, {})
    canary = tmp_path / "canary"
    saved = torch.load(path / "trainer_state.pt", weights_only=True)
    saved["state"]["gift"] = _Payload(str(canary))
    torch.save(saved, path / "trainer_state.pt")
    with pytest.raises(
        ValueError, match=r"holds Python objects other than plain data .*such as (builtins|io).open.*could run code"
    ):
        load_checkpoint(path, model, {}, {})
    assert not canary.exists()


@pytest.mark.parametrize(
    "content, message", [(b"", "not a readable checkpoint"), (b"garbage" * 10, "not a readable checkpoint")]
)
def test_a_corrupted_trainer_state_is_a_clear_error(policy, tmp_path, content, message):
    model, tokenizer = policy
    path = save_checkpoint(tmp_path, 1, model, tokenizer, {}, {}, {})
    (path / "trainer_state.pt").write_bytes(content)
    with pytest.raises(ValueError, match=message):
        load_checkpoint(path, model, {}, {})


def test_partial_writes_are_removed_and_an_interrupted_swap_is_undone(tmp_path):
    atomic_write(tmp_path / "kept.json", b"{}")
    with atomic_directory(tmp_path / "model") as tmp:
        (tmp / "weights").write_text("new")
    # what a SIGKILL leaves: a temporary directory and file mid-write, and a swap killed between
    # its renames (the previous version set aside, the new one not yet in place)
    (tmp_path / ".step-000006.k2j_x9ab.tmp").mkdir()
    (tmp_path / ".step-000006.k2j_x9ab.tmp" / "model.safetensors").write_bytes(b"partial")
    (tmp_path / ".metrics.json.abcd1234.tmp").write_bytes(b"partial")
    (tmp_path / ".final.old").mkdir()
    (tmp_path / ".final.old" / "weights").write_text("previous")
    (tmp_path / ".model.old").mkdir()  # set aside, but the new one is in place: just remove it
    (tmp_path / ".bashrc.old").write_text("not ours: a file, not a set-aside directory")
    (tmp_path / ".notes.tmp").write_text("not ours: no random part")
    removed = remove_partial_writes(tmp_path)
    assert sorted(p.name for p in removed) == [
        ".final.old",
        ".metrics.json.abcd1234.tmp",
        ".model.old",
        ".step-000006.k2j_x9ab.tmp",
    ]
    assert sorted(os.listdir(tmp_path)) == [".bashrc.old", ".notes.tmp", "final", "kept.json", "model"]
    assert (tmp_path / "final" / "weights").read_text() == "previous"
    assert (tmp_path / "model" / "weights").read_text() == "new"


def test_clean_partial_writes_covers_the_run_and_its_checkpoints(tmp_path):
    (tmp_path / "checkpoints" / ".step-000004.aaaaaaaa.tmp").mkdir(parents=True)
    (tmp_path / ".restart_buffer.json.gz.bbbbbbbb.tmp").write_bytes(b"")
    assert len(clean_partial_writes(tmp_path)) == 2
    assert clean_partial_writes(Path(tmp_path / "missing")) == []
    assert sorted(os.listdir(tmp_path)) == ["checkpoints"] and os.listdir(tmp_path / "checkpoints") == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize(
    "umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700), (0o002, 0o664, 0o775)]
)
def test_atomic_writes_respect_the_umask(tmp_path, umask, file_mode, dir_mode):
    previous = os.umask(umask)
    try:
        atomic_write(tmp_path / "results.json", b"{}")
        with atomic_directory(tmp_path / "model") as tmp:
            (tmp / "weights").write_bytes(b"w")
    finally:
        os.umask(previous)
    assert (tmp_path / "results.json").stat().st_mode & 0o777 == file_mode
    assert (tmp_path / "model").stat().st_mode & 0o777 == dir_mode
    assert (tmp_path / "model" / "weights").stat().st_mode & 0o777 == file_mode
