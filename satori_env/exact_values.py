"""Exact values of the common closed forms in answers, for the verifier's in-process fast path.

MATH-style answers are mostly numbers, but many are written with radicals and pi:
``2\\sqrt{5}``, ``\\frac{\\sqrt{3}}{3}``, ``\\frac{20000}{\\pi}``, ``11 \\sqrt{5} + 11``, or are
polynomials: ``2k+2``, ``6r^2-4r-24``, ``6 - 5i``. Parsing them with math-verify costs
milliseconds (an ANTLR parse, then sympy); this module reads a small grammar of them in
microseconds into a canonical form, a sum of terms ``c * sqrt(r) * pi**k * x**a * y**b ...`` with
``c`` rational, ``r`` a square-free integer, ``k`` and the powers integers. Square roots of
distinct square-free integers are linearly independent over the rationals, pi is transcendental
and distinct monomials in free symbols are independent, so two such sums are equal exactly when
their canonical forms are equal: no tolerance, no sympy.

The grammar (anything else gives None, and the verifier asks math-verify):
numbers (``12``, ``0.5``), ``+ - * / \\cdot \\times``, ``\\frac{a}{b}`` (``\\dfrac``, ``\\tfrac``,
``\\frac43``), ``\\sqrt{a}`` (``\\sqrt2``) of a non-negative rational, ``\\pi``, integer powers
``^2`` / ``^{-1}``, parentheses and braces, and single letters as math-verify reads them: free
symbols, upper case the same as lower case. Letters math-verify reads otherwise are refused:
``e``/``E`` (Euler's number, and ``2E1`` is 20), ``I`` (the imaginary unit), and the unit letters
it drops after a number (``5m`` is 5: c, d, g, h, l, m, o, s, t). ``i`` is a free symbol whose
assumptions depend on the spacing (``2i`` is not ``2 i`` to math-verify), so a form with ``i`` is
only ever found unequal. Juxtaposition multiplies only before a letter, ``\\sqrt`` or ``\\pi``
(``2\\sqrt{3}``, ``3\\pi``, ``5x``); two letters in a row (``ab``, a word or a function name), a
letter before a parenthesis (``f(x)``) or a digit (``x2``), and ``2(3)`` (5 to math-verify) are
refused. A division's divisor must be a single term. A whole answer that is a mixed number
(``1\\frac{4}{5}``, which math-verify reads as 9/5) or a number with a base subscript (``52_8``,
which it reads as 52) is read as math-verify reads it; a trailing ``^\\circ`` is dropped, as
math-verify drops it. Sizes are capped (digits, radicands, powers, terms) so that nothing here is
slow on hostile input.

:func:`closed_form_verdict` also decides what math-verify provably decides the same way without
parsing: tuples and intervals of such values (and of infinities) against each other (equal when
the brackets and every item are), unbracketed lists (sets to math-verify: equal when they hold the
same values), and a value against a tuple or list of at least two distinct values, an interval
or a union of intervals, a matrix of at least two entries, or words (never equal).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

__all__ = ["Value", "closed_form_verdict", "exact_value", "to_float"]

Monomial = tuple[tuple[str, int], ...]
"""Free symbols and their non-zero powers, sorted by symbol: ``(("k", 1),)``; ``()`` is 1."""
Value = dict[tuple[int, int, Monomial], Fraction]
"""A canonical sum: ``{(square-free radicand, power of pi, monomial): non-zero rational coefficient}``."""

_MAX_LENGTH = 120
_MAX_DIGITS = 30
_MAX_RADICAND = 10**6
_MAX_PI_POWER = 4
_MAX_EXPONENT = 8
_MAX_TERMS = 16
_MAX_DEGREE = 64
_ONE: Value = {(1, 0, ()): Fraction(1)}

_TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+(?:\.\d+)?|\.\d+)|(?P<command>\\(?:[dt]?frac|sqrt|pi|cdot|times))(?![A-Za-z])"
    r"|(?P<letter>[abfijknpqru-zABFJKNPQRU-Z])(?![A-Za-z0-9(])|(?P<symbol>[-+*/^(){}]))",
    re.ASCII,
)
_SIZING = re.compile(r"\\(?:left|right)(?![A-Za-z])")  # \left( and \right): the brackets alone
_DROPPED = re.compile(_SIZING.pattern + r"|\\[,!;: ]|\{,\}")
_DEGREES = re.compile(r"\^\s*(?:\\circ|\{\s*\\circ\s*\})\s*$")
# matrix, pmatrix, bmatrix; not vmatrix: a determinant is a number
_MATRIX = re.compile(r"^\\begin\{([pb]?matrix)\}(?P<body>.*)\\end\{\1\}$", re.DOTALL)
_WORDS = re.compile(r"^\\(?:text|textbf|textrm|mbox|mathrm)\s*\{(?P<words>[A-Za-z ()]+)\}$")
_NUMBER_WORDS = frozenset({"pi", "e", "i", "inf", "infty", "infinity", "nan", "oo"})
# read as math-verify reads them: 1\frac{4}{5} is 1 + 4/5, -1\frac{1}{2} is -3/2; 52_8 is 52
_MIXED_NUMBER = re.compile(
    r"^(?P<sign>-?)\s*(?P<whole>\d+)\s*(?P<fraction>\\[dt]?frac\s*(?:\{\d+\}|\d)\s*(?:\{\d+\}|\d))$"
)
_BASE_SUBSCRIPT = re.compile(r"^(?P<digits>\d+)_(?:\d|\{\d+\})$")
_INFINITIES = {"\\infty": 1, "+\\infty": 1, "-\\infty": -1}


class _Refused(Exception):
    """The text is outside the grammar."""


def _tokens(text: str) -> list[str]:
    text = _DROPPED.sub(lambda m: "," if m.group() == "{,}" else " ", text).strip()
    if re.search(r"\d\s+\d|\d,\d", text):  # "1 000" and "1,000" are for plain_number, "1, 2" a list
        raise _Refused
    tokens, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            if text[position:].strip():
                raise _Refused
            break
        tokens.append(match.group().strip())
        position = match.end()
    return tokens


def _square_free(n: int) -> tuple[int, int]:
    """``(s, r)`` with ``n == s * s * r`` and ``r`` square-free (``n`` at most ``_MAX_RADICAND``)."""
    square, free, factor = 1, 1, 2
    while factor * factor <= n:
        while n % (factor * factor) == 0:
            n //= factor * factor
            square *= factor
        if n % factor == 0:
            n //= factor
            free *= factor
        factor += 1
    return square, free * n


def _clean(value: Value) -> Value:
    cleaned = {key: c for key, c in value.items() if c}
    if len(cleaned) > _MAX_TERMS or any(abs(k) > _MAX_PI_POWER for _, k, _ in cleaned):
        raise _Refused
    if any(abs(power) > _MAX_DEGREE for _, _, monomial in cleaned for _, power in monomial):
        raise _Refused
    if any(len(str(c.numerator)) + len(str(c.denominator)) > 2 * _MAX_DIGITS for c in cleaned.values()):
        raise _Refused
    return cleaned


def _add(a: Value, b: Value, sign: int = 1) -> Value:
    total = dict(a)
    for key, c in b.items():
        total[key] = total.get(key, Fraction(0)) + sign * c
    return _clean(total)


def _monomial_product(m1: Monomial, m2: Monomial, sign: int = 1) -> Monomial:
    powers = dict(m1)
    for symbol, power in m2:
        powers[symbol] = powers.get(symbol, 0) + sign * power
    return tuple(sorted((symbol, power) for symbol, power in powers.items() if power))


def _multiply(a: Value, b: Value) -> Value:
    product: Value = {}
    for (r1, k1, m1), c1 in a.items():
        for (r2, k2, m2), c2 in b.items():
            g = math.gcd(r1, r2)
            key = ((r1 // g) * (r2 // g), k1 + k2, _monomial_product(m1, m2))
            product[key] = product.get(key, Fraction(0)) + c1 * c2 * g
    return _clean(product)


def _inverse(a: Value) -> Value:
    if len(a) != 1:  # 1 / (1 + sqrt 2) would need rationalising, 1 / (x + 1) is not a polynomial: refused
        raise _Refused
    (((r, k, m), c),) = a.items()
    return _clean({(r, -k, _monomial_product((), m, -1)): 1 / (c * r)})


def _constant(c: Fraction) -> Value:
    return _clean({(1, 0, ()): c})


def _sqrt(a: Value) -> Value:
    if set(a) - {(1, 0, ())}:
        raise _Refused
    c = a.get((1, 0, ()), Fraction(0))
    if c < 0 or c.numerator * c.denominator > _MAX_RADICAND:
        raise _Refused
    if c == 0:
        return {}
    square, free = _square_free(c.numerator * c.denominator)  # sqrt(p/q) = sqrt(p q) / q
    return _clean({(free, 0, ()): Fraction(square, c.denominator)})


def _power(a: Value, exponent: int) -> Value:
    if abs(exponent) > _MAX_EXPONENT or (exponent < 0 and len(a) != 1) or (exponent == 0 and not a):
        raise _Refused
    base = _inverse(a) if exponent < 0 else a
    result = _ONE
    for _ in range(abs(exponent)):
        result = _multiply(result, base)
    return result


class _Parser:
    """Recursive descent over the tokens; every method raises ``_Refused`` outside the grammar."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens, self.position = tokens, 0

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise _Refused
        self.position += 1
        return token

    def expression(self) -> Value:
        sign = -1 if self.peek() == "-" else 1
        if self.peek() in ("-", "+"):
            self.take()
        value = _multiply(_constant(Fraction(sign)), self.term())
        while self.peek() in ("+", "-"):
            sign = 1 if self.take() == "+" else -1
            value = _add(value, self.term(), sign)
        return value

    def term(self) -> Value:
        value = self.power()
        while True:
            token = self.peek()
            if token in ("*", "\\cdot", "\\times"):
                self.take()
                value = _multiply(value, self.power())
            elif token in ("\\sqrt", "\\pi") or (token or "0")[0].isalpha():  # 2\sqrt{3}, 3\pi, 5x: these only
                value = _multiply(value, self.power())
            elif token == "/":  # a / b ends the term: 1/2\sqrt{2} is ambiguous, refused
                self.take()
                value = _multiply(value, _inverse(self.power()))
                if self.peek() not in (None, "+", "-", ")", "}"):
                    raise _Refused
                return value
            else:
                return value

    def power(self) -> Value:
        value = self.atom()
        if self.peek() != "^":
            return value
        self.take()
        if self.peek() == "{":
            self.take()
            sign = -1 if self.peek() == "-" else 1
            if sign < 0:
                self.take()
            digits = self.take()
            self.take("}")
        else:  # ^12 is ^1 followed by 2 in LaTeX: one digit only
            sign, digits = 1, self.take()
            if len(digits) != 1:
                raise _Refused
        if not digits.isdigit() or len(digits) > 2:
            raise _Refused
        return _power(value, sign * int(digits))

    def atom(self) -> Value:
        token = self.take()
        if token[0].isdigit() or token[0] == ".":
            if len(token) > _MAX_DIGITS:
                raise _Refused
            return _constant(Fraction(token))
        if token.isalpha():
            return {(1, 0, ((token.lower(), 1),)): Fraction(1)}
        if token == "\\pi":
            return {(1, 1, ()): Fraction(1)}
        if token in ("\\frac", "\\dfrac", "\\tfrac"):
            numerator = self.argument()
            return _multiply(numerator, _inverse(self.argument()))
        if token == "\\sqrt":
            return _sqrt(self.argument())
        if token in ("(", "{"):
            value = self.expression()
            self.take(")" if token == "(" else "}")
            return value
        raise _Refused

    def argument(self) -> Value:
        """A command's argument: ``{expression}``, or a single digit (``\\frac43``, ``\\sqrt2``)."""
        token = self.peek()
        if token == "{":
            self.take()
            value = self.expression()
            self.take("}")
            return value
        if token is not None and len(token) > 1 and token.isdigit():  # \frac43: two single digits
            self.tokens[self.position : self.position + 1] = list(token)
            token = self.peek()
        if token is not None and len(token) == 1 and token.isdigit():
            self.take()
            return _constant(Fraction(int(token)))
        raise _Refused


def exact_value(answer: str) -> Value | None:
    """The canonical value of ``answer`` (already unwrapped of ``\\boxed``/``$``), or None when it
    is outside the grammar.

    >>> exact_value(r"\\frac{\\sqrt{8}}{2}") == exact_value(r"\\sqrt2")
    True
    >>> exact_value(r"2(k+1)") is None, exact_value(r"2k+2") == exact_value(r"2 + 2K")
    (True, True)
    >>> exact_value(r"3 \\pm \\sqrt{2}") is None
    True
    """
    if len(answer) > _MAX_LENGTH:
        return None
    answer = _DEGREES.sub("", answer).strip()  # 90^\\circ is 90 to math-verify
    if (mixed := _MIXED_NUMBER.match(answer)) is not None:
        answer = f"{mixed['sign']}({mixed['whole']}+{mixed['fraction']})"
    elif (based := _BASE_SUBSCRIPT.match(answer)) is not None:
        answer = based["digits"]
    try:
        parser = _Parser(_tokens(answer))
        value = parser.expression()
        if parser.peek() is not None:
            return None
        return value
    except (_Refused, ZeroDivisionError, ValueError, OverflowError):
        return None


def _has_symbols(value: Value) -> bool:
    return any(monomial for _, _, monomial in value)


def _with_i(items: list) -> bool:
    """Whether any value among ``items`` has the symbol ``i``, which math-verify reads with
    assumptions that depend on the spacing: such values are never found equal here."""
    return any(symbol == "i" for item in items if isinstance(item, dict) for *_, m in item for symbol, _ in m)


def to_float(value: Value) -> float:
    """A value without symbols as a float (for the tolerance check against math-verify's rounding)."""
    if _has_symbols(value):
        raise ValueError("a value with free symbols has no float")
    return sum(float(c) * math.sqrt(r) * math.pi**k for (r, k, _), c in value.items())


def _apart(a: Value, b: Value) -> bool:
    """Unequal by more than math-verify's rounding could bridge (relative 1e-4), in the constant
    factor of some monomial."""
    for monomial in {m for _, _, m in a} | {m for _, _, m in b}:
        x, y = ({(r, k, ()): c for (r, k, m), c in v.items() if m == monomial} for v in (a, b))
        x_float, y_float = to_float(x), to_float(y)
        if abs(x_float - y_float) > 1e-4 * max(1.0, abs(x_float), abs(y_float)):
            return True
    return False


Item = Value | int
"""An item of a tuple, interval or list: a value, or +1/-1 for plus or minus infinity."""


def _item(text: str) -> Item | None:
    text = text.strip()
    return _INFINITIES[text] if text in _INFINITIES else exact_value(text)


def _top_level_items(text: str) -> list[str] | None:
    """``text`` split at the commas outside any bracket, or None when the brackets do not balance."""
    items, depth, start = [], 0, 0
    for position, char in enumerate(text):
        depth += (char in "([{") - (char in ")]}")
        if depth < 0:
            return None
        if depth == 0 and char == ",":
            items.append(text[start:position])
            start = position + 1
    return items + [text[start:]] if depth == 0 else None


def _sequence(answer: str) -> tuple[str, list[Item | None]] | None:
    """``(brackets, items)`` of a parenthesised or bracketed list of at least two items
    (``(8,-2)``, ``\\left[1, \\frac{\\pi}{2}\\right)``, ``(-\\infty, 0]``); an item outside the
    grammar is None."""
    text = _SIZING.sub("", answer).strip()
    if len(text) > _MAX_LENGTH or len(text) < 2 or text[0] not in "([" or text[-1] not in ")]":
        return None
    depth = 0
    for char in text[:-1]:
        depth += (char in "([{") - (char in ")]}")
        if depth == 0:
            return None  # the first bracket closes before the end: "(1)+(2)"
    items = _top_level_items(text[1:-1])
    if items is None or len(items) < 2:
        return None
    return text[0] + text[-1], [_item(item) for item in items]


def _bare_list(answer: str) -> list[Value] | None:
    """The values of an unbracketed list of at least two (``1,-2``, ``3, 5, 7``) or of ``a \\pm b``
    (``a+b, a-b``): sets to math-verify; None for anything else. Lists that could be digit groups
    (``1,000``, ``11, 111``) are refused: math-verify reads some of them as one number."""
    if len(answer) > _MAX_LENGTH or re.search(r",\s*\d{3}(?!\d)", answer):
        return None
    items = _top_level_items(answer)
    if items is None:
        return None
    if len(items) == 1 and answer.count("\\pm") == 1:  # 1 \pm 2 + 3 is {1 + (2 + 3), 1 - (2 + 3)}
        left, right = (exact_value(side.strip() or "0") for side in answer.split("\\pm"))
        try:
            return None if left is None or right is None else [_add(left, right), _add(left, right, -1)]
        except _Refused:
            return None
    values = [exact_value(item.strip()) for item in items]
    return None if len(values) < 2 or None in values else values


def _key(item: Item) -> int | frozenset:
    """``item`` in a hashable form: equal exactly when the items are."""
    return item if isinstance(item, int) else frozenset(item.items())


def _distinct(items: list) -> int:
    return len({_key(item) for item in items})


def _never_a_value(answer: str, words_too: bool) -> bool:
    """Answers math-verify never finds equal to a single value: a matrix of two or more entries,
    a tuple, interval or unbracketed list of at least two distinct items, a union of intervals,
    and (``words_too``, against a value without symbols) words, in ``\\text{}`` or not (not pi,
    e, i or infinity)."""
    matrix = _MATRIX.match(answer)
    if matrix is not None:
        return "&" in matrix["body"] or "\\\\" in matrix["body"]
    wrapped = _WORDS.match(answer)
    words = wrapped["words"] if wrapped is not None else answer
    if re.fullmatch(r"[A-Za-z ()]+", words):  # letters are symbols or text to math-verify, never a number
        names = [word for word in re.split(r"[ ()]+", words.lower()) if word]
        return words_too and sum(map(len, names)) >= 2 and not any(word in _NUMBER_WORDS for word in names)
    if (listed := _bare_list(answer)) is not None:
        return _distinct(listed) == len(listed)
    parts = answer.split("\\cup")
    sequences = [_sequence(part) for part in parts]
    if any(sequence is None or None in sequence[1] for sequence in sequences):
        return False
    return len(parts) > 1 or _distinct(sequences[0][1]) == len(sequences[0][1])  # [2, 2] is {2}: equal to 2


def closed_form_verdict(gold: str, predicted: str) -> bool | None:
    """Both answers (unwrapped of ``\\boxed``/``$``) decided without math-verify, or None.

    Values are equal when their canonical forms are (never with the symbol ``i``, see the module
    docstring); unequal when, for some monomial, they are apart by more than math-verify's
    rounding could bridge (relative 1e-4). Tuples and intervals are equal when the brackets match
    and every item is equal, unbracketed lists when they hold the same values (anything else is
    left to math-verify, which, for instance, finds ``1,2`` equal to ``(1,2)``). A value never
    equals the answers :func:`_never_a_value` names.
    """
    g, p = exact_value(gold), exact_value(predicted)
    if g is not None and p is not None:
        if g == p:
            return None if _with_i([g]) else True
        return False if _apart(g, p) else None
    if (g is not None and _never_a_value(predicted, not _has_symbols(g))) or (
        p is not None and _never_a_value(gold, not _has_symbols(p))
    ):
        return False
    g_list, p_list = _bare_list(gold), _bare_list(predicted)
    if g_list is not None and p_list is not None:
        same = {_key(v) for v in g_list} == {_key(v) for v in p_list}
        return True if same and not _with_i(g_list) else None
    g_sequence, p_sequence = _sequence(gold), _sequence(predicted)
    if g_sequence is None or p_sequence is None or g_sequence[0] != p_sequence[0]:
        return None
    if (
        len(g_sequence[1]) == len(p_sequence[1])
        and all(a is not None and a == b for a, b in zip(g_sequence[1], p_sequence[1]))
        and not _with_i(g_sequence[1])
    ):
        return True
    return None
