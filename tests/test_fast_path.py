"""The in-process fast path: plain numbers decided exactly, everything else left to math-verify."""

import time
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from satori_env.answers import exact_fraction, fast_verdict, plain_number


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
def testplain_numbers(answer, value):
    assert plain_number(answer)[0] == value


@pytest.mark.parametrize(
    "answer",
    [
        "3 pi",
        "2 sqrt 2",
        "50 percent",
        "1 hundred",
        "3 dozen",
        "\\frac{1}{2}",
        "50%",
        "1,2",
        "(1,234)",
        "x",
        "1e5",
        "2^3",
        "1" * 100,
        "",
        "dollars",
    ],
)
def test_notplain_numbers(answer):
    assert plain_number(answer) is None


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
        ("\\frac{1}{2}", "0.5", True),  # a fraction of integers is decided in-process too
        ("\\frac{1}{3}", "0.333333", None),  # within math-verify's rounding: its call
        ("\\frac{2}{3}", "3/4", False),
        ("\\frac{\\pi}{2}", "1.57", None),
        ("50", "50%", None),
        ("3", "3 pi", None),
    ],
)
def testfast_verdict_decides_only_when_certain(gold, predicted, expected):
    assert fast_verdict(gold, predicted) is expected


@pytest.mark.parametrize("soup", ["ab" * 90 + "1", "word " * 35 + "x1", "cm." * 60 + "$"])
def test_letter_soup_is_rejected_in_linear_time(soup):
    # garbage a random policy writes after a number: the unit-word pattern once backtracked
    # exponentially here (minutes for 40 letters), in the trainer's process, with no timeout
    start = time.perf_counter()
    assert plain_number("5 " + soup) is None
    assert fast_verdict("5", "5 " + soup) is None
    assert time.perf_counter() - start < 0.05


@pytest.mark.parametrize(
    "gold, predicted", [("3", "\u0663"), ("12", "\uff11\uff12"), ("\u0663\u0664", "34"), ("7", "\u07c7")]
)
def test_non_ascii_digits_are_left_to_math_verify(verifier, gold, predicted):
    """Arabic-Indic, fullwidth and N'Ko digits are text to math-verify: the fast path agrees."""
    assert fast_verdict(gold, predicted) is None
    non_ascii = gold if predicted.isascii() else predicted
    assert plain_number(non_ascii) is None
    assert not verifier.verify(f"\\boxed{{{predicted}}}", gold)
    assert verifier.verify(f"\\boxed{{{non_ascii}}}", non_ascii)  # identical strings still match


_integer = st.integers(min_value=0, max_value=10**9)
_plain = st.one_of(
    _integer.map(str),
    _integer.map(lambda n: f"{n:,}"),
    _integer.map(lambda n: f"-{n}"),
    _integer.map(lambda n: f"\\${n}"),
    st.tuples(_integer, st.sampled_from(["5", "50", "05", "0", "125", "3333333"])).map(lambda t: f"{t[0]}.{t[1]}"),
)
_small = st.integers(min_value=-40, max_value=40)
_positive = st.integers(min_value=1, max_value=40)
_fraction = st.one_of(
    st.tuples(_small, _positive).map(lambda t: f"\\frac{{{t[0]}}}{{{t[1]}}}"),
    st.tuples(_small, _positive).map(lambda t: f"-\\dfrac{{{t[0]}}}{{{t[1]}}}"),
    st.tuples(_positive, _positive).map(lambda t: f"{t[0]}/{t[1]}"),
    st.sampled_from(["0.5", "0.25", "0.333333", "0.3333333", "1.5", "2", "-0.75", "0"]),
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(gold=_plain, predicted=st.one_of(_plain, st.just("")), same=st.booleans())
def test_fast_path_agrees_with_math_verify_where_it_reads_numbers(gold, predicted, same):
    from math_verify import LatexExtractionConfig, parse, verify

    predicted = gold if same or not predicted else predicted
    decided = fast_verdict(gold, predicted)
    if decided is None:
        return
    config = [LatexExtractionConfig(boxed_match_priority=0)]
    parsed = [
        parse(f"\\boxed{{{answer}}}", extraction_config=config, parsing_timeout=None) for answer in (gold, predicted)
    ]
    if all(p and getattr(p[0], "is_number", False) for p in parsed):
        assert decided is bool(verify(parsed[0], parsed[1], timeout_seconds=None))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(gold=_fraction, predicted=_fraction)
def test_fractions_agree_with_math_verify(gold, predicted):
    from math_verify import LatexExtractionConfig, parse, verify

    decided = fast_verdict(gold, predicted)
    config = [LatexExtractionConfig(boxed_match_priority=0)]
    parsed = [
        parse(f"\\boxed{{{answer}}}", extraction_config=config, parsing_timeout=None) for answer in (gold, predicted)
    ]
    if decided is not None and all(p and getattr(p[0], "is_number", False) for p in parsed):
        assert decided is bool(verify(parsed[0], parsed[1], timeout_seconds=None)), (gold, predicted)


@pytest.mark.parametrize(
    "answer, value",
    [("\\frac{3}{4}", Fraction(3, 4)), ("-\\dfrac{3}{4}", Fraction(-3, 4)), ("\\tfrac{-6}{8}", Fraction(-3, 4)),
     ("3/4", Fraction(3, 4)), ("\\text{$\\frac{1}{2}$}", Fraction(1, 2)), ("\\frac34", None), ("\\frac{1}{0}", None),
     ("\\frac{x}{2}", None), ("\\frac{1}{2}+1", None)],
)  # fmt: skip
def test_exact_fractions(answer, value):
    assert exact_fraction(answer) == value
