"""The in-process fast path: plain numbers decided exactly, everything else left to math-verify."""

import time
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from satori_env.answers import exact_fraction, fast_verdict, plain_number


def _parse(answer: str) -> list:
    """math-verify's reading of an answer, as the verifier's workers parse it."""
    from math_verify import LatexExtractionConfig, parse

    config = [LatexExtractionConfig(boxed_match_priority=0)]
    return parse(f"\\boxed{{{answer}}}", extraction_config=config, parsing_timeout=None)


def _math_verify_equal(gold: str, predicted: str) -> bool:
    """math-verify's verdict, as the verifier's workers ask it."""
    from math_verify import verify

    parsed = [_parse(gold), _parse(predicted)]
    return bool(parsed[0] and parsed[1] and verify(parsed[0], parsed[1], timeout_seconds=None))


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
        ("\\frac{\\pi}{2}", "1.57", False),  # 1.5708 vs 1.57: apart by more than 6-place rounding bridges
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
    predicted = gold if same or not predicted else predicted
    decided = fast_verdict(gold, predicted)
    if decided is None:
        return
    if all(p and getattr(p[0], "is_number", False) for p in (_parse(gold), _parse(predicted))):
        assert decided is _math_verify_equal(gold, predicted)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(gold=_fraction, predicted=_fraction)
def test_fractions_agree_with_math_verify(gold, predicted):
    decided = fast_verdict(gold, predicted)
    if decided is not None and all(p and getattr(p[0], "is_number", False) for p in (_parse(gold), _parse(predicted))):
        assert decided is _math_verify_equal(gold, predicted), (gold, predicted)


@pytest.mark.parametrize(
    "answer, value",
    [("\\frac{3}{4}", Fraction(3, 4)), ("-\\dfrac{3}{4}", Fraction(-3, 4)), ("\\tfrac{-6}{8}", Fraction(-3, 4)),
     ("3/4", Fraction(3, 4)), ("\\text{$\\frac{1}{2}$}", Fraction(1, 2)), ("\\frac34", None), ("\\frac{1}{0}", None),
     ("\\frac{x}{2}", None), ("\\frac{1}{2}+1", None)],
)  # fmt: skip
def test_exact_fractions(answer, value):
    assert exact_fraction(answer) == value


# Closed forms with square roots and pi (satori_env.exact_values): terms as answers write them,
# sums of two, and equal values written differently.
_coefficient = st.sampled_from([1, 2, 3, -1, 5, 12, 0])
_radicand = st.sampled_from([0, 1, 2, 3, 4, 5, 8, 12, 18, 20, 27, 50, 72])
_divisor = st.sampled_from([1, 2, 3, 4, 6])
_term = st.one_of(
    st.tuples(_coefficient, _radicand).map(lambda t: f"{t[0]}\\sqrt{{{t[1]}}}"),
    st.tuples(_coefficient, _radicand, _divisor).map(lambda t: f"\\frac{{{t[0]}\\sqrt{{{t[1]}}}}}{{{t[2]}}}"),
    st.tuples(_coefficient, _radicand).map(lambda t: f"\\frac{{{t[0]}}}{{\\sqrt{{{t[1]}}}}}"),
    st.tuples(_coefficient, _divisor).map(lambda t: f"\\frac{{{t[0]}\\pi}}{{{t[1]}}}"),
    st.tuples(_coefficient, _divisor).map(lambda t: f"{t[0]}\\pi/{t[1]}"),
    st.tuples(_radicand, _divisor).map(lambda t: f"\\sqrt{{\\frac{{{t[0]}}}{{{t[1]}}}}}"),
    st.tuples(_coefficient, st.sampled_from([2, 3, -1])).map(lambda t: f"{t[0]}^{{{t[1]}}}"),
    st.tuples(st.integers(0, 9), st.integers(1, 9)).map(lambda t: f"\\frac{t[0]}{t[1]}"),
    st.tuples(_coefficient, _radicand).map(lambda t: f"{t[0]} \\cdot \\sqrt{{{t[1]}}}"),
    st.sampled_from(["\\pi", "\\pi^2", "\\sqrt2", "0.5\\pi", "\\left(3\\right)", "1.5", "0.577350", "3.141593", "7"]),
)
_closed_form = st.one_of(_term, st.tuples(_term, st.sampled_from([" + ", "-", "+"]), _term).map(lambda t: "".join(t)))


@pytest.mark.parametrize(
    "gold, predicted, expected",
    [("\\sqrt{8}", "2\\sqrt{2}", True), ("\\frac{1}{\\sqrt{2}}", "\\frac{\\sqrt2}{2}", True),
     ("(1+\\sqrt2)^2", "3+2\\sqrt{2}", True), ("\\frac{20000}{\\pi}", "\\frac{40000}{2\\pi}", True),
     ("\\sqrt{2}\\sqrt{3}", "\\sqrt6", True), ("\\sqrt{0}", "0", True), ("2\\sqrt{5}", "5\\sqrt{2}", False),
     ("\\pi", "3.14", False), ("\\frac{\\sqrt3}{3}", "0.57735", None),  # within math-verify's rounding
     ("11\\sqrt5+11", "11(\\sqrt5+1)", None),  # juxtaposition before a parenthesis: refused
     ("1\\frac{4}{5}", "\\frac{9}{5}", True), ("-1\\frac{1}{2}", "-1.5", True),  # mixed numbers
     ("52_8", "52", True), ("52_8", "42", False),  # math-verify drops a base subscript
     ("3 \\pm 2\\sqrt{2}", "3+2\\sqrt2", False), ("2^12", "4096", None), ("\\sqrt{-4}", "2", None)],
)  # fmt: skip
def test_closed_forms_are_decided_only_when_certain(gold, predicted, expected):
    assert fast_verdict(gold, predicted) is expected


@pytest.mark.parametrize(
    "hostile", ["\\sqrt{" * 60 + "2" + "}" * 60, "9^{9}^{9}", "(" * 200, "\\sqrt{99999999999}", "2^{-0}" * 30]
)
def test_closed_forms_refuse_hostile_input_fast(hostile):
    start = time.perf_counter()
    assert fast_verdict("2", hostile) in (None, False)
    assert time.perf_counter() - start < 0.05


_item = st.sampled_from(["1", "2", "-2", "8", "\\frac{1}{2}", "0.5", "\\sqrt{2}", "\\frac{\\pi}{2}", "3\\pi"])
_structured = st.one_of(
    st.tuples(
        st.sampled_from(["(", "[", "\\left("]), st.lists(_item, min_size=1, max_size=3), st.sampled_from([")", "]"])
    ).map(lambda t: t[0] + ", ".join(t[1]) + (t[2] if not t[0].startswith("\\left") else "\\right" + t[2])),
    st.lists(_item, min_size=2, max_size=3).map(
        lambda items: "\\begin{pmatrix} " + " \\\\ ".join(items) + " \\end{pmatrix}"
    ),
    st.sampled_from(["\\text{east}", "\\text{(C)}", "\\text{e}", "\\text{pi}", "even", "\\text{ i }", "1,2", "x=2"]),
    _item,
    _item.map(lambda item: f"{item}^\\circ"),
)


@settings(max_examples=800, deadline=None, derandomize=True)
@given(
    gold=st.one_of(_closed_form, _structured),
    predicted=st.one_of(_closed_form, _structured, _closed_form.map(lambda a: a.replace(" ", ""))),
)
def test_closed_forms_and_structured_answers_agree_with_math_verify(gold, predicted):
    """Radicals and pi, tuples and intervals, matrices, words, degrees, against each other:
    wherever the fast path decides, math-verify decides the same, whatever it reads them as."""
    decided = fast_verdict(gold, predicted)
    if decided is not None:
        assert decided is _math_verify_equal(gold, predicted)


@pytest.mark.parametrize(
    "gold, predicted, expected",
    [("(8,-2)", "8", False), ("(8, -2)", "(8,-2)", True),
     ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})", True),
     ("[2,2]", "2", None),  # the set {2}: equal to 2 for math-verify
     ("(1,2)", "[1,2)", None), ("1,2", "(1,2)", None),  # math-verify finds a set equal to an interval
     ("\\text{east}", "3", False), ("\\text{e}", "2.718282", None), ("90^\\circ", "90", True),
     ("90^\\circ", "\\frac{\\pi}{2}", False), ("\\begin{pmatrix} 5 \\\\ 6 \\end{pmatrix}", "5", False),
     ("\\begin{pmatrix} 5 \\end{pmatrix}", "5", None)],
)  # fmt: skip
def test_structured_answers_are_decided_only_when_certain(gold, predicted, expected):
    assert fast_verdict(gold, predicted) is expected


@pytest.mark.slow
def test_the_fast_path_never_contradicts_math_verify_on_the_benchmarks_answers():
    """Every benchmark's reference answers against their own gold answers and others' (thousands
    of pairs of the forms models write): the only differences are the documented lenient forms."""
    from satori_env import load_problems
    from satori_env.answers import extract_answer
    from satori_env.tasks.datasets import reference_response

    answers = [
        (p.answer, extract_answer(response))
        for name in ("math500", "olympiadbench", "minerva", "aime24", "amc23")
        for p in load_problems(name)
        if (response := reference_response(p)) is not None
    ]
    pairs = [(gold, answer) for gold, answer in answers if answer]
    pairs += [(gold, pairs[(i + 7) % len(pairs)][1]) for i, (gold, _) in enumerate(pairs)]
    decided, contradicted = 0, []
    for gold, answer in pairs:
        fast = fast_verdict(gold, answer)
        if fast is None:
            continue
        decided += 1
        if fast is not _math_verify_equal(gold, answer):
            contradicted.append((gold, answer))
    assert decided > 0.7 * len(pairs)
    assert contradicted == [("104", "104."), ("73", "\\textbf{(073)}")]  # read as text by math-verify


# Polynomials in single-letter symbols (and complex numbers, i being a symbol to math-verify),
# unbracketed lists and a \pm b (sets to math-verify), intervals with infinities and unions.
_symbol = st.sampled_from(["x", "k", "n", "r", "R", "a", "p", "q", "i", "y"])
_monomial = st.one_of(
    _symbol,
    st.tuples(st.sampled_from(["2", "3", "-1", "\\frac{1}{2}", "0.5", "\\sqrt{2}", "\\pi"]), _symbol).map("".join),
    st.tuples(_symbol, st.sampled_from(["^2", "^{3}", "^{-1}"])).map("".join),
    st.tuples(
        st.sampled_from(["5", "6", ""]), _symbol, st.sampled_from(["^2", ""]), st.sampled_from([" ", ""]), _symbol
    ).map("".join),
    st.tuples(_symbol, st.sampled_from(["2", "3", "4"])).map(lambda t: f"\\frac{{{t[0]}}}{{{t[1]}}}"),
    st.sampled_from(["2(k+1)", "x(x+1)", "(x+1)^2", "\\frac{x+1}{x}", "ab", "2 i", "5m", "2e", "3I", "\\cot x"]),
)  # fmt: skip
_polynomial = st.one_of(
    _monomial,
    st.tuples(_monomial, st.sampled_from([" + ", "-", "+"]), st.one_of(_monomial, _item)).map("".join),
    st.tuples(_item, st.sampled_from([" + ", "-"]), _monomial).map("".join),
)
_collection = st.one_of(
    st.lists(st.one_of(_item, _monomial), min_size=2, max_size=3).map(", ".join),
    st.lists(_item, min_size=2, max_size=3).map(",".join),
    st.tuples(st.sampled_from(["", "1", "3", "x"]), _item).map(lambda t: f"{t[0]} \\pm {t[1]}"),
    st.tuples(st.sampled_from(["(", "["]), _item, st.sampled_from([")", "]"])).map(
        lambda t: f"{t[0]}{t[1]}, \\infty{t[2]}"
    ),
    st.tuples(_item, st.sampled_from([")", "]"])).map(lambda t: f"(-\\infty, {t[0]}{t[1]}"),
    st.sampled_from(
        ["(0,9) \\cup (9,36)", "(-\\infty, 2) \\cup (3, \\infty)", "[2,+\\infty)", "1,000", "1, 000", "1,23", "1,234.5"]
    ),
)  # fmt: skip


@settings(max_examples=800, deadline=None, derandomize=True)
@given(
    gold=st.one_of(_polynomial, _collection, _item),
    predicted=st.one_of(_polynomial, _collection, _item, _polynomial.map(lambda a: a.replace(" ", ""))),
)
def test_polynomials_and_sets_agree_with_math_verify(gold, predicted):
    """Wherever the fast path decides polynomials, lists, intervals with infinities and unions,
    math-verify decides the same."""
    decided = fast_verdict(gold, predicted)
    if decided is not None:
        assert decided is _math_verify_equal(gold, predicted), (gold, predicted)


@pytest.mark.parametrize(
    "gold, predicted, expected",
    [("2k+2", "2+2K", True), ("\\frac{x+1}{x}", "1+\\frac{1}{x}", True), ("6r^2-4r-24", "66", False),
     ("p - q", "q - p", False), ("x^2", "1.00000001x^2", None),  # within math-verify's rounding
     ("6 - 5i", "\\sqrt{51}", False), ("2i", "2 i", None),  # i: two different symbols to math-verify
     ("2(k+1)", "2k+2", None), ("ab", "ba", None), ("5m", "5", None), ("2e", "2", None),  # refused
     ("1,-2", "-2,1", True), ("1,-2", "1", False), ("2,2", "2", None), ("1,000", "1000", True),
     ("1, 000", "1000", None), ("1,234.5", "1234.5", True), ("1,23", "1", False),
     ("1 \\pm \\sqrt{19}", "-4", False), ("\\pm 2", "2,-2", True),
     ("(2,\\infty)", "3", False), ("[2,\\infty)", "[2,+\\infty)", True), ("(0,9) \\cup (9,36)", "1", False)],
)  # fmt: skip
def test_polynomials_and_sets_are_decided_only_when_certain(gold, predicted, expected):
    assert fast_verdict(gold, predicted) is expected


_poly_term = st.tuples(
    st.sampled_from([1, 2, -3, 5]), st.sampled_from([1, 2]), st.sampled_from(["x", "k", "n", "R", "a", "i"]),
    st.sampled_from([0, 1, 2]),
)  # fmt: skip


def _written(terms: list, style: int) -> str:
    """A polynomial in one of three writings: ``2x^2 + 1``, ``\\frac{2 X^{2}}{1}+1``, ``2 \\cdot x^2+1``."""
    parts = []
    for coefficient, divisor, symbol, power in terms if style != 1 else reversed(terms):
        factor = (
            "" if power == 0 else symbol if power == 1 else f"{symbol}^{{{power}}}" if style else f"{symbol}^{power}"
        )
        factor = factor.upper() if style == 1 and symbol not in ("i", "a") else factor
        if style == 1:
            text = (
                f"\\frac{{{coefficient}{factor}}}{{{divisor}}}" if factor else f"\\frac{{{coefficient}}}{{{divisor}}}"
            )
        else:
            text = f"\\frac{{{coefficient}}}{{{divisor}}}" if divisor != 1 else str(coefficient)
            text += (" \\cdot " if style == 2 else "") + factor if factor else ""
        parts.append(text)
    return "+".join(parts).replace("+-", "-")


@settings(max_examples=300, deadline=None, derandomize=True)
@given(terms=st.lists(_poly_term, min_size=1, max_size=3), styles=st.tuples(st.integers(0, 2), st.integers(0, 2)))
def test_polynomials_written_differently_agree_with_math_verify(terms, styles):
    """The same polynomial (or a nearby one) in different writings: reordered, upper case,
    fractions around or before the symbol, ``\\cdot``."""
    gold, predicted = _written(terms, styles[0]), _written(terms[:-1] if len(terms) > 2 else terms, styles[1])
    decided = fast_verdict(gold, predicted)
    if decided is not None:
        assert decided is _math_verify_equal(gold, predicted), (gold, predicted)
