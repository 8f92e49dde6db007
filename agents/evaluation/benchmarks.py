"""``satori eval``: a model on the math benchmarks, by the protocol of Satori's table.

Protocol (what the published numbers mean, and what this harness does by default):

* **Problems**: each benchmark's test set as vendored in ``satori_env`` (GSM8K test 1319,
  MATH500 500, OlympiadBench 675, AMC23 40, AIME24 30, Minerva 272), in file order; ``--limit N``
  keeps the first N.
* **Prompt**: zero-shot, Satori's chat template (``satori_env.coat.PROMPT_TEMPLATES["satori"]``:
  "Solve the following math problem efficiently and clearly. Please reason step by step, and put
  your final answer within \\boxed{}."), one problem per prompt, no few-shot examples; a policy
  tuned by ``satori sft`` / ``satori train`` is prompted with the template it was tuned with
  (recorded in its directory), unless ``--template`` says otherwise.
* **Decoding**: greedy (temperature 0) for pass@1, at most ``max_new_tokens`` (4096, or fewer
  when the model's positions leave less room after the longest prompt) new tokens,
  stopping at EOS or ``<|im_end|>``. With ``--k K``, K more samples per problem at temperature
  0.6, top-p 0.95 (Satori's sampling temperature) give sampled pass@1 (mean), pass@K (unbiased
  estimator) and maj@K (majority answer by equivalence).
* **Answer**: the last ``\\boxed{}`` of the response (else "The answer is ...", else ``#### ...``),
  judged against the gold answer by the library's verifier (math-verify underneath, an exact fast
  path for plain numbers, a hard per-check timeout): the same code that rewards the policy in
  training, run through ``SatoriMathVectorEnv``. ``satori datasets --check`` and
  ``tests/test_evaluation.py`` run this extraction on every benchmark's own reference solutions.

Outputs, in ``--out``: ``results.json`` (every number and every response), ``results.md`` (the
table, with Satori-Qwen-7B's published pass@1 beside ours), and ``coat.png`` (COAT analysis).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from agents.arguments import check_fields
from agents.engines import ENGINES, GenerationEngine, SamplingParams, make_engine
from agents.evaluation.episodes import evaluate
from agents.evaluation.metrics import change_outcomes, majority_vote, pass_at_k
from satori_env import Problem, SatoriMathEnv, load_problems
from satori_env.atomic import atomic_write
from satori_env.coat import META_ACTIONS, get_template
from satori_env.graders import GRADERS
from satori_env.verifier import RULES, Verifier, default_verifier, rule_verifier

__all__ = [
    "BENCHMARKS",
    "PUBLISHED_SATORI_7B",
    "EvalArgs",
    "coat_analysis",
    "evaluate_benchmark",
    "parse_names",
    "report_markdown",
    "evaluate_benchmarks",
]

BENCHMARKS: dict[str, str] = {
    "gsm8k": "gsm8k:test",
    "math500": "math500",
    "olympiadbench": "olympiadbench",
    "amc23": "amc23",
    "aime24": "aime24",
    "minerva": "minerva",
    "arith": "arith:test",  # the procedural held-out problems the tiny preset trains for
    # out of domain (Table 2; BGQA could not be obtained): graded by satori_env.graders
    "folio": "folio",
    "cruxeval": "cruxeval_o",
    "strategyqa": "strategyqa",
    "tablebench": "tablebench",
    "stem": "mmlu_pro_stem",
}
"""``--bench`` name -> problem source (``satori datasets`` lists the sources)."""

DEFAULT_TEMPLATE = "satori"  # for a model with no recorded template: Satori's protocol
DEFAULT_MAX_NEW_TOKENS = 4096

PUBLISHED_SATORI_7B: dict[str, dict[str, float]] = {
    "round 1": {
        "gsm8k": 93.2, "math500": 85.6, "olympiadbench": 46.6, "amc23": 67.5, "aime24": 20.0,
        "folio": 71.4, "cruxeval": 42.5, "strategyqa": 86.3, "tablebench": 43.4, "stem": 56.7,
    },
    "round 2": {
        "gsm8k": 93.9, "math500": 83.6, "olympiadbench": 48.5, "amc23": 72.5, "aime24": 23.3,
        "folio": 72.9, "cruxeval": 41.1, "strategyqa": 90.4, "tablebench": 44.6, "stem": 57.4,
    },
}  # fmt: skip
"""Satori-Qwen-7B greedy pass@1 (%) after each round (the paper's Tables 1 and 2, as its release's README
lists them; BGQA, which could not be obtained, left out): what this protocol must reproduce."""


@dataclass
class EvalArgs:
    """Evaluate a model on math benchmarks: greedy pass@1, and with --k sampled pass@k and maj@k;
    results as JSON and a markdown table, COAT analysis as a PNG."""

    model: str
    """the policy: a local directory or a hub id (AutoModelForCausalLM + its tokenizer)"""
    bench: str = "gsm8k,math500,olympiadbench,amc23,aime24,minerva"
    """comma-separated benchmarks: gsm8k, math500, olympiadbench, amc23, aime24, minerva, arith, and out of domain
    folio, cruxeval, strategyqa, tablebench, stem (MMLU-Pro STEM)"""
    limit: int | None = None
    """at most this many problems per benchmark (the first ones), for quick runs"""
    k: int = 0
    """samples per problem for sampled pass@1, pass@k and maj@k (0: greedy pass@1 only)"""
    temperature: float = 0.6
    """sampling temperature of the k samples"""
    top_p: float = 0.95
    """nucleus threshold of the k samples"""
    max_new_tokens: int | None = None
    """most tokens of one response; None: 4096, or what the model's positions leave after the longest prompt"""
    template: str | None = None
    """prompt template: None (the one the model was tuned with, recorded in its directory by satori sft / train;
    else satori), satori (Satori's chat prompt), compact (the tiny preset's), or a format string with {question}"""
    engine: str = "hf"
    """generation engine: hf or vllm"""
    verifier: str = "math-verify"
    """answer rule: math-verify (the last answer of the whole response; the library's default) or satori-release
    (Satori's release: the last box of the last 128 characters, its GSM8K and MATH checkers), to compare with the
    paper"""
    device: str = "auto"
    """cpu, cuda, or auto"""
    batch_size: int = 64
    """prompts per generation call"""
    seed: int = 0
    """seed of the sampling"""
    out: str = "runs/eval"
    """directory for results.json, results.md and coat.png"""
    plots: bool = True
    """write coat.png"""
    progress: bool = True
    """progress bars"""

    def benchmarks(self) -> list[str]:
        """The ``--bench`` names, checked (``ValueError`` lists the valid ones)."""
        return parse_names(self.bench, BENCHMARKS)

    def check(self) -> None:
        """Every setting, checked before any model is loaded."""
        self.benchmarks()
        if self.engine not in ENGINES:
            raise ValueError(f"unknown engine {self.engine!r}; valid engines: {list(ENGINES)}")
        if self.verifier not in RULES:
            raise ValueError(f"unknown verifier {self.verifier!r}; valid answer rules: {list(RULES)}")
        if self.k < 0:
            raise ValueError(f"k must be >= 0 (0: greedy only), got {self.k}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1 (or unset for every problem), got {self.limit}")
        check_fields(self, at_least={"batch_size": 1, "seed": 0})
        if self.template is not None:
            get_template(self.template)
        SamplingParams(self.max_new_tokens or 1, self.temperature, self.top_p)  # its own checks


def parse_names(text: str, valid: Iterable[str]) -> list[str]:
    """The comma-separated names in ``text``, each one of ``valid`` (else ``ValueError`` lists them)."""
    valid = list(valid)
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in valid]
    if unknown or not names:
        raise ValueError(f"unknown benchmark(s) {unknown or [text]}; valid: {valid}")
    return names


def evaluate_benchmark(
    engine: GenerationEngine,
    tokenizer: Any,
    problems: Sequence[Problem],
    args: EvalArgs,
    verifier: Verifier | None = None,
    desc: str = "",
) -> dict[str, Any]:
    """Greedy pass@1 (and with ``args.k`` the sampled metrics) of ``engine`` on ``problems``,
    plus the COAT analysis of the greedy responses. Every response is kept in ``"records"``."""
    verifier = verifier or rule_verifier(args.verifier)
    args = replace(
        args, template=args.template or DEFAULT_TEMPLATE, max_new_tokens=args.max_new_tokens or DEFAULT_MAX_NEW_TOKENS
    )
    greedy = SamplingParams(args.max_new_tokens, temperature=0.0)
    run = evaluate(
        engine,
        tokenizer,
        problems,
        params=greedy,
        batch_size=args.batch_size,
        prompt_template=args.template,
        progress=args.progress,
        desc=f"{desc} greedy",
        verifier=verifier,
    )
    result: dict[str, Any] = {
        "n": run.n,
        "pass@1": run.accuracy,
        "mean_new_tokens": run.mean_new_tokens,
        "well_formed": run.well_formed,
    }
    if args.k:
        sampled_params = SamplingParams(args.max_new_tokens, args.temperature, args.top_p, seed=args.seed)
        repeated = [problem for problem in problems for _ in range(args.k)]
        sampled = evaluate(
            engine,
            tokenizer,
            repeated,
            params=sampled_params,
            batch_size=args.batch_size,
            prompt_template=args.template,
            progress=args.progress,
            desc=f"{desc} k={args.k}",
            verifier=verifier,
        )
        result.update(_sampled_metrics(sampled.records, args.k, verifier))
        result["sampled_records"] = sampled.records
    result["coat"] = coat_analysis(run.records, verifier)
    result["records"] = run.records
    return result


def _sampled_metrics(records: list[dict[str, Any]], k: int, verifier: Verifier) -> dict[str, float]:
    rule = records[0].get("grader") if records else None  # one benchmark: one answer rule

    def same(a: str, b: str) -> bool:
        if rule is not None:  # a label, value or letter: the same when either reads as the other
            return GRADERS[rule](a, b) or GRADERS[rule](b, a)
        return verifier.check(f"\\boxed{{{a}}}", b).correct

    per_problem = [records[start : start + k] for start in range(0, len(records), k)]
    return {
        "sampled_pass@1": float(np.mean([r["correct"] for r in records])),
        f"pass@{k}": float(np.mean([pass_at_k(k, sum(r["correct"] for r in group), k) for group in per_problem])),
        f"maj@{k}": float(
            np.mean(
                [
                    majority_vote([r["answer"] for r in group], [r["correct"] for r in group], same)
                    for group in per_problem
                ]
            )
        ),
    }


def coat_analysis(records: list[dict[str, Any]], verifier: Verifier | None = None) -> dict[str, Any]:
    """How a policy uses COAT on a benchmark, from evaluation records (``completion``, ``gold``,
    ``actions``, ``num_new_tokens``, ``correct``).

    Returns: ``actions_per_response`` (mean count of each meta-action), ``responses_with``
    (share of responses using each at least once), ``changes`` (for reflect and explore: how
    often the answer written before it was wrong and the next one right, ``wrong_to_right``;
    right then wrong, ``right_to_wrong``; unchanged in correctness, ``kept``; no answer before
    it, ``no_answer_before``), ``accuracy_with_reflection`` / ``accuracy_without_reflection``,
    and ``lengths`` (every response's new-token count, for the histogram)."""
    counts = {
        name: {"wrong_to_right": 0, "right_to_wrong": 0, "kept": 0, "no_answer_before": 0}
        for name in ("reflect", "explore")
    }
    for judged in change_outcomes(records, verifier or default_verifier()):
        for action, outcome in judged:
            counts[action][outcome] += 1
    reflected = [r["correct"] for r in records if r["actions"]["reflect"] or r["actions"]["explore"]]
    plain = [r["correct"] for r in records if not (r["actions"]["reflect"] or r["actions"]["explore"])]
    return {
        "actions_per_response": {name: float(np.mean([r["actions"][name] for r in records])) for name in META_ACTIONS},
        "responses_with": {name: float(np.mean([r["actions"][name] > 0 for r in records])) for name in META_ACTIONS},
        "changes": counts,
        "accuracy_with_reflection": float(np.mean(reflected)) if reflected else None,
        "accuracy_without_reflection": float(np.mean(plain)) if plain else None,
        "lengths": [int(r["num_new_tokens"]) for r in records],
    }


def evaluate_benchmarks(args: EvalArgs) -> dict[str, Any]:
    """Load the model, evaluate every benchmark, write ``results.json``, ``results.md`` and
    ``coat.png`` to ``args.out``; returns the results."""
    args.check()
    from agents.models import load_policy, policy_settings

    model, tokenizer = load_policy(args.model, device=args.device)
    model.eval()
    template = args.template or policy_settings(args.model).get("prompt_template", DEFAULT_TEMPLATE)
    problems = {name: load_problems(BENCHMARKS[name], limit=args.limit, seed=args.seed) for name in args.benchmarks()}
    longest = max(
        len(tokenizer.encode(get_template(template).format(p.question))) for chunk in problems.values() for p in chunk
    )
    args = replace(args, template=template, max_new_tokens=fit_new_tokens(args.max_new_tokens, longest, model.config))
    env = SatoriMathEnv(tokenizer=tokenizer, prompt_template=template)  # what the engine may write
    engine = make_engine(args.engine, model, env, model_path=args.model)
    results: dict[str, Any] = {"config": asdict(args), "benchmarks": {}}
    for name, chunk in problems.items():
        results["benchmarks"][name] = evaluate_benchmark(engine, tokenizer, chunk, args, desc=name)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "results.json", json.dumps(results, indent=1).encode())
    atomic_write(out / "results.md", report_markdown(results).encode())
    if args.plots:
        from agents.plotting import plot_coat_analysis

        plot_coat_analysis({name: bench["coat"] for name, bench in results["benchmarks"].items()}, out / "coat.png")
    return results


def fit_new_tokens(requested: int | None, longest_prompt: int, model_config: Any) -> int:
    """The response budget: ``requested``, or by default 4096 capped to what the model's
    positions leave after the longest prompt. A requested budget past the positions is kept,
    with a warning (the model has never seen such positions)."""
    positions = getattr(model_config, "max_position_embeddings", None)
    room = None if positions is None else positions - longest_prompt
    if requested is None:
        return max(1, min(DEFAULT_MAX_NEW_TOKENS, room)) if room is not None else DEFAULT_MAX_NEW_TOKENS
    if room is not None and requested > room:
        warnings.warn(
            f"the longest prompt ({longest_prompt} tokens) and --max-new-tokens {requested} exceed the model's "
            f"{positions} positions; responses past them are unreliable (--max-new-tokens {max(room, 1)} fits)",
            stacklevel=2,
        )
    return requested


def report_markdown(results: dict[str, Any]) -> str:
    """The results table (percentages), with Satori-Qwen-7B's published greedy pass@1 beside ours,
    and the COAT analysis table."""
    config, benches = results["config"], results["benchmarks"]
    k = config["k"]
    sampled = ["sampled_pass@1", f"pass@{k}", f"maj@{k}"] if k else []
    header = [
        "benchmark",
        "n",
        "pass@1 (greedy)",
        *(key.replace("_", " ") for key in sampled),
        *(f"Satori-Qwen-7B {name} (paper)" for name in PUBLISHED_SATORI_7B),
        "mean new tokens",
    ]
    lines = [
        f"model: `{config['model']}`, template {config['template']}, engine {config['engine']}, "
        f"max {config['max_new_tokens']} new tokens" + (f", k={k} at temperature {config['temperature']}" if k else ""),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for name, bench in benches.items():
        cells = [name, str(bench["n"]), _pct(bench["pass@1"]), *(_pct(bench[key]) for key in sampled)]
        published = [scores.get(name) for scores in PUBLISHED_SATORI_7B.values()]
        cells += [f"{p:.1f}" if p is not None else "-" for p in published] + [f"{bench['mean_new_tokens']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "COAT (greedy responses): meta-actions per response; answer changes at reflect/explore (wrong->right / "
        "right->wrong / kept / no answer before)",
        "",
    ]
    lines += [
        "| benchmark | continue | reflect | explore | reflect changes | explore changes |",
        "|---|---|---|---|---|---|",
    ]
    for name, bench in benches.items():
        coat = bench["coat"]
        per = coat["actions_per_response"]
        change = [
            "{wrong_to_right} / {right_to_wrong} / {kept} / {no_answer_before}".format(**coat["changes"][a])
            for a in ("reflect", "explore")
        ]
        lines.append(
            f"| {name} | {per['continue']:.2f} | {per['reflect']:.2f} | {per['explore']:.2f} | {change[0]} | "
            f"{change[1]} |"
        )
    return "\n".join(lines) + "\n"


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"
