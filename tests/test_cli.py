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
        (
            ["--algo", "rloo", "--episodes-per-iteration", "20"],
            "episodes_per_iteration (20) must be a multiple of group_size (8)",
        ),
        (["--curriculum", "hardest"], "unknown curriculum 'hardest'; valid curricula: ['adaptive', 'uniform']"),
        (
            ["--curriculum", "adaptive", "--tasks", "gsm8k:train"],
            "curriculum 'adaptive' chooses among the procedural levels; it needs tasks='arith'",
        ),
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
    code = f"import sys; sys.path.insert(0, {str(tmp_path)!r}); from satori_cli import main; main(['datasets'])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "is not satori-env's" in result.stderr and str(tmp_path) in result.stderr


@pytest.mark.skipif(shutil.which("satori") is None, reason="the package is not installed (pip install -e .)")
def test_installed_console_script():
    result = subprocess.run(["satori", "datasets"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "| olympiadbench | 675" in result.stdout


def _refusal(argv, capsys):
    """Run ``satori ARGV`` expecting a refusal: (exit code, what it printed and raised, on one line)."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    captured = capsys.readouterr()
    said = " ".join((captured.out + captured.err + str(exit_info.value.code)).replace("│", " ").split())
    return exit_info.value.code, said


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sft", "--steps", "-1"], "--steps must be >= 1, got -1"),
        (["sft", "--lr", "0"], "--lr must be > 0, got 0.0"),
        (["synth", "--n", "-5"], "--n must be >= 1, got -5"),
        (["synth", "--levels", "9"], "--levels takes one or more of [1, 2, 3, 4, 5, 6], got (9,)"),
        (
            ["synth", "--clean", "0", "--confirm", "0", "--fix", "0", "--explore", "0"],
            "at least one of --clean, --confirm, --fix, --explore must be > 0",
        ),
        (["train", "--iterations", "-2"], "--iterations must be >= 1, got -2"),
        (["train", "--episodes-per-iteration", "-1"], "--episodes-per-iteration must be >= 1, got -1"),
        (
            ["train", "--restart-strategy", "bogus"],
            "--restart-strategy must be one of ['uniform', 'balanced', 'frontier'], got 'bogus'",
        ),
        (["train", "--restart-prob", "1.5"], "--restart-prob must be <= 1, got 1.5"),
        (["train", "--preset", "huge"], "unknown preset 'huge'; valid presets"),
        (["train", "--model", "runs/no/such/model"], "--model 'runs/no/such/model': no such local directory"),
        (["train", "--engine", "trt"], "unknown engine 'trt'; valid engines: ['hf', 'vllm']"),
        (["build-model", "--preset", "huge"], "--preset must be one of ['small', 'tiny'], got 'huge'"),
        (["eval", "--model", "x", "--template", "nonsense"], "unknown prompt template 'nonsense'"),
        (
            ["eval", "--model", "./no/such/model", "--bench", "arith"],
            "model './no/such/model': no such local directory",
        ),
        (["sft", "--model", "./no/such/model"], "model './no/such/model': no such local directory"),
        (["sft", "--prompt-template", "nonsense"], "unknown prompt template 'nonsense'"),
        (["train-rm", "--steps", "0"], "--steps must be >= 1, got 0"),
        (["verify", "x", "1", "--timeout", "inf"], "timeout must be a positive number of seconds, at most"),
        (
            ["train", "--algo", "mine", "--import", "no_such_module_here"],
            "--import no_such_module_here: No module named",
        ),
    ],
)
def test_bad_settings_are_refused_in_one_message_naming_the_flag(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    code, said = _refusal(argv, capsys)
    assert code != 0 and message in said, said
    assert "Traceback" not in said
    assert not any(tmp_path.iterdir())  # nothing was written


def test_build_model_refuses_to_overwrite_unless_told(tmp_path, capsys):
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "notes.txt").write_text("mine")
    code, said = _refusal(["build-model", "--out", str(tmp_path / "base")], capsys)
    assert "exists and is not empty; pass --overwrite" in said
    assert (tmp_path / "base" / "notes.txt").read_text() == "mine"
    assert main(["build-model", "--out", str(tmp_path / "base"), "--overwrite"]) == 0
    assert (tmp_path / "base" / "config.json").exists() and not (tmp_path / "base" / "notes.txt").exists()


def test_train_imports_a_module_that_registers_an_algorithm(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_algos.py").write_text(
        "from agents.algorithms import register\n"
        "from agents.algorithms.reinforce_pp import ReinforcePlusPlus\n"
        "@register\nclass Mine(ReinforcePlusPlus):\n    name = 'mine'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    # registered: the run gets past the algorithm check to the next refusal (a missing model)
    code, said = _refusal(
        ["train", "--import", "my_algos", "--algo", "mine", "--model", str(tmp_path / "none")], capsys
    )
    assert "no such local directory" in said and "unknown algorithm" not in said


def test_train_help_lists_the_preset_and_import_options(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--preset {0.5b,1.5b,7b,tiny}" in out and "--import MODULE" in out
