"""The ``satori`` command line: one sub-command per job, each configured by one dataclass.

satori datasets            # list the problem sources
satori datasets --check    # verify every benchmark's reference solutions against its gold answers
satori verify "... \\boxed{0.5}" "\\frac{1}{2}"
satori build-model --preset tiny --out runs/tiny/base
satori synth --out runs/tiny/demos.jsonl --n 20000
satori sft --model runs/tiny/base --data runs/tiny/demos.jsonl --out runs/tiny/sft
satori train --preset tiny                # stage one if needed, then PPO with RAE (14 min on a 2-core CPU)
satori train --preset tiny --rounds 2     # then distil the RL policy's verified answers and run RL again
satori train-rm --out runs/reward-model   # the outcome reward model of the preference bonus
satori eval --model runs/tiny/rl/model --bench arith --template compact --max-new-tokens 160
satori eval --model /path/to/Satori-Qwen-7B --engine vllm   # the paper's table: greedy pass@1 on every benchmark
satori bench                              # every benchmark script, one table of ratios (about 10 minutes)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

import tyro
from tqdm import tqdm

from agents.arguments import check_fields, flag
from agents.config import PRESETS, TrainConfig, import_modules, preset
from agents.evaluation.benchmarks import EvalArgs
from agents.reward_model import RewardModelArgs
from agents.sft import SFTArgs, train_sft
from agents.speed_suite import SpeedSuiteArgs
from satori_env.graders import judge
from satori_env.tasks import list_sources, load_problems
from satori_env.tasks.datasets import reference_solution
from satori_env.verifier import DEFAULT_TIMEOUT_S, Verifier


@dataclass
class DatasetsArgs:
    """List the problem sources with their sizes; with --check, verify each benchmark's own
    reference solutions against its gold answers (a test of answer extraction and checking)."""

    check: bool = False
    """verify the reference solutions against the gold answers"""
    workers: int | None = None
    """verifier worker processes (default: min(4, CPUs), at least 2)"""
    timeout: float = DEFAULT_TIMEOUT_S
    """seconds one answer check may take before it counts as wrong"""


@dataclass
class VerifyArgs:
    """Check one completion against a gold answer and print the verdict."""

    completion: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="COMPLETION")]
    """model output; its final answer is the last \\boxed{}, else "The answer is ...", else "#### ..." """
    gold: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="GOLD")]
    """the reference answer, e.g. \\frac{1}{2}"""
    timeout: float = DEFAULT_TIMEOUT_S
    """seconds the check may take before it counts as wrong"""


def run_datasets(args: DatasetsArgs) -> int:
    rows = []
    with Verifier(timeout=args.timeout, workers=args.workers) as verifier:
        for name in tqdm(list_sources(), desc="sources", disable=not args.check):
            problems = load_problems(name)
            levels = sorted({p.level for p in problems if p.level is not None})
            row = [name, str(len(problems)), f"{levels[0]}-{levels[-1]}" if levels else "-"]
            if args.check:
                pairs = [(s, p) for p in problems if (s := reference_solution(p)) is not None]
                verdicts = judge(verifier, [s for s, _ in pairs], [p for _, p in pairs])
                answered = [v for v in verdicts if v.status != "no_answer"]
                accepted = sum(v.correct for v in answered)
                share = f"{accepted} ({accepted / len(answered):.1%})" if answered else "-"
                row += [str(len(pairs)), str(len(answered)), share]
            rows.append(row)
        header = ["source", "problems", "levels"]
        if args.check:
            header += ["with solution", "solution has an answer", "verified against gold"]
            stats = verifier.stats
    _print_table(header, rows)
    if args.check:
        print(
            f"\nchecks: {stats.checks}, decided by the fast path: {stats.fast_path}, "
            f"timeouts: {stats.timeouts}, errors: {stats.errors}"
        )
    return 0


def run_verify(args: VerifyArgs) -> int:
    with Verifier(timeout=args.timeout, workers=1) as verifier:
        verdict = verifier.check(args.completion, args.gold)
    print(
        f"correct: {verdict.correct}\npredicted: {verdict.predicted}\nstatus: {verdict.status}\n"
        f"seconds: {verdict.seconds:.3f}"
    )
    return 0 if verdict.correct else 1


@dataclass
class BuildModelArgs:
    """Train the tokenizer offline and build a Llama-style model from a preset's config; save both."""

    preset: str = "tiny"
    """model preset: tiny (about 3.4M parameters) or small (about 27M)"""
    out: str = "runs/tiny/base"
    """directory for save_pretrained (AutoModelForCausalLM.from_pretrained loads it)"""
    seed: int = 0
    """seed of the initial weights"""
    overwrite: bool = False
    """replace what is in OUT (otherwise an existing, non-empty OUT is refused)"""

    def __post_init__(self) -> None:
        from agents.models import MODEL_PRESETS

        check_fields(self, at_least={"seed": 0}, choices={"preset": sorted(MODEL_PRESETS)})


def run_build_model(args: BuildModelArgs) -> int:
    from agents.models import build_model

    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.overwrite:
        raise FileExistsError(f"{out} exists and is not empty; pass --overwrite to replace it, or another --out")
    model, tokenizer = build_model(args.preset, args.out, args.seed)
    print(
        f"{args.preset}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, "
        f"{len(tokenizer)} token ids; saved to {args.out}"
    )
    return 0


@dataclass
class SynthArgs:
    """Synthesise COAT demonstrations (generator -> error injector -> critic -> verifier)."""

    out: str = "runs/tiny/demos.jsonl"
    """JSON lines to write (atomically)"""
    n: int = 20000
    """demonstrations to make (those whose answer does not verify are dropped)"""
    arith: float = 1.0
    """weight of procedural arithmetic problems (train split)"""
    gsm8k: float = 0.0
    """weight of GSM8K training problems (steps from their calculator notes)"""
    levels: tuple[int, ...] = (1, 2, 3)
    """arithmetic levels"""
    clean: float = 0.5
    """weight of plain step-by-step demonstrations"""
    confirm: float = 0.15
    """weight of demonstrations that reflect and confirm a right step"""
    fix: float = 0.2
    """weight of demonstrations that reflect on a wrong step and explore its fix"""
    explore: float = 0.15
    """weight of demonstrations that answer wrong, reflect, find the slip and explore to the right answer"""
    cot: bool = False
    """plain chain of thought instead (the baseline without meta-actions): the same problems, clean solutions
    whose steps are separated by newlines"""
    seed: int = 0
    """seed of everything"""

    def __post_init__(self) -> None:
        from satori_env.tasks.arithmetic import LEVELS

        weights = ("arith", "gsm8k", "clean", "confirm", "fix", "explore")
        check_fields(
            self, at_least={"n": 1, "seed": 0, **dict.fromkeys(weights, 0)}, subsets={"levels": sorted(LEVELS)}
        )
        for group in (("arith", "gsm8k"), ("clean", "confirm", "fix", "explore")):
            if not sum(getattr(self, name) for name in group) > 0:
                raise ValueError(f"at least one of {', '.join(flag(name) for name in group)} must be > 0")


def run_synth(args: SynthArgs) -> int:
    from agents.data.synth import synthesize, write_demos

    demos, report = synthesize(
        args.n,
        sources={name: weight for name, weight in (("arith", args.arith), ("gsm8k", args.gsm8k)) if weight > 0},
        mix={"clean": args.clean, "confirm": args.confirm, "fix": args.fix, "explore": args.explore},
        levels=args.levels,
        seed=args.seed,
        cot=args.cot,
    )
    write_demos(demos, args.out)
    print(f"{report.summary()}; wrote {args.out}")
    return 0


def run_sft(args: SFTArgs) -> int:
    metrics = train_sft(args)
    print(
        f"{metrics['steps']} steps in {metrics['train_seconds'] / 60:.1f} min "
        f"({metrics['tokens_per_s']:,.0f} tokens/s), final loss {metrics['final_loss']:.3f}; model in {args.out}/model"
    )
    if "eval" in metrics:
        rows = [
            [name] + [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()]
            for name, row in metrics["eval"].items()
        ]
        _print_table(["greedy, held-out", *next(iter(metrics["eval"].values())).keys()], rows)
    return 0


def run_train(config: TrainConfig) -> int:
    from agents.train import run

    result = run(config)
    if os.environ.get("RANK", "0") != "0":  # under torchrun: rank 0 reports
        return 0
    before, after = result["before"], result["after"]
    if before and after:
        keys = [k for k in after if k.startswith("acc") or k in ("well_formed", "mean_new_tokens")]
        named = _result_rows(config, result)
        rows = [[name, *(f"{row[k]:.3f}" for k in keys)] for name, row in named]
        _print_table(["greedy, held-out arith:test", *keys], rows)
    from agents.rounds import round_dir

    last = round_dir(config, config.rounds) / "rl"
    rounds = f" in each of {config.rounds} rounds" if config.rounds > 1 else ""
    print(
        f"{result['iterations']} iterations of {config.algo}{rounds}; policy in {last}/model, TensorBoard in {last}/tb"
    )
    return 0


def _result_rows(config: TrainConfig, result: dict) -> list[tuple[str, dict]]:
    """The held-out rows of a run: format tuning, its continuation if asked for, and RL (with
    rounds: each round's distilled model and its RL)."""
    rl = f"RL ({config.algo}{', RAE' if config.restart_prob else ''})"
    if "rounds" not in result:
        named = [("SFT (format tuning)", result["before"])]
        if "continued" in result:
            named.append((f"SFT, continued {result['continued']['minutes']:.1f} min", result["continued"]))
        return [*named, (f"SFT + {rl}", result["after"])]
    named = [
        ("round 0: SFT (format tuning)", result["rounds"][0]["eval"]),
        (f"round 1: SFT + {rl}", result["rounds"][1]["eval"]),
    ]
    for row in result["rounds"][2:]:
        k = row["round"]
        named.append((f"round {k}: distilled ({row['distilled']} kept)", row["distilled_eval"]))
        named.append((f"round {k}: distilled + {rl}", row["eval"]))
    return named


def _train_config(argv: list[str]) -> TrainConfig:
    """``satori train [--preset NAME] [--import MODULE ...] [--field value ...]``: the preset's
    TrainConfig, overridden; each ``--import`` module is imported first, so that algorithms (or
    reward presets, curricula) it registers can be named."""
    args = list(argv)
    names = _pop_option(args, "--preset")
    name = names[-1] if names else "tiny"
    modules = tuple(_pop_option(args, "--import"))
    import_modules(modules)
    default = replace(preset(name), imports=modules)
    description = (
        f"{TrainConfig.__doc__}\n\n"
        f"--preset {{{','.join(sorted(PRESETS))}}}  the preset whose values are the defaults below (now: {name})\n"
        "--import MODULE  import MODULE first, e.g. one that registers your algorithm with @agents.algorithms.register"
    )
    return tyro.cli(TrainConfig, default=default, args=args, prog="satori train", description=description)


def _pop_option(args: list[str], option: str) -> list[str]:
    """Remove every ``option VALUE`` / ``option=VALUE`` from ``args``; returns the values."""
    values, i = [], 0
    while i < len(args):
        if args[i] == option:
            if i + 1 >= len(args):
                raise ValueError(f"{option} needs a value")
            values.append(args[i + 1])
            del args[i : i + 2]
        elif args[i].startswith(option + "="):
            values.append(args[i].split("=", 1)[1])
            del args[i]
        else:
            i += 1
    return values


def run_eval(args: EvalArgs) -> int:
    from agents.evaluation.benchmarks import evaluate_benchmarks, report_markdown

    args.check()
    results = evaluate_benchmarks(args)
    print(report_markdown(results))
    print(f"every response in {args.out}/results.json" + (f", COAT plots in {args.out}/coat.png" if args.plots else ""))
    return 0


def run_bench(args: SpeedSuiteArgs) -> int:
    from agents.speed_suite import run_speed_suite

    report, failures = run_speed_suite(args)
    print(report)
    for failure in failures:
        print(f"failed: {failure}")
    return 1 if failures else 0


@dataclass
class ServeOpenEnvArgs:
    """Serve SatoriMath as an OpenEnv environment: one session per WebSocket connection, token ids
    both ways, a restart buffer shared by the sessions (see satori_env.integrations.openenv)."""

    host: str = "127.0.0.1"
    """address to listen on (127.0.0.1: this machine only)"""
    port: int = 8000
    """port to listen on"""
    tasks: str | None = None
    """problem source of a reset without a problem (None: procedural arithmetic, levels 1-3)"""
    tokenizer: str | None = None
    """the policy's tokenizer (local path or hub id; None: the shipped one)"""
    max_new_tokens: int = 256
    """tokens an episode may write"""
    prompt_template: str = "compact"
    """how problems are shown (compact, satori, or a string with {question})"""
    max_sessions: int = 64
    """concurrent sessions"""
    restart: bool = True
    """keep a restart buffer that finished episodes feed and resets may start from"""

    def __post_init__(self) -> None:
        check_fields(self, at_least={"port": 1, "max_new_tokens": 1, "max_sessions": 1}, at_most={"port": 65535})


def run_serve_openenv(args: ServeOpenEnvArgs) -> int:
    from satori_env.integrations.openenv import serve

    print(f"SatoriMath OpenEnv server on ws://{args.host}:{args.port}/ws (Ctrl-C stops it)", flush=True)
    serve(
        args.host, args.port, args.max_sessions, restart=args.restart, tasks=args.tasks, tokenizer=args.tokenizer,
        max_new_tokens=args.max_new_tokens, prompt_template=args.prompt_template,
    )  # fmt: skip
    return 0


@dataclass
class VerlDataArgs:
    """Write verl's training data (parquet) from satori task sources: one row per problem, run by
    the satori_agent loop (see satori_env.integrations.verl_data)."""

    out: str
    """the parquet file to write"""
    tasks: list[str] = field(default_factory=lambda: ["gsm8k:train"])
    """task sources, one curriculum arm each, easiest first (a source name, or name@level)"""
    limit: int | None = None
    """at most this many problems per task (arithmetic: 1000 when not given)"""
    seed: int = 0
    """seed of procedural arithmetic"""
    prompt_template: str = "satori"
    """the template of the prompt column (the agent loop builds the ids with its own)"""

    def __post_init__(self) -> None:
        check_fields(self, at_least={"limit": 1, "seed": 0})


def run_verl_data(args: VerlDataArgs) -> int:
    import pyarrow.parquet as pq

    from satori_env.integrations.verl_data import write_verl_parquet

    path = write_verl_parquet(args.tasks, args.out, args.limit, args.seed, args.prompt_template)
    print(f"{pq.read_metadata(path).num_rows} rows -> {path}")
    return 0


def run_train_rm(args: RewardModelArgs) -> int:
    metrics = args.run()
    print(" ".join(f"{name}={value:.4f}" for name, value in metrics.items()))
    print(f"saved to {args.out}/model (load with agents.reward_model.OutcomeRewardModel.from_pretrained)")
    return 0


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A GitHub-markdown table, readable in a terminal and pastable into a README."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    for line in (header, ["-" * w for w in widths], *rows):
        print("| " + " | ".join(str(cell).ljust(w) for cell, w in zip(line, widths)) + " |")


COMMANDS: dict[str, tuple[type, Callable[[Any], int]]] = {
    "datasets": (DatasetsArgs, run_datasets),
    "verify": (VerifyArgs, run_verify),
    "build-model": (BuildModelArgs, run_build_model),
    "synth": (SynthArgs, run_synth),
    "sft": (SFTArgs, run_sft),
    "train": (TrainConfig, run_train),
    "train-rm": (RewardModelArgs, run_train_rm),
    "eval": (EvalArgs, run_eval),
    "bench": (SpeedSuiteArgs, run_bench),
    "serve-openenv": (ServeOpenEnvArgs, run_serve_openenv),
    "verl-data": (VerlDataArgs, run_verl_data),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: the process arguments) and run the chosen sub-command.

    A bad setting or a missing file ends the command with one line, ``satori COMMAND: what is
    wrong`` (``SATORI_DEBUG=1`` shows the traceback instead).
    """
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # our own bars say what is going on
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else ""
    try:
        if command == "train":  # presets: parsed before the preset's fields
            return run_train(_train_config(argv[1:]))
        args = tyro.extras.subcommand_cli_from_dict(
            {name: config for name, (config, _) in COMMANDS.items()},
            prog="satori",
            description="satori-env: Satori's COAT reasoning and RAE as a Gymnasium MDP.",
            args=argv,
        )
        run = next(runner for config, runner in COMMANDS.values() if isinstance(args, config))
        return run(args)
    except (ValueError, OSError) as error:
        if os.environ.get("SATORI_DEBUG"):
            raise
        raise SystemExit(f"satori {command}: {error}") from None


if __name__ == "__main__":  # torchrun --nproc-per-node N -m agents.cli train --learner-ranks N ...
    raise SystemExit(main())
