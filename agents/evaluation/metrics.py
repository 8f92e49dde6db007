"""The numbers a math evaluation reports, from per-sample verdicts.

* :func:`pass_at_k`: the unbiased estimator of Chen et al. (2021): the chance that at least one
  of ``k`` samples drawn without replacement from ``n`` (``c`` of them right) is right.
* :func:`majority_vote`: maj@k (self-consistency): the most common final answer among the
  samples wins, answers compared by mathematical equivalence, not by string.
* :func:`answer_changes`: what each ``<|reflect|>`` / ``<|explore|>`` did to the answer: the
  answer written before the meta-action against the next one written after it.
* :func:`change_outcomes`: the same, judged: did the answer go from wrong to right, right to
  wrong, keep its correctness, or was there no answer before the meta-action?
* :func:`mcnemar`: whether two policies differ on the same problems (paired verdicts).
* :func:`spread`: a figure over seeds as "mean (min to max)", for report tables.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from math import comb, sqrt

from satori_env.answers import extract_answer
from satori_env.coat import META_ACTIONS, split_steps
from satori_env.graders import judge
from satori_env.tasks.problem import Problem
from satori_env.verifier import Verifier

__all__ = [
    "AnswerChange",
    "McNemar",
    "answer_changes",
    "change_outcomes",
    "majority_vote",
    "mcnemar",
    "pass_at_k",
    "spread",
]


def pass_at_k(n: int, c: int, k: int) -> float:
    """``1 - C(n - c, k) / C(n, k)``: pass@k estimated from ``n`` samples of which ``c`` are right.

    >>> pass_at_k(4, 1, 1), pass_at_k(4, 1, 4), pass_at_k(4, 0, 2)
    (0.25, 1.0, 0.0)
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    return 1.0 - comb(n - c, k) / comb(n, k)


@dataclass(frozen=True)
class McNemar:
    """Two policies' verdicts on the same problems: ``gained`` went from wrong (first) to right
    (second), ``lost`` the other way; ``z`` is McNemar's statistic (``|z| > 1.96``: the
    difference is outside the paired noise at 5 %)."""

    gained: int
    lost: int
    n: int

    @property
    def z(self) -> float:
        changed = self.gained + self.lost
        return (self.gained - self.lost) / sqrt(changed) if changed else 0.0

    @property
    def difference(self) -> float:
        """The second's accuracy minus the first's."""
        return (self.gained - self.lost) / self.n if self.n else 0.0


def spread(values: Sequence[float], sign: bool = False) -> str:
    """``values`` (one per seed) as "mean (min to max)", one decimal (just the value when there
    is one; ``sign``: with + on positive numbers).

    >>> spread([60.9, 62.0, 61.1]), spread([2.2], sign=True)
    ('61.3 (60.9 to 62.0)', '+2.2')
    """
    fmt = "{:+.1f}" if sign else "{:.1f}"
    mean = fmt.format(sum(values) / len(values))
    return mean if len(values) == 1 else f"{mean} ({fmt.format(min(values))} to {fmt.format(max(values))})"


def mcnemar(first: Sequence[bool], second: Sequence[bool]) -> McNemar:
    """Paired comparison of verdicts on the same problems, in the same order.

    >>> result = mcnemar([False, False, True, True, False], [True, True, True, False, False])
    >>> result.gained, result.lost, round(result.z, 3), result.difference
    (2, 1, 0.577, 0.2)
    """
    if len(first) != len(second):
        raise ValueError(f"mcnemar needs verdicts on the same problems: got {len(first)} and {len(second)}")
    gained = sum(1 for a, b in zip(first, second) if not a and b)
    lost = sum(1 for a, b in zip(first, second) if a and not b)
    return McNemar(gained, lost, len(first))


def majority_vote(answers: Sequence[str | None], correct: Sequence[bool], same: Callable[[str, str], bool]) -> bool:
    """Whether the majority answer of a problem's samples is right.

    Samples without an answer do not vote. Answers are grouped with ``same`` (an equivalence
    check, e.g. the verifier's); the largest group wins, ties going to the group answered
    first; the group is right when its first sample is (its members are equivalent).
    """
    if len(answers) != len(correct):
        raise ValueError(f"majority_vote: {len(answers)} answers but {len(correct)} verdicts")
    groups: list[list[int]] = []  # sample indices, grouped by equivalent answers
    for index, answer in enumerate(answers):
        if answer is None:
            continue
        for group in groups:
            if same(answers[group[0]], answer):
                group.append(index)
                break
        else:
            groups.append([index])
    if not groups:
        return False
    winner = max(groups, key=len)  # max keeps the first of equal-sized groups
    return bool(correct[winner[0]])


@dataclass(frozen=True)
class AnswerChange:
    """One ``<|reflect|>`` or ``<|explore|>`` of a completion and the answers around it.

    Attributes:
        action: "reflect" or "explore".
        before: the last answer written before the meta-action (None: none yet).
        after: the first answer written after it (None: none; the answer stands as ``before``).
    """

    action: str
    before: str | None
    after: str | None


def answer_changes(completion: str) -> list[AnswerChange]:
    """Every reflect/explore meta-action of ``completion`` with the answers around it.

    >>> answer_changes(r"<|continue|>so \\boxed{4}<|reflect|>2+3 is not 4.<|explore|>2+3=5, \\boxed{5}")
    [AnswerChange(action='reflect', before='4', after='5'), AnswerChange(action='explore', before='4', after='5')]
    """
    steps = split_steps(completion)
    changes, before = [], ""
    for index, step in enumerate(steps):
        if step.action in ("reflect", "explore"):
            after = next(
                (answer for later in steps[index:] if (answer := extract_answer(later.text)) is not None), None
            )
            changes.append(AnswerChange(step.action, extract_answer(before), after))
        before += (META_ACTIONS[step.action] if step.action else "") + step.text
    return changes


def change_outcomes(records: Sequence[dict], verifier: Verifier) -> list[list[tuple[str, str]]]:
    """For each record (``completion``, ``gold``, and ``grader`` where the problem has its own
    answer rule, see :mod:`satori_env.graders`), every reflect/explore of :func:`answer_changes`
    as ``(action, outcome)``: ``wrong_to_right``, ``right_to_wrong``, ``kept`` (the same
    correctness, or no answer after it) or ``no_answer_before``. Each distinct (answer, gold)
    pair is checked once."""
    changes = [answer_changes(record["completion"]) for record in records]
    keys = {
        (answer, record["gold"], record.get("grader"))
        for record, found in zip(records, changes)
        for change in found
        for answer in (change.before, change.after)
        if answer is not None
    }
    keys = sorted(keys, key=str)
    problems = [
        Problem("change", "", gold, "answer change", None, {"grader": rule} if rule else {}) for _, gold, rule in keys
    ]
    checked = judge(verifier, [f"\\boxed{{{answer}}}" for answer, _, _ in keys], problems)  # each by its own rule
    verdicts = {key: verdict.correct for key, verdict in zip(keys, checked)}
    outcomes = []
    for record, found in zip(records, changes):
        judged = []
        for change in found:
            if change.before is None:
                judged.append((change.action, "no_answer_before"))
                continue
            rule = record.get("grader")
            before = verdicts[(change.before, record["gold"], rule)]
            after = before if change.after is None else verdicts[(change.after, record["gold"], rule)]
            outcome = "wrong_to_right" if after and not before else "right_to_wrong" if before and not after else "kept"
            judged.append((change.action, outcome))
        outcomes.append(judged)
    return outcomes
