"""``satori bench``: the ratio rows, the table, running the scripts and reporting failures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agents import speed_suite
from agents.cli import main
from agents.speed_report import Ratio, markdown_table, read_json, write_json
from agents.speed_suite import SpeedSuiteArgs, run_speed_suite

ROOT = Path(__file__).resolve().parent.parent


def test_advantage_reads_the_same_whichever_way_a_measure_improves():
    faster = Ratio("rl", "s/step", ours=2.0, baseline=5.0, baseline_name="TRL", lower_is_better=True, target=2.0)
    more = Ratio("engine", "tokens/s", ours=300.0, baseline=400.0, baseline_name="generate", lower_is_better=False)
    assert faster.advantage == 2.5 and faster.met
    assert more.advantage == 0.75 and more.met is None
    assert not Ratio("env", "s", 1.2, 1.0, "raw", True, 0.95).met
    table = markdown_table([faster, more])
    assert "| rl | s/step | 2 | 5 (TRL) | 2.50x | >= 2x | yes |" in table
    assert "| engine | tokens/s | 300 | 400 (generate) | 0.75x | - | - |" in table


def test_rows_round_trip_through_json(tmp_path):
    rows = [Ratio("verifier", "p99 ms", 40.0, 50.0, "math-verify direct", True, 1.0)]
    write_json(rows, tmp_path / "rows.json")
    assert read_json(tmp_path / "rows.json") == rows


def test_satori_bench_runs_each_script_and_reports_the_ones_that_fail(tmp_path, monkeypatch):
    (tmp_path / "good.py").write_text(
        "import json, sys\n"
        "assert sys.argv[1] == '--quick'\n"
        "row = {'benchmark': 'toy', 'measure': 's', 'ours': 1.0, 'baseline': 3.0, 'baseline_name': 'slow',\n"
        "       'lower_is_better': True, 'target': 2.0}\n"
        "json.dump([row], open(sys.argv[sys.argv.index('--json') + 1], 'w'))\n"
    )
    (tmp_path / "bad.py").write_text(
        "import sys\nprint('the baseline needs TRL: pip install trl', file=sys.stderr)\nsys.exit(2)\n"
    )
    monkeypatch.setattr(speed_suite, "BENCHMARKS_DIR", tmp_path)
    monkeypatch.setattr(speed_suite, "SUITE", {"good": ("good.py", ["--quick"], []), "bad": ("bad.py", [], [])})
    report, failures = run_speed_suite(SpeedSuiteArgs(only="good,bad", out=str(tmp_path / "out")))
    assert "| toy | s | 1 | 3 (slow) | 3.00x | >= 2x | yes |" in report and report.startswith("machine: ")
    assert failures == ["bad (exit 2): the baseline needs TRL: pip install trl"]
    assert json.loads((tmp_path / "out" / "bench.json").read_text())[0]["benchmark"] == "toy"
    assert (tmp_path / "out" / "bench.md").read_text() == report


def test_satori_bench_refuses_unknown_benchmarks():
    with pytest.raises(
        SystemExit,
        match=r"unknown benchmark\(s\) \['gpu'\]; valid: \['verifier', 'env', 'engine', 'scaling', 'episodes', "
        r"'padding', 'rl'\]",
    ):
        main(["bench", "--only", "env,gpu"])


def test_every_suite_script_exists_and_takes_json():
    for script, _, _ in speed_suite.SUITE.values():
        path = ROOT / "benchmarks" / script
        assert path.exists(), path
        assert "--json" in path.read_text()


@pytest.mark.slow
def test_the_engine_benchmark_writes_its_rows(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "engine_throughput.py"),
            "--prompts",
            "4",
            "--new-tokens",
            "8",
            "--repeats",
            "1",
            "--json",
            str(tmp_path / "rows.json"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = read_json(tmp_path / "rows.json")
    assert len(rows) == 2 and "generate" in rows[0].measure and "graph" in rows[1].measure
    for row in rows:
        assert row.benchmark == "engine" and row.ours > 0 and row.baseline > 0 and not row.lower_is_better
