"""The distribution a user installs carries everything the package needs at run time."""

import subprocess
import sys
import zipfile

import pytest

import satori_env


def test_public_api():
    for name in ["Problem", "load_problems", "list_sources", "extract_answer", "verify", "verify_batch", "Verifier"]:
        assert name in satori_env.__all__ and hasattr(satori_env, name)


@pytest.mark.slow
def test_wheel_contains_data_worker_and_entry_point(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), "."],
        check=True,
        timeout=600,
    )
    (wheel,) = tmp_path.glob("satori_env-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in [
        "satori_env/_verifier_worker.py",
        "satori_env/assets/tokenizer/tokenizer.json",
        "satori_env/assets/tokenizer/tokenizer_config.json",
        "satori_env/tasks/data/README.md",
        "satori_env/tasks/data/math500.jsonl.gz",
        "satori_env/tasks/data/gsm8k_train.jsonl.gz",
        "agents/cli.py",
        "satori_cli.py",
    ]:
        assert required in names, required
    assert not any(name.startswith(("tests/", "benchmarks/")) for name in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "satori = satori_cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
