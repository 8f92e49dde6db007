"""Verifier benchmark: satori_env's verifier vs calling math-verify directly, in the same run.

    python benchmarks/verifier.py            # full sets (about 2 minutes on 2 CPU cores)
    python benchmarks/verifier.py --limit 100

Sets: MATH500 and GSM8K-test reference solutions against their own gold answers (positives)
and against the next problem's gold answer (negatives); labelled adversarial cases (formatting
variants, COAT trajectories with several boxes, near misses); hostile inputs (huge powers,
deep nesting, megabyte strings, code injection). See ``verifier_cases.py``.

"math-verify direct" is what a user would write: ``verify(parse(f"${gold}$"), parse(completion))``
with math-verify's defaults (its own 5 s signal-based timeouts), one call at a time in a child
process. A signal cannot interrupt a long C-level computation, so the harness kills a direct
call after ``--direct-cap`` seconds and records it as wrong at that latency (a lower bound).

Targets (issue #3): accuracy >= math-verify direct on every set; p99 latency <= direct;
max per-call latency <= 1.5 s. The script exits 1 when one is missed.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import sys
import time
from dataclasses import dataclass

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from agents.speed_report import Ratio, write_json  # noqa: E402
from benchmarks.verifier_cases import CANARY, EQUIVALENT, HOSTILE, NOT_EQUIVALENT, Case, dataset_cases  # noqa: E402
from satori_env._verifier_worker import _WARM_UP as WARM_UP  # noqa: E402
from satori_env.verifier import Verifier  # noqa: E402


def _direct_child(conn) -> None:
    """Child process: math-verify called directly, timing each call itself."""
    import logging

    from math_verify import parse, verify

    logging.disable(logging.CRITICAL)
    for gold, predicted in WARM_UP:  # the same warm-up as the verifier's server
        verify(parse(f"${gold}$"), parse(f"\\boxed{{{predicted}}}"))
    conn.send("ready")
    while True:
        completion, gold = conn.recv()
        start = time.perf_counter()
        try:
            correct = bool(verify(parse(f"${gold}$"), parse(completion)))
        except Exception:  # noqa: BLE001 - a crash is a wrong answer here too
            correct = False
        conn.send((correct, time.perf_counter() - start))


class DirectMathVerify:
    """math-verify direct, one call at a time, killed after ``cap`` seconds."""

    def __init__(self, cap: float) -> None:
        self.cap = cap
        self.context = mp.get_context("spawn")
        self._start()

    def _start(self) -> None:
        self.conn, child_conn = self.context.Pipe()
        self.proc = self.context.Process(target=_direct_child, args=(child_conn,), daemon=True)
        self.proc.start()
        assert self.conn.recv() == "ready"

    def check(self, completion: str, gold: str) -> tuple[bool, float]:
        self.conn.send((completion, gold))
        if self.conn.poll(self.cap):
            return self.conn.recv()
        self.proc.kill()
        self.proc.join()
        self._start()
        return False, self.cap

    def close(self) -> None:
        self.proc.kill()


@dataclass
class Result:
    accuracy: float
    latencies: np.ndarray  # seconds per call


def _run(check, cases: list[Case]) -> Result:
    correct, latencies = [], []
    for case in cases:
        decided, seconds = check(case)
        correct.append(decided == case.expected)
        latencies.append(seconds)
    return Result(float(np.mean(correct)), np.array(latencies))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=None, help="problems per benchmark (default: all)")
    parser.add_argument("--timeout", type=float, default=1.0, help="the verifier's per-call timeout")
    parser.add_argument("--workers", type=int, default=2, help="the verifier's worker processes")
    parser.add_argument("--direct-cap", type=float, default=10.0, help="kill a direct math-verify call after this")
    parser.add_argument("--json", default=None, help="write the ratio rows here (for satori bench)")
    args = parser.parse_args()

    sets: dict[str, list[Case]] = {}
    for name in ("math500", "gsm8k:test"):
        positives, negatives = dataset_cases(name, args.limit)
        sets[f"{name} positives"], sets[f"{name} negatives"] = positives, negatives
    sets["adversarial labelled"] = EQUIVALENT + NOT_EQUIVALENT
    sets["hostile"] = HOSTILE
    if os.path.exists(CANARY):
        os.remove(CANARY)

    def ours(cases: list[Case]) -> Result:
        with Verifier(timeout=args.timeout, workers=args.workers).start() as verifier:  # started outside the timing

            def check(case: Case) -> tuple[bool, float]:
                start = time.perf_counter()
                verdict = verifier.check(case.completion, case.gold)
                return verdict.correct, time.perf_counter() - start

            return _run(check, cases)

    def direct(cases: list[Case]) -> Result:
        baseline = DirectMathVerify(args.direct_cap)
        try:
            return _run(lambda c: baseline.check(c.completion, c.gold), cases)
        finally:
            baseline.close()

    # Each set starts from fresh processes on both sides, so that no set warms the caches of another.
    mine = {name: ours(cases) for name, cases in sets.items()}
    injected = os.path.exists(CANARY)  # checked before math-verify direct sees the same inputs
    results = {name: (mine[name], direct(cases)) for name, cases in sets.items()}

    all_pairs = [(c.completion, c.gold) for name, cases in sets.items() if name != "hostile" for c in cases]
    with Verifier(timeout=args.timeout, workers=args.workers).start() as verifier:
        start = time.perf_counter()
        verifier.verify_batch(all_pairs)
        batch_seconds = time.perf_counter() - start

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; verifier timeout {args.timeout} s, {args.workers} workers"
    )
    header = (
        "| set | cases | accuracy ours | accuracy direct "
        "| p50 ms ours / direct | p99 ms ours / direct | max s ours / direct |"
    )
    print(header)
    print("|---" * 7 + "|")
    failures = []
    everything_ours, everything_direct = [], []
    for name, (mine, theirs) in results.items():
        everything_ours.append(mine.latencies)
        everything_direct.append(theirs.latencies)
        p50 = (np.percentile(mine.latencies, 50) * 1e3, np.percentile(theirs.latencies, 50) * 1e3)
        p99 = (np.percentile(mine.latencies, 99) * 1e3, np.percentile(theirs.latencies, 99) * 1e3)
        print(
            f"| {name} | {len(sets[name])} | {mine.accuracy:.3f} | {theirs.accuracy:.3f} | "
            f"{p50[0]:.2f} / {p50[1]:.2f} | {p99[0]:.1f} / {p99[1]:.1f} | "
            f"{mine.latencies.max():.2f} / {theirs.latencies.max():.2f} |"
        )
        if mine.accuracy < theirs.accuracy:
            failures.append(f"accuracy on {name}: {mine.accuracy:.3f} < {theirs.accuracy:.3f}")
    mine_all, theirs_all = np.concatenate(everything_ours), np.concatenate(everything_direct)
    p99_ratio = np.percentile(mine_all, 99) / np.percentile(theirs_all, 99)
    print(
        f"\nall cases: p99 ratio ours/direct = {p99_ratio:.3f} (target <= 1); "
        f"max latency ours = {mine_all.max():.3f} s (target <= 1.5 s); "
        f"total time ours/direct = {mine_all.sum() / theirs_all.sum():.3f}"
    )
    print(
        f"batch throughput (non-hostile, {len(all_pairs)} pairs, {args.workers} workers): "
        f"{len(all_pairs) / batch_seconds:.0f} checks/s vs direct sequential "
        f"{len(all_pairs) / sum(r[1].latencies.sum() for n, r in results.items() if n != 'hostile'):.0f} checks/s"
    )
    if p99_ratio > 1:
        failures.append(f"p99 ratio {p99_ratio:.3f} > 1")
    if mine_all.max() > 1.5:
        failures.append(f"max latency {mine_all.max():.3f} s > 1.5 s")
    if injected:
        failures.append(f"an injection case created {CANARY}")
    print("targets: " + ("all met" if not failures else "MISSED: " + "; ".join(failures)))
    direct_name = "math-verify direct"
    write_json(
        [
            Ratio(
                "verifier",
                f"p99 latency, ms ({len(mine_all)} checks)",
                np.percentile(mine_all, 99) * 1e3,
                np.percentile(theirs_all, 99) * 1e3,
                direct_name,
                True,
                1.0,
            ),
            Ratio("verifier", "total time of all checks, s", mine_all.sum(), theirs_all.sum(), direct_name, True),
            Ratio(
                "verifier",
                "accuracy on labelled adversarial cases",
                results["adversarial labelled"][0].accuracy,
                results["adversarial labelled"][1].accuracy,
                direct_name,
                False,
                1.0,
            ),
        ],
        args.json,
    )
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
