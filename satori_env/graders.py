"""Answer rules of the out-of-domain benchmarks of Satori's Table 2, where the gold answer is not
a math expression: a label (FOLIO, StrategyQA), a Python value (CRUXEval-O), a choice letter
(MMLU-Pro) or a table answer (TableBench).

Every rule reads the model's final answer from the last ``\\boxed{}`` (as Satori's prompt asks;
:func:`satori_env.answers.extract_answer`), compares it without executing anything, and returns
the same :class:`~satori_env.verifier.Verdict` the math verifier does. A problem names its rule
in ``meta["grader"]``; :func:`judge` sends every other problem to the math verifier, so one env
mixes both. The rules follow each benchmark's label set and metric (the README of the vendored
data gives the sources):

* ``folio``: True / False / Uncertain; ``true``, ``yes``, ``proved`` mean True, ``false``,
  ``no``, ``disproved`` False, ``uncertain``, ``unknown`` Uncertain (whole words, not prefixes).
* ``strategyqa``: True / False; yes and no count as True and False.
* ``cruxeval``: the value of the function's output: both answers read with
  :func:`ast.literal_eval` and compared as values; a string output also matches its unquoted
  text (Satori's checker accepted one, paper Fig. 15); answers that are no literal compare as
  stripped text.
* ``mmlu_pro``: the choice letter (``B``, ``(B)``, ``B. ...``), or MMLU-Pro's own pattern
  "answer is (B)" when nothing is boxed.
* ``tablebench``: TableBench's exact match: comma-separated items compared one by one, a number
  rounded to the reference's decimals, percentages as fractions, text exactly after stripping;
  correct when every item matches.
"""

from __future__ import annotations

import ast
import re
import time
from collections.abc import Callable, Sequence
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING

from satori_env.answers import extract_answer

if TYPE_CHECKING:
    from satori_env.tasks.problem import Problem
    from satori_env.verifier import Verdict, Verifier

__all__ = ["GRADERS", "grade", "judge"]

_LITERAL_CHARS = 20_000  # longer answers are compared as text (literal_eval's cost and recursion)
_TEXT_WRAPPER = re.compile(r"^\\(?:text|textbf|mathrm|textit|texttt)\s*\{(.*)\}$", re.DOTALL)


def _clean(answer: str) -> str:
    """A boxed answer without LaTeX text wrappers, math delimiters, quotes of a label or a final
    period: ``\\text{True}.`` -> ``True``."""
    return _unwrap(answer).strip("$ ").rstrip(".").strip()


_FOLIO = {
    "true": "True", "yes": "True", "proved": "True",
    "false": "False", "no": "False", "disproved": "False",
    "uncertain": "Uncertain", "unknown": "Uncertain",
}  # fmt: skip


def _label(answer: str, labels: dict[str, str]) -> str | None:
    return labels.get(_clean(answer).strip("\"'").lower())


def _folio(answer: str, gold: str) -> bool:
    return _label(answer, _FOLIO) == gold


def _strategyqa(answer: str, gold: str) -> bool:
    return _label(answer, {k: v for k, v in _FOLIO.items() if v != "Uncertain"}) == gold


def _literal(text: str) -> tuple[bool, object]:
    if len(text) > _LITERAL_CHARS:
        return False, None
    try:
        return True, ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def _unwrap(answer: str) -> str:
    answer = answer.strip()
    while (match := _TEXT_WRAPPER.match(answer)) is not None:
        answer = match.group(1).strip()
    return answer


def _cruxeval(answer: str, gold: str) -> bool:
    gold_parsed, gold_value = _literal(gold)
    answer = _unwrap(answer).replace("\\_", "_")
    for candidate in dict.fromkeys((answer, answer.rstrip(".").strip())):  # a sentence's period, or the value's
        if not gold_parsed:
            if candidate == gold.strip():
                return True
            continue
        parsed, value = _literal(candidate)
        if (parsed and value == gold_value) or (isinstance(gold_value, str) and candidate == gold_value):
            return True  # equal values, as CRUXEval's assert f(input) == prediction; or an unquoted string
    return False


_CHOICE = re.compile(r"^\(?([A-J])\)?(?:[.:)]|\s|$)")
_ANSWER_IS = re.compile(r"answer is \(?([A-J])\)?")


def _mmlu_pro(answer: str, gold: str) -> bool:
    match = _CHOICE.match(_clean(answer))
    return match is not None and match.group(1) == gold


def _number(item: str) -> tuple[Decimal, int] | None:
    """A table item as (value, decimals of the text); a percentage as a fraction."""
    text = item.strip().replace("$", "")
    percent = text.endswith("%")
    try:
        value = Decimal(text.rstrip("%").strip())
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    decimals = max(-value.as_tuple().exponent, 0)
    return (value / 100, decimals + 2) if percent else (value, decimals)


def _table_item(predicted: str, reference: str) -> bool:
    gold, guess = _number(reference), _number(predicted)
    if gold is not None and guess is not None:
        places = Decimal(1).scaleb(-gold[1])
        return guess[0].quantize(places, ROUND_HALF_UP) == gold[0].quantize(places, ROUND_HALF_UP)
    return predicted.strip() == reference.strip()


def _tablebench(answer: str, gold: str) -> bool:
    predicted, reference = _clean(answer).split(","), _clean(gold).split(",")
    return len(predicted) == len(reference) and all(map(_table_item, predicted, reference))


GRADERS: dict[str, Callable[[str, str], bool]] = {
    "folio": _folio,
    "strategyqa": _strategyqa,
    "cruxeval": _cruxeval,
    "mmlu_pro": _mmlu_pro,
    "tablebench": _tablebench,
}
"""Rule name (a problem's ``meta["grader"]``) -> ``(final answer, gold) -> correct``."""


def grade(completion: str, problem: Problem) -> Verdict:
    """The verdict of ``problem``'s own rule (``meta["grader"]``, one of :data:`GRADERS`) on
    ``completion``."""
    from satori_env.verifier import Verdict

    started = time.monotonic()
    rule = problem.meta["grader"]
    if rule not in GRADERS:
        raise ValueError(f"problem {problem.id} names an unknown grader {rule!r}; valid graders: {sorted(GRADERS)}")
    answer = extract_answer(completion)
    if answer is None and rule == "mmlu_pro" and (match := _ANSWER_IS.search(completion)) is not None:
        answer = match.group(1)
    if answer is None:
        return Verdict(False, None, "no_answer", time.monotonic() - started)
    return Verdict(GRADERS[rule](answer, problem.answer), answer, "ok", time.monotonic() - started)


def judge(verifier: Verifier, completions: Sequence[str], problems: Sequence[Problem]) -> list[Verdict]:
    """The verdict on each completion of its problem: by the problem's own rule where it names
    one (``meta["grader"]``), otherwise by ``verifier`` (all of those in one batch: its
    ``check_problems`` where it has one, as a :class:`~satori_env.verifier.Verifier` does, else
    its ``check_batch`` of (completion, gold answer) pairs)."""
    verdicts: list[Verdict | None] = [None] * len(problems)
    math = [i for i, problem in enumerate(problems) if "grader" not in problem.meta]
    for i, problem in enumerate(problems):
        if "grader" in problem.meta:
            verdicts[i] = grade(completions[i], problem)
    if math:
        texts, golds = [completions[i] for i in math], [problems[i] for i in math]
        check_problems = getattr(verifier, "check_problems", None)  # a Verifier has it; any checker has check_batch
        found = (
            check_problems(texts, golds)
            if check_problems
            else verifier.check_batch(zip(texts, (p.answer for p in golds)))
        )
        for i, verdict in zip(math, found):
            verdicts[i] = verdict
    return verdicts  # type: ignore[return-value]
