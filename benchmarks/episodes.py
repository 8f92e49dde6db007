"""Episode cost: a SatoriMath episode (reset, the completion, the verdict) against GEM's MathEnv.

    python benchmarks/episodes.py              # GSM8K test and MATH500, about a minute on 2 CPU cores
    python benchmarks/episodes.py --limit 100

Cases per set: every reference solution (written as a model boxes its answer,
``satori_env.tasks.datasets.reference_response``) against its own gold answer, and against the
next problem's gold answer (a wrong answer). One episode each, one at a time:

* ours: ``SatoriMathEnv.reset(options={"problem": p})`` then ``step_tokens`` with the completion's
  token ids (encoded beforehand, as a policy hands them over) ending in EOS; the verdict is in
  the step's info. A fresh verifier per repeat: nothing is remembered from an earlier repeat.
* GEM: ``gem.envs.math_env.MathEnv`` on the same problems, ``reset(idx=i)`` then ``step(text)``, with
  its defaults (a one-process pool with a 1 s timeout, math-verify behind its own graders).

Also: how many verdicts differ between the two, and a check that the verifier's in-process fast
path gives the verdicts math-verify gives on every case it decides (``--agreement``).
Target (issue 25): MATH500 episodes >= 5x GEM's. Needs ``pip install gem-llm``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from agents.speed_report import Ratio, machine, write_json  # noqa: E402
from satori_env import SatoriMathEnv, load_problems  # noqa: E402
from satori_env.answers import extract_answer, fast_verdict  # noqa: E402
from satori_env.tasks.datasets import reference_response  # noqa: E402
from satori_env.tokenizer import default_tokenizer  # noqa: E402
from satori_env.verifier import Verifier  # noqa: E402

SETS = {"gsm8k": "gsm8k:test", "math500": "math500"}


def cases(source: str, limit: int | None) -> list[tuple[object, str, bool]]:
    """``(problem, completion, gold-is-its-own)``: each reference solution against its own gold
    answer and, as a wrong answer, against the next problem's."""
    problems = [p for p in load_problems(source, limit=limit) if reference_response(p) is not None]
    found = []
    for index, problem in enumerate(problems):
        response = reference_response(problem)
        found.append((problem, response, True))
        found.append((problems[(index + 1) % len(problems)], response, False))
    return found


def ours(found: list, tokenizer, longest: int) -> tuple[float, list[bool]]:
    """Seconds per episode and the verdicts."""
    with Verifier() as verifier:
        verifier.start()  # its math-verify server starts once per run, as GEM's pool does: not timed
        env = SatoriMathEnv(tokenizer=tokenizer, max_new_tokens=longest + 1, max_prompt_tokens=4096, verifier=verifier)
        ids = [
            tokenizer.encode(response, add_special_tokens=False) + [tokenizer.eos_token_id] for _, response, _ in found
        ]
        verdicts = []
        start = time.perf_counter()
        for (problem, _, _), completion in zip(found, ids):
            env.reset(options={"problem": problem})
            *_, info = env.step_tokens(completion)
            verdicts.append(bool(info["correct"]))
        seconds = time.perf_counter() - start
        env.close()
    return seconds / len(found), verdicts


def gem(found: list) -> tuple[float, list[bool]]:
    """GEM's MathEnv with its defaults on the same cases."""
    import logging

    from datasets import Dataset
    from gem.envs.math_env import MathEnv

    data = Dataset.from_dict({"problem": [p.question for p, _, _ in found], "answer": [p.answer for p, _, _ in found]})
    env = MathEnv(dataset=data, eval=True)
    logging.getLogger().setLevel(logging.WARNING)  # GEM logs every reset(idx=...) at INFO
    verdicts = []
    start = time.perf_counter()
    for index, (_, response, _) in enumerate(found):
        env.reset(idx=index)
        *_, info = env.step(response)
        verdicts.append(bool(info["correct"]))
    seconds = time.perf_counter() - start
    env.close()
    return seconds / len(found), verdicts


def fast_path_disagreements(found: list) -> tuple[int, list[tuple[str, str]]]:
    """Cases the in-process fast path decides, and those where math-verify (called as the
    verifier's workers call it) decides otherwise."""
    import logging

    from math_verify import LatexExtractionConfig, parse, verify

    logging.disable(logging.CRITICAL)
    config = [LatexExtractionConfig(boxed_match_priority=0)]
    decided, wrong = 0, []
    for problem, response, _ in found:
        predicted = extract_answer(response)
        fast = None if predicted is None else fast_verdict(problem.answer, predicted)
        if fast is None:
            continue
        decided += 1
        gold, answer = (parse(f"\\boxed{{{a}}}", extraction_config=config) for a in (problem.answer, predicted))
        if bool(gold and answer and verify(gold, answer)) is not fast:
            wrong.append((problem.answer, predicted))
    return decided, wrong


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="problems per set (default: all)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--agreement", action="store_true", help="also check the fast path against math-verify")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if importlib.util.find_spec("gem") is None:
        print("the baseline needs GEM: pip install gem-llm (or the bench extra)", file=sys.stderr)
        raise SystemExit(2)
    print(f"machine: {machine()}")
    tokenizer = default_tokenizer()
    rows = []
    for name, source in SETS.items():
        found = cases(source, args.limit)
        longest = max(len(tokenizer.encode(response, add_special_tokens=False)) for _, response, _ in found)
        timings, baseline = [], []
        for _ in range(args.repeats):
            seconds, verdicts = ours(found, tokenizer, longest)
            timings.append(seconds)
            gem_seconds, gem_verdicts = gem(found)
            baseline.append(gem_seconds)
        right = sum(v is own for v, (_, _, own) in zip(verdicts, found))
        gem_right = sum(v is own for v, (_, _, own) in zip(gem_verdicts, found))
        print(
            f"{name}: {len(found)} episodes | ours {1e3 * statistics.median(timings):.3f} ms "
            f"(verdicts as labelled {right}) | GEM {1e3 * statistics.median(baseline):.3f} ms "
            f"(as labelled {gem_right}) | verdicts differ on {sum(a != b for a, b in zip(verdicts, gem_verdicts))}"
        )
        if args.agreement:
            decided, wrong = fast_path_disagreements(found)
            print(f"  fast path decided {decided} of {len(found)}; math-verify disagrees on {len(wrong)}: {wrong[:5]}")
        rows.append(
            Ratio(
                benchmark="episodes",
                measure=f"{name} episode (ms)",
                ours=1e3 * statistics.median(timings),
                baseline=1e3 * statistics.median(baseline),
                baseline_name="GEM MathEnv",
                lower_is_better=True,
                target=5.0 if name == "math500" else None,
            )
        )
    for row in rows:
        print(f"{row.measure}: {row.advantage:.1f}x GEM")
    write_json(rows, args.json)


if __name__ == "__main__":
    main()
