"""COAT demonstration synthesis: the offline analogue of Satori's generator -> critic -> reward model.

* **Generator**: a step-by-step solution from the problem's own structure (procedural
  arithmetic: its recorded steps; GSM8K: its solution lines and their calculator annotations
  ``<<48/2=24>>``).
* **Error injector**: a plausible slip: one column fact of a worked step off by one
  (procedural problems, see :mod:`satori_env.tasks.columns`), or one calculator result off a
  little (GSM8K).
* **Critic**: checks that write the ``<|reflect|>`` step finding the slip (re-deriving the
  column facts until the wrong one) or confirming a right step, and the ``<|explore|>`` step
  redoing it; correct steps open with ``<|continue|>``.
* **Reward model**: the verifier; a demonstration whose final answer does not verify is dropped.

Kinds (mixed by configurable weights):

* ``clean``: ``<|continue|>58+64: 8+4=12, 5+6+1=12, so 58+64=122<|continue|>The answer is \\boxed{122}.``
* ``confirm``: a ``<|reflect|>`` that checks a step (or the final answer) and finds it right;
* ``fix``: a wrong step, a ``<|reflect|>`` that finds it, an ``<|explore|>`` that redoes it;
* ``explore``: the slip runs through to a wrong boxed answer; ``<|reflect|>`` checks the steps,
  finds the wrong one, and ``<|explore|>`` recomputes from there to the right answer (the
  pattern a restart state "wrong response + <|reflect|>" asks for). Procedural problems only;
  GSM8K demonstrations fall back to ``fix``.

Each demonstration is a list of ``(text, trained)`` segments: the injected wrong step is not
trained on (``trained=False``), so that format tuning never teaches the slip itself.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from satori_env import Problem, load_problems
from satori_env.atomic import atomic_write
from satori_env.coat import CONTINUE, EXPLORE, REFLECT
from satori_env.tasks import ArithmeticTasks
from satori_env.tasks.columns import Work, work
from satori_env.verifier import Verifier

__all__ = [
    "DEFAULT_MIX",
    "KINDS",
    "Demonstration",
    "SynthesisReport",
    "arithmetic_demo",
    "gsm8k_demo",
    "injected_prefix",
    "plain_chain_of_thought",
    "read_demos",
    "synthesize",
    "write_demos",
]

KINDS = ("clean", "confirm", "fix", "explore")
DEFAULT_MIX: dict[str, float] = {"clean": 0.5, "confirm": 0.15, "fix": 0.2, "explore": 0.15}
_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a // b}


@dataclass(frozen=True)
class Demonstration:
    """A COAT trajectory for one problem, as ``(text, trained)`` segments."""

    problem: Problem
    kind: str
    segments: tuple[tuple[str, bool], ...]

    @property
    def text(self) -> str:
        """The whole response."""
        return "".join(text for text, _ in self.segments)

    def to_json(self) -> dict[str, Any]:
        return {"problem": self.problem.to_dict(), "kind": self.kind, "segments": [list(s) for s in self.segments]}

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> Demonstration:
        return cls(Problem.from_dict(row["problem"]), row["kind"], tuple((str(t), bool(k)) for t, k in row["segments"]))


# -- the critic ----------------------------------------------------------------------------------


def check(step: Work) -> tuple[str, bool]:
    """The critic's check of a worked step: it re-derives the column facts in order and stops
    at the first one that was written wrong. Returns (text, whether the step is right)::

        Check: 8+4=12, 5+6+1=12, matches.
        Check: 8+4=12, not 13. Wrong.
    """
    if not step.columns:  # written in one go: recompute it
        right = _OPS[step.op](step.a, step.b)
        head = f"Check: {step.a}{step.op}{step.b}={right}"
        return (f"{head}, matches.", True) if right == step.result else (f"{head}, not {step.result}. Wrong.", False)
    facts = []
    for column in step.columns:
        facts.append(column.right)
        if not column.ok:
            written = column.written.split("=", 1)[1]
            return f"Check: {', '.join(facts)}, not {written}. Wrong.", False
    return f"Check: {', '.join(facts)}, matches.", True


def _answer(value: Any) -> str:
    return f"The answer is \\boxed{{{value}}}."


# -- procedural arithmetic -----------------------------------------------------------------------


def _slip(step: Work, rng: random.Random) -> Work:
    """The same step with one column (or a result written in one go) off by one."""
    delta = rng.choice((-1, 1))
    column = rng.randrange(len(step.columns)) if step.columns else 0
    return work(step.a, step.op, step.b, slip=(column, delta))


def _chain(steps: Sequence[dict], start: int) -> list[Work]:
    """Work the problem's operations again from a (possibly wrong) start value."""
    chain, value = [], start
    for s in steps:
        step = work(value, s["op"], s["b"])
        chain.append(step)
        value = step.result
    return chain


def arithmetic_demo(problem: Problem, kind: str, rng: random.Random) -> Demonstration:
    """A demonstration of ``kind`` for a procedural arithmetic problem."""
    steps = problem.meta["steps"]
    chain = [work(s["a"], s["op"], s["b"]) for s in steps]
    right = [(f"{CONTINUE}{w.text}", True) for w in chain]
    final = (f"{CONTINUE}{_answer(problem.answer)}", True)
    k = rng.randrange(len(chain))
    if kind == "clean":
        segments = [*right, final]
    elif kind == "confirm":
        if rng.random() < 0.5:  # check a step on the way
            segments = [*right[: k + 1], (f"{REFLECT}{check(chain[k])[0]}", True), *right[k + 1 :], final]
        else:  # check the last step after answering, and answer again
            segments = [*right, final, (f"{REFLECT}{check(chain[-1])[0]} {_answer(problem.answer)}", True)]
    elif kind == "fix":
        slipped = _slip(chain[k], rng)
        segments = [
            *right[:k],
            (f"{CONTINUE}{slipped.text}", False),
            (f"{REFLECT}{check(slipped)[0]}", True),
            (f"{EXPLORE}{chain[k].text}", True),
            *right[k + 1 :],
            final,
        ]
    elif kind == "explore":
        slipped = _explore_slip(chain[k], steps[k + 1 :], rng)
        if slipped is None:  # the slip would make later steps impossible: fix it on the spot instead
            return arithmetic_demo(problem, "fix", rng)
        wrong_chain = _chain(steps[k + 1 :], slipped.result)
        wrong_answer = wrong_chain[-1].result if wrong_chain else slipped.result
        checks = " ".join([*(check(w)[0] for w in chain[:k]), check(slipped)[0]])
        segments = [
            *right[:k],
            (f"{CONTINUE}{slipped.text}", False),
            *[(f"{CONTINUE}{w.text}", True) for w in wrong_chain],
            (f"{CONTINUE}{_answer(wrong_answer)}", True),
            (f"{REFLECT}{checks}", True),
            (f"{EXPLORE}{chain[k].text}", True),
            *right[k + 1 :],
            final,
        ]
    else:
        raise ValueError(f"unknown demonstration kind {kind!r}; valid kinds: {list(KINDS)}")
    return Demonstration(problem, kind, tuple(segments))


def _explore_slip(step: Work, later: Sequence[dict], rng: random.Random) -> Work | None:
    """A slip whose wrong result the later steps can still work with (no negative difference,
    no inexact division), or None when no small slip allows that."""
    for _ in range(20):
        slipped = _slip(step, rng)
        value = slipped.result
        for s in later:
            if (s["op"] == "/" and value % s["b"]) or (s["op"] == "-" and value < s["b"]):
                break
            value = _OPS[s["op"]](value, s["b"])
        else:
            return slipped
    return None


def injected_prefix(problem: Problem, rng: random.Random, at_end: bool = False) -> str:
    """A response prefix with a slip, ending in ``<|reflect|>``: after the wrong step, or (with
    ``at_end``) after a whole solution built on it (unless the problem's later divisions leave
    no slip they can carry: then after the wrong step too). What a model that learned to reflect
    should be able to repair; used to measure self-correction."""
    demo = arithmetic_demo(problem, "explore" if at_end else "fix", rng)
    text = ""
    for segment, _ in demo.segments:
        if segment.startswith(REFLECT):
            return text + REFLECT
        text += segment
    raise AssertionError("a fix or explore demonstration always reflects")


# -- GSM8K ---------------------------------------------------------------------------------------

_CALC = re.compile(r"<<([^<>=]+)=([^<>]+)>>")


def gsm8k_demo(problem: Problem, kind: str, rng: random.Random) -> Demonstration:
    """A demonstration from a GSM8K solution: one step per line, checked by its calculator notes."""
    lines = [line for line in problem.meta["solution"].split("\n") if line.strip() and not line.startswith("####")]
    shown = [_CALC.sub("", line).strip() for line in lines]
    right = [(f"{CONTINUE}{line}", True) for line in shown]
    final = (f"{CONTINUE}{_answer(problem.answer)}", True)
    annotated = [i for i, line in enumerate(lines) if _integer_note(line)]
    if kind == "clean" or not annotated:
        return Demonstration(problem, "clean", (*right, final))
    k = rng.choice(annotated)
    expression, value = _integer_note(lines[k])
    if kind == "confirm":
        segments = [*right[: k + 1], (f"{REFLECT}Check: {expression}={value}, matches.", True), *right[k + 1 :], final]
        return Demonstration(problem, "confirm", tuple(segments))
    if kind not in ("fix", "explore"):
        raise ValueError(f"unknown demonstration kind {kind!r}; valid kinds: {list(KINDS)}")
    wrong = value + rng.choice((-10, -2, -1, 1, 2, 10))
    wrong = wrong if wrong >= 0 else value + 1
    slipped = _CALC.sub("", lines[k].replace(f">>{value}", f">>{wrong}", 1)).strip()
    segments = [
        *right[:k],
        (f"{CONTINUE}{slipped}", False),
        (f"{REFLECT}Check: {expression}={value}, not {wrong}. Wrong.", True),
        (f"{EXPLORE}{shown[k]}", True),
        *right[k + 1 :],
        final,
    ]
    return Demonstration(problem, "fix", tuple(segments))


def _integer_note(line: str) -> tuple[str, int] | None:
    """(expression, value) of the line's first calculator note, when its value is a whole
    number that the line then shows right after the note."""
    match = _CALC.search(line)
    if match is None or not re.fullmatch(r"\d+", match.group(2).strip()):
        return None
    value = int(match.group(2))
    return (match.group(1), value) if line[match.end() :].startswith(str(value)) else None


# -- the pipeline --------------------------------------------------------------------------------


@dataclass
class SynthesisReport:
    """What :func:`synthesize` made: kept per source and kind, and how many the verifier dropped."""

    kept: Counter = field(default_factory=Counter)
    dropped: int = 0

    def summary(self) -> str:
        kinds = Counter()
        for (_, kind), n in self.kept.items():
            kinds[kind] += n
        return (
            f"kept {sum(self.kept.values())} ({dict(kinds)}), dropped {self.dropped} whose final answer did not verify"
        )


def _check_mix(mix: Mapping[str, float]) -> list[float]:
    unknown = set(mix) - set(KINDS)
    if unknown or not mix or min(mix.values()) < 0 or sum(mix.values()) <= 0:
        raise ValueError(
            f"mix must give non-negative weights (positive sum) to kinds among {list(KINDS)}, got {dict(mix)}"
        )
    return [float(mix.get(kind, 0.0)) for kind in KINDS]


def synthesize(
    n: int,
    sources: Mapping[str, float] | None = None,
    mix: Mapping[str, float] | None = None,
    levels: Sequence[int] = (1, 2, 3),
    seed: int = 0,
    verifier: Verifier | None = None,
    cot: bool = False,
) -> tuple[list[Demonstration], SynthesisReport]:
    """``n`` demonstrations (fewer if the verifier drops some).

    Args:
        sources: weights of ``"arith"`` (procedural, train split, ``levels``) and ``"gsm8k"``
            (the GSM8K training set); default all arithmetic.
        mix: weights of the kinds (default :data:`DEFAULT_MIX`).
        levels: arithmetic levels.
        seed: everything is deterministic under it.
        verifier: checks each final answer (default: a private pool).
        cot: plain chain of thought instead (the baseline without meta-actions): the same
            problems, each a clean solution whose steps are separated by newlines.
    """
    sources = dict(sources or {"arith": 1.0})
    if set(sources) - {"arith", "gsm8k"} or min(sources.values()) < 0 or sum(sources.values()) <= 0:
        raise ValueError(f"sources must weight 'arith' and/or 'gsm8k', got {sources}")
    weights = _check_mix(mix or DEFAULT_MIX)
    rng = random.Random(seed)
    arithmetic = ArithmeticTasks(levels, split="train", seed=seed)
    gsm8k = load_problems("gsm8k:train") if sources.get("gsm8k", 0) > 0 else []
    names, source_weights = list(sources), list(sources.values())
    demos = []
    for _ in range(n):
        kind = rng.choices(KINDS, weights)[0]
        if rng.choices(names, source_weights)[0] == "gsm8k":
            demos.append(gsm8k_demo(rng.choice(gsm8k), kind, rng))
        else:
            demos.append(arithmetic_demo(arithmetic.sample(rng), kind, rng))
    if cot:
        demos = [plain_chain_of_thought(demo) for demo in demos]
    own = verifier is None
    verifier = verifier or Verifier()
    try:
        verdicts = verifier.verify_batch([(d.text, d.problem.answer) for d in demos])
    finally:
        if own:
            verifier.close()
    report = SynthesisReport()
    kept = []
    for demo, ok in zip(demos, verdicts):
        if ok:
            kept.append(demo)
            report.kept[(demo.problem.source, demo.kind)] += 1
        else:
            report.dropped += 1
    return kept, report


def plain_chain_of_thought(demo: Demonstration) -> Demonstration:
    """The clean solution of ``demo``'s problem with its steps separated by newlines: no
    meta-action, no reflection."""
    make = gsm8k_demo if demo.problem.source.startswith("gsm8k") else arithmetic_demo
    clean = make(demo.problem, "clean", random.Random(0))
    segments = tuple((text.replace(CONTINUE, "\n"), trained) for text, trained in clean.segments)
    return Demonstration(demo.problem, "cot", segments)


def write_demos(demos: Iterable[Demonstration], path: str | Path) -> None:
    """JSON lines, one demonstration a line, written atomically."""
    body = "".join(json.dumps(d.to_json()) + "\n" for d in demos)
    atomic_write(path, body.encode())


def read_demos(path: str | Path) -> list[Demonstration]:
    """Demonstrations written by :func:`write_demos` (or by hand, in the same format)."""
    demos = []
    with open(path) as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                try:
                    demos.append(Demonstration.from_json(json.loads(line)))
                except (KeyError, TypeError, ValueError) as error:
                    raise ValueError(
                        f"{path}:{number}: not a demonstration ({type(error).__name__}: {error})"
                    ) from None
    return demos
