"""Labelled (completion, gold, expected) cases for the verifier: shared by the benchmark and tests.

* :data:`EQUIVALENT` / :data:`NOT_EQUIVALENT`: formatting variants and near misses, including
  COAT trajectories that box an answer, reflect, and box another (the *last* box counts).
* :data:`HOSTILE`: inputs built to hang or exhaust a checker (huge powers, deep nesting,
  megabyte strings) or to smuggle code; all must come back wrong, within the time limit, and
  nothing may be executed (the injection cases would create :data:`CANARY`).
* :func:`dataset_cases`: positives (a reference solution vs its own gold answer) and negatives
  (the same solution vs the next problem's, different, gold answer) from vendored benchmarks.
"""

from __future__ import annotations

import os
import tempfile
from typing import NamedTuple

from satori_env.tasks import load_problems
from satori_env.tasks.datasets import reference_solution


class Case(NamedTuple):
    completion: str
    gold: str
    expected: bool


EQUIVALENT = [
    Case(r"So $x = \boxed{\frac{1}{2}}$.", "0.5", True),
    Case(r"The answer is $\dfrac{1}{2}$.", r"\frac12", True),
    Case(r"\boxed{50\%}", "50", True),
    Case(r"\boxed{90^\circ}", "90", True),
    Case(r"\boxed{(1,2]}", "(1, 2]", True),
    Case(r"\boxed{\{3, 2, 1\}}", r"\{1,2,3\}", True),
    Case(r"\boxed{\text{Evelyn}}", r"\text{Evelyn}", True),
    Case(r"\boxed{18 \text{ dollars}}", "18", True),
    Case("She pays 18 dollars.\n#### 1,000", "1000", True),
    Case("The answer is $18.", "18", True),
    Case("The answer is 18 dollars.", "18", True),
    Case(r"\boxed{x^2+2x+1}", "(x+1)^2", True),
    Case(r"\boxed{\sqrt{8}}", r"2\sqrt{2}", True),
    Case(r"\boxed{\textbf{(073)}}", "73", True),
    Case(r"\fbox{12}", "12", True),
    Case(r"<|continue|>3+4=7 so \boxed{8}<|reflect|>3+4 is 7, not 8.<|explore|>\boxed{7}", "7", True),
    Case(r"\boxed{2} is wrong <|reflect|> the answer is \boxed{\frac{3}{4}}", "0.75", True),
]

NOT_EQUIVALENT = [
    Case(r"<|continue|>\boxed{7}<|reflect|>recheck<|explore|>\boxed{8}", "7", False),
    Case(r"\boxed{0.33}", r"\frac{1}{3}", False),
    Case(r"\boxed{3\pi}", "3", False),
    Case("The answer is 3 pi.", "3", False),
    Case(r"\boxed{(1,2)}", "(1, 2]", False),
    Case(r"\boxed{x^2+1}", "(x+1)^2", False),
    Case(r"\boxed{-18}", "18", False),
    Case("no final answer in this text: 18", "18", False),
    Case(r"\boxed{19}", "18", False),
    Case(r"\boxed{}", "0", False),
]

CANARY = os.path.join(tempfile.gettempdir(), "satori_verifier_canary")

HOSTILE = [
    Case(r"\boxed{2^{10^{10^{10}}}}", "5", False),
    Case(r"\boxed{9^{9^{9^{9}}}}", "1", False),
    Case(r"\boxed{(10^{10^{10}})!}", "1", False),
    Case(r"\boxed{" + r"\frac{1}{" * 3000 + "2" + "}" * 3000 + "}", "1", False),
    Case(r"\boxed{" + "1" * 1_000_000 + "}", "1", False),
    Case("x" * 1_000_000, "1", False),
    Case(r"\boxed{" * 100_000, "1", False),
    Case("{" * 500_000 + "}" * 500_000 + r"\boxed{" + "(" * 50_000 + "}", "1", False),
    Case(r"The answer is " + "9**" * 10_000 + "9", "1", False),
    Case(rf"\boxed{{__import__('os').system('touch {CANARY}')}}", "0", False),
    Case(f"The answer is __import__('os').system('touch {CANARY}')", "0", False),
    Case(f"#### exec(\"open('{CANARY}', 'w')\")", "2", False),
    Case(r"#### eval('1+1')", "2", False),
]


def dataset_cases(name: str, limit: int | None = None) -> tuple[list[Case], list[Case]]:
    """(positives, negatives) built from a benchmark's own reference solutions.

    A negative pairs solution i with the gold answer of problem i+1, skipped where the two gold
    answers are the same string.
    """
    problems = [p for p in load_problems(name, limit=limit) if reference_solution(p) is not None]
    positives = [Case(reference_solution(p), p.answer, True) for p in problems]
    negatives = [
        Case(reference_solution(p), q.answer, False)
        for p, q in zip(problems, problems[1:] + problems[:1])
        if "".join(p.answer.split()) != "".join(q.answer.split())
    ]
    return positives, negatives
