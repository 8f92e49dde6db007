"""``satori bench``: every benchmark script of ``benchmarks/``, one table of ratios.

Each script measures ours against a baseline in the same run (the verifier against math-verify
called directly, the environment's overhead against raw ``generate``, the rollout engines'
tokens/s against ``generate``, episodes against GEM's ``MathEnv``, the update's padding against one
padded micro-batch, the RL step against TRL's ``GRPOTrainer``) and writes its rows as
JSON (:mod:`agents.speed_report`); this command runs them one after another, each in a fresh
process, and prints the machine and all rows. The scripts live in the repository (they are
measurement code, not library code), so the command runs from a checkout.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from agents.evaluation.benchmarks import parse_names
from agents.speed_report import machine, markdown_table, read_json

__all__ = ["SUITE", "SpeedSuiteArgs", "run_speed_suite"]

BENCHMARKS_DIR = Path(__file__).resolve().parent.parent / "benchmarks"

SUITE: dict[str, tuple[str, list[str], list[str]]] = {
    # name: (script, quick arguments, full arguments)
    "verifier": ("verifier.py", ["--limit", "100"], []),
    "env": ("env_overhead.py", ["--repeats", "3"], ["--repeats", "5"]),
    "engine": ("engine_throughput.py", ["--repeats", "3"], ["--repeats", "5"]),
    "scaling": ("scaling.py", ["--episodes", "32", "--new-tokens", "64", "--repeats", "1"], []),
    "episodes": ("episodes.py", ["--limit", "200", "--repeats", "2"], []),
    "padding": ("padding.py", ["--sft-steps", "300", "--repeats", "2"], []),
    "rl": (  # a format-tuned policy (completions stop, as in training), each library's bf16 learner
        "ppo_step.py",
        ["--steps", "5", "--satori", "ppo:hf", "grpo:hf", "--sft-steps", "300", "--bf16"],
        ["--steps", "8", "--satori", "ppo:hf", "grpo:hf", "--sft-steps", "600", "--bf16"],
    ),
}
"""``--only`` name -> (script, quick arguments, full arguments). Quick: a few minutes each on a
2-core CPU."""


@dataclass
class SpeedSuiteArgs:
    """Run the benchmark scripts and print one table of ratios against baselines measured in
    the same run, with the machine described."""

    only: str = "verifier,env,engine,scaling,episodes,padding,rl"
    """comma-separated: verifier, env, engine, scaling, episodes, padding, rl"""
    full: bool = False
    """the scripts' full settings (longer) instead of the quick ones"""
    vllm: bool = False
    """also time the vLLM engine (engine throughput and the RL step)"""
    out: str | None = None
    """also write the table (bench.md) and the rows (bench.json) to this directory"""

    def selected(self) -> list[str]:
        """The ``--only`` names, checked (``ValueError`` lists the valid ones)."""
        return parse_names(self.only, SUITE)


def _command(name: str, args: SpeedSuiteArgs, json_path: Path) -> list[str]:
    script, quick, full = SUITE[name]
    extra = []
    if args.vllm and name == "engine":
        extra = ["--vllm"]
    if args.vllm and name == "rl":
        extra = ["ppo:vllm", "grpo:vllm"]  # more --satori runs
    return [
        sys.executable,
        str(BENCHMARKS_DIR / script),
        *(full if args.full else quick),
        *extra,
        "--json",
        str(json_path),
    ]


def run_speed_suite(args: SpeedSuiteArgs) -> tuple[str, list[str]]:
    """Run the selected scripts; returns the report (machine line and table) and the failures
    (scripts that wrote no rows, with the end of their output)."""
    import json

    names = args.selected()
    if not BENCHMARKS_DIR.is_dir():
        raise FileNotFoundError(
            f"satori bench runs the scripts in a checkout's benchmarks/ directory; none at {BENCHMARKS_DIR}"
        )
    rows, failures = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in tqdm(names, desc="benchmarks", unit="script"):
            json_path = Path(tmp) / f"{name}.json"
            done = subprocess.run(
                _command(name, args, json_path), capture_output=True, text=True, cwd=BENCHMARKS_DIR.parent, check=False
            )
            if json_path.exists():
                rows += read_json(json_path)
            else:
                tail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-3:]
                failures.append(f"{name} (exit {done.returncode}): " + " / ".join(tail))
    report = f"machine: {machine()}\n\n{markdown_table(rows)}\n"
    if args.out is not None:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench.md").write_text(report)
        (out / "bench.json").write_text(json.dumps([row.__dict__ for row in rows], indent=1))
    return report, failures
