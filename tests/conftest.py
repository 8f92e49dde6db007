import tempfile

import pytest

from satori_env import Verifier


@pytest.fixture(scope="session", autouse=True)
def temporary_files_stay_in_pytests_directory(tmp_path_factory):
    """Libraries that write to the system's temporary directory on their own (SB3's default
    logger makes a folder per run) write under pytest's base directory instead."""
    folder = tmp_path_factory.mktemp("tempfile")
    previous, tempfile.tempdir = tempfile.tempdir, str(folder)
    yield
    tempfile.tempdir = previous


@pytest.fixture(scope="session")
def verifier():
    """One warm worker pool shared by the tests that do not need a pool of their own."""
    with Verifier(timeout=1.0, workers=2) as shared:
        yield shared


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A tiny random Llama-style policy saved as a local checkpoint (seed 0); read it, never write it."""
    from agents.models import build_model

    path = tmp_path_factory.mktemp("checkpoints") / "tiny"
    build_model("tiny", path, seed=0)
    return path
