"""The ``satori`` command as a user runs it."""

import shutil
import subprocess
import sys

import pytest

from agents.cli import main


def test_datasets_lists_every_source_with_its_size(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name, count in [("gsm8k:train", 7473), ("math500", 500), ("arith:test", 1000), ("aime24", 30)]:
        assert any(line.startswith(f"| {name} ") and f"| {count} " in line for line in out.splitlines()), name


def test_datasets_check_verifies_reference_solutions(capsys):
    assert main(["datasets", "--check", "--workers", "2"]) == 0
    lines = {line.split("|")[1].strip(): line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")}
    assert "500 (100.0%)" in lines["math500"]
    assert "1319 (100.0%)" in lines["gsm8k:test"]
    assert lines["amc23"].rstrip(" |").endswith("-")  # no reference solutions to check


def test_verify_prints_the_verdict_and_sets_the_exit_code(capsys):
    assert main(["verify", "so \\boxed{0.5}", "\\frac{1}{2}"]) == 0
    assert "correct: True" in capsys.readouterr().out
    assert main(["verify", "so \\boxed{0.6}", "\\frac{1}{2}"]) == 1
    assert "predicted: 0.6" in capsys.readouterr().out


def test_unknown_subcommand_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["trian"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--algo", "a2c"], "unknown algorithm 'a2c'; valid algorithms: ['grpo', 'ppo'"),
        (["--algo", "grpo", "--group-size", "1"], "grpo compares the episodes of a group: group_size must be >= 2"),
        (["--algo", "rloo", "--episodes-per-iteration", "20"], "episodes_per_iteration (20) must be a multiple of group_size (8)"),
        (["--curriculum", "hardest"], "unknown curriculum 'hardest'; valid curricula: ['adaptive', 'uniform']"),
        (["--curriculum", "adaptive", "--tasks", "gsm8k:train"], "curriculum 'adaptive' chooses among the procedural levels; it needs tasks='arith'"),
    ],
)
def test_train_refuses_bad_algorithm_settings_before_any_work(tmp_path, args, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--out", str(tmp_path / "run"), *args])
    assert str(exit_info.value).startswith("satori train: ") and message in str(exit_info.value)
    assert not (tmp_path / "run").exists()  # nothing built


def test_a_foreign_agents_package_is_named(tmp_path):
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "__init__.py").write_text("")
    code = f"import sys; sys.path.insert(0, {str(tmp_path)!r}); from satori_env._entry import main; main(['datasets'])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "is not satori-env's" in result.stderr and str(tmp_path) in result.stderr


@pytest.mark.skipif(shutil.which("satori") is None, reason="the package is not installed (pip install -e .)")
def test_installed_console_script():
    result = subprocess.run(["satori", "datasets"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "| olympiadbench | 675" in result.stdout
