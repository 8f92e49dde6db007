"""verify / verify_batch: equivalence decided like math-verify, plain numbers exactly."""

import pytest

from benchmarks.verifier_cases import EQUIVALENT, NOT_EQUIVALENT
from satori_env import Verdict, Verifier, verify, verify_batch

LABELLED = EQUIVALENT + NOT_EQUIVALENT


@pytest.mark.parametrize("case", LABELLED, ids=[f"{c.gold}<-{c.completion[:30]}" for c in LABELLED])
def test_labelled_cases(verifier, case):
    assert verifier.verify(case.completion, case.gold) is case.expected


SAME_VALUE = [
    ("\\frac{1}{2}", "0.5"),
    ("\\frac{3}{4}", "\\dfrac{3}{4}"),
    ("2\\sqrt{2}", "\\sqrt{8}"),
    ("(x+1)^2", "x^2+2x+1"),
    ("\\{1, 2, 3\\}", "\\{3, 2, 1\\}"),
    ("[0, 1)", "[0,1)"),
    ("1000", "1,000"),
    ("\\pi/2", "\\frac{\\pi}{2}"),
    ("10\\%", "10"),
    ("45^\\circ", "45"),
]


@pytest.mark.parametrize("a, b", SAME_VALUE)
def test_equivalence_holds_both_ways(verifier, a, b):
    assert verifier.verify(f"\\boxed{{{a}}}", b)
    assert verifier.verify(f"\\boxed{{{b}}}", a)


DIFFERENT_VALUE = [
    ("\\frac{1}{2}", "0.51"),
    ("[0, 1)", "[0, 1]"),
    ("x+1", "x-1"),
    ("\\{1,2\\}", "\\{1,3\\}"),
    ("12", "21"),
]


@pytest.mark.parametrize("a, b", DIFFERENT_VALUE)
def test_inequivalence_holds_both_ways(verifier, a, b):
    assert not verifier.verify(f"\\boxed{{{a}}}", b)
    assert not verifier.verify(f"\\boxed{{{b}}}", a)


def test_batch_preserves_order_and_matches_single_calls(verifier):
    cases = LABELLED * 3
    assert verifier.verify_batch([(c.completion, c.gold) for c in cases]) == [c.expected for c in cases]


def test_verdict_reports_answer_and_status(verifier):
    verdict = verifier.check("first \\boxed{3}, then <|reflect|> \\boxed{\\frac{6}{2}}", "3")
    assert verdict == Verdict(True, "\\frac{6}{2}", "ok", verdict.seconds)
    missing = verifier.check("no answer here", "3")
    assert (missing.correct, missing.predicted, missing.status) == (False, None, "no_answer")


def test_stats_count_each_path():
    with Verifier(workers=1) as fresh:
        fresh.verify_batch([("\\boxed{18}", "18"), ("\\boxed{2(x+1)}", "2x+2"), ("none", "1")])
        stats = fresh.stats
        assert (stats.checks, stats.fast_path, stats.math_verify, stats.cache_hits, stats.timeouts) == (3, 1, 1, 0, 0)


def test_agreeing_samples_are_checked_once_and_remembered():
    group = [(f"sample {i}: \\boxed{{2(x+1)}}", "2x+2") for i in range(8)] + [("\\boxed{\\{1,2\\}}", "\\{2,1\\}")]
    with Verifier(workers=2) as fresh:
        assert fresh.verify_batch(group) == [True] * 9
        assert (fresh.stats.math_verify, fresh.stats.cache_hits) == (2, 0)  # two distinct answers
        assert fresh.verify_batch(group[:3]) == [True] * 3
        assert (fresh.stats.math_verify, fresh.stats.cache_hits) == (2, 3)


def test_module_level_functions_share_one_pool():
    assert verify("The answer is $\\frac{1}{2}$.", "0.5")
    assert verify_batch([("\\boxed{2}", "2"), ("\\boxed{3}", "2")], workers=3) == [True, False]


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda v: v.check_batch([("only one",)]), TypeError, "pair 0 must be a"),
        (lambda v: v.check_batch([("\\boxed{1}", 1)]), TypeError, "pair 0 must be a"),
        (lambda v: v.check("\\boxed{1}", "1", timeout=0), ValueError, "timeout must be a positive"),
        (lambda v: v.check("\\boxed{1}", "1", timeout="1"), ValueError, "timeout must be a positive"),
    ],
)
def test_bad_input_is_a_clear_error(verifier, call, error, message):
    with pytest.raises(error, match=message):
        call(verifier)


@pytest.mark.parametrize("workers", [0, -1, 1.5, True])
def test_bad_worker_count(workers):
    with pytest.raises(ValueError, match="workers must be an integer >= 1"):
        Verifier(workers=workers)
