"""The in-process fast path: plain numbers decided exactly, everything else left to math-verify."""

import time
from fractions import Fraction

import pytest

from satori_env.verifier import _fast_equal, _plain_number


@pytest.mark.parametrize(
    "answer, value",
    [
        ("18", Fraction(18)),
        ("1,000", Fraction(1000)),
        ("$18.50", Fraction(37, 2)),
        ("\\$18", Fraction(18)),
        ("18 dollars", Fraction(18)),
        ("18 square feet.", Fraction(18)),
        ("-3", Fraction(-3)),
        ("\u22123", Fraction(-3)),
        (".5", Fraction(1, 2)),
        ("104.", Fraction(104)),
        ("\\textbf{(073)}", Fraction(73)),
        ("\\text{18}", Fraction(18)),
        ("1{,}000", Fraction(1000)),
        ("1\\,000", Fraction(1000)),
    ],
)
def test_plain_numbers(answer, value):
    assert _plain_number(answer)[0] == value


@pytest.mark.parametrize(
    "answer",
    ["3 pi", "2 sqrt 2", "50 percent", "1 hundred", "3 dozen", "\\frac{1}{2}", "50%", "1,2", "(1,234)", "x", "1e5", "2^3", "1" * 100, "", "dollars"],
)
def test_not_plain_numbers(answer):
    assert _plain_number(answer) is None


@pytest.mark.parametrize(
    "gold, predicted, expected",
    [
        ("18", "18", True),
        ("", "", False),
        ("1000", "1,000", True),
        ("18", "$18.00", True),
        ("18", "19", False),
        ("0.5", "0.25", False),
        ("0.3333333", "0.33333333", None),  # math-verify rounds to 6 places: let it decide
        ("\\frac{1}{2}", "0.5", None),
        ("50", "50%", None),
        ("3", "3 pi", None),
    ],
)
def test_fast_equal_decides_only_when_certain(gold, predicted, expected):
    assert _fast_equal(gold, predicted) is expected


@pytest.mark.parametrize("soup", ["ab" * 90 + "1", "word " * 35 + "x1", "cm." * 60 + "$"])
def test_letter_soup_is_rejected_in_linear_time(soup):
    # garbage a random policy writes after a number: the unit-word pattern once backtracked
    # exponentially here (minutes for 40 letters), in the trainer's process, with no timeout
    start = time.perf_counter()
    assert _plain_number("5 " + soup) is None
    assert _fast_equal("5", "5 " + soup) is None
    assert time.perf_counter() - start < 0.05
