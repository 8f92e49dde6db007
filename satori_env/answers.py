"""Answers in completions, as pure functions: extraction of the final answer, and the exact
verdict on plain numbers and fractions that needs no checker process.

* :func:`extract_answer` finds the *final* answer of a completion (the last ``\\boxed{}``).
* :func:`fast_verdict` decides equivalence in-process when both answers are plain numbers,
  fractions of integers or closed forms (:mod:`satori_env.exact_values`), or the same string; otherwise it says None and
  :class:`satori_env.verifier.Verifier` asks math-verify in a worker process.
"""

from __future__ import annotations

import re
from fractions import Fraction

from satori_env.exact_values import closed_form_verdict

__all__ = ["extract_answer", "fast_verdict", "plain_number"]

# ----------------------------------------------------------------------------------------------
# Extraction
# ----------------------------------------------------------------------------------------------

_BOX_OPEN = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BRACE = re.compile(r"[{}]")
# Where a one-line "The answer is ..." stops: end of line, a sentence end, or a COAT token.
_ANSWER_END = re.compile(r"\n|\.\s|<\|")


def _last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{..}`` / ``\\fbox{..}`` whose braces balance, else None.

    Braces are matched scanning backwards from the end of the text, so the usual case (a box
    near the end) costs only the tail; the worst case is linear. Escaped braces (``\\{``) are
    literal characters, not groups.
    """
    box_braces = {m.end() - 1 for m in _BOX_OPEN.finditer(text)}
    if not box_braces:
        return None
    n = len(text)
    closers: list[int] = []  # positions of unmatched '}' seen so far (nearest last)
    for m in _BRACE.finditer(text[::-1]):
        pos = n - 1 - m.start()
        if pos > 0 and text[pos - 1] == "\\":
            continue
        if text[pos] == "}":
            closers.append(pos)
        elif closers:
            close = closers.pop()
            if pos in box_braces:
                return text[pos + 1 : close].strip()
    return None


def _strip_math_delimiters(answer: str) -> str:
    answer = answer.strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if len(answer) >= len(left) + len(right) and answer.startswith(left) and answer.endswith(right):
            answer = answer[len(left) : len(answer) - len(right)].strip()
            break
    return answer


_MARKER = re.compile(r"answer is|####", re.IGNORECASE)


def _after_last_marker(text: str) -> str | None:
    """What follows the last "answer is" or "####" (whichever is later), up to the end of the
    line, a sentence end or a COAT token."""
    last = None
    for match in _MARKER.finditer(text):
        last = match
    if last is None:
        return None
    tail = text[last.end() :]
    end = _ANSWER_END.search(tail)
    answer = tail[: end.start()] if end else tail
    answer = _strip_math_delimiters(answer.strip().lstrip(":").strip().rstrip("."))
    return answer or None


def extract_answer(text: str) -> str | None:
    """Return the final answer written in ``text``, or None when there is none.

    In order of preference: the content of the **last** ``\\boxed{...}`` (or ``\\fbox{...}``)
    with balanced braces; else what follows the last "The answer is" or GSM8K-style
    ``#### `` (whichever comes later), up to the end of its line or sentence. The *last* one
    matters: a COAT trajectory may box an answer, ``<|reflect|>``, and box a corrected one.

    >>> extract_answer(r"so $x=\\boxed{\\frac{1}{2}}$. <|reflect|> wrong: $x=\\boxed{2}$")
    '2'
    >>> extract_answer("Adding up, the answer is 42.")
    '42'
    """
    if not isinstance(text, str):
        raise TypeError(f"extract_answer expects a str, got {type(text).__name__}")
    boxed = _last_boxed(text)
    return boxed if boxed is not None else _after_last_marker(text)


# ----------------------------------------------------------------------------------------------
# In-process fast path for plain numbers
# ----------------------------------------------------------------------------------------------

_PLAIN_NUMBER = re.compile(
    r"""^(?P<sign>[-+\u2212]?)\s*(?:\\?\$)?\s*                  # sign, optional currency sign
    (?P<int>\d{1,3}(?:,\d{3})+|\d+)?(?P<frac>\.\d+)?\.?          # 1,234.5 / 1234 / .5 / 104.
    \s*(?:\\?\$)?\s*(?P<unit>(?:[A-Za-z]{2,}[.\s]+)*(?:[A-Za-z]{2,}\.?)?)\s*$  # trailing unit words
    """,
    re.VERBOSE | re.ASCII,  # ASCII digits only: math-verify reads Arabic-Indic or fullwidth digits as text
)
# Each unit word ends at a separator (or the end), so a run of letters splits into words one way
# only: matching is linear, where "(?:\s*[A-Za-z]{2,})*" backtracks exponentially on letter soup.
# Whole-answer wrappers that carry no mathematics: \text{18}, \textbf{(073)}, \mathbf{5}.
_WRAPPER = re.compile(r"^\\(?:text|textbf|mathbf|mathrm|mbox|boxed|fbox)\s*\{(?P<inner>.*)\}$", re.DOTALL)
# Trailing words that change the value, so are not units: "3 pi" is not "3", "50 percent" may be 0.5.
_NOT_UNITS = frozenset(
    "pi sqrt ln log exp sin cos tan sec csc cot mod and or times cdot div frac infty inf "
    "percent pct percentage dozen hundred thousand million billion trillion half thirds quarters".split()
)
_MAX_FAST_DIGITS = 60  # longer numbers go to the worker (and its timeout)
# A fraction of integers: \frac{3}{4}, \dfrac{-3}{4}, -\tfrac34 is not (no braces: left to math-verify), 3/4.
_FRACTION = re.compile(
    r"^(?P<sign>[-+]?)\s*(?:\\[dt]?frac\s*\{\s*(?P<num>[-+]?\d+)\s*\}\s*\{\s*(?P<den>\d+)\s*\}"
    r"|(?P<snum>\d+)\s*/\s*(?P<sden>\d+))$",
    re.ASCII,
)


def _braces_balance(text: str) -> bool:
    depth = 0
    for char in text:
        depth += (char == "{") - (char == "}")
        if depth < 0:
            return False
    return depth == 0


def _unwrap(answer: str) -> str:
    """Strip wrappers that enclose the whole answer, math delimiters, LaTeX thin spaces, and
    parentheses around a lone value: ``\\textbf{(073)}`` -> ``073``."""
    answer = answer.strip()
    while (match := _WRAPPER.match(answer)) and _braces_balance(match["inner"]):
        answer = _strip_math_delimiters(match["inner"])
    answer = answer.replace("{,}", ",").replace("\\,", "").replace("\\!", "")
    if answer.startswith("(") and answer.endswith(")") and "," not in answer:
        answer = answer[1:-1].strip()
    return answer


def plain_number(answer: str) -> tuple[Fraction, bool] | None:
    """``(value, is_integer)`` when ``answer`` is a plain number like "1,000", "$18.50",
    "18 dollars" or ``\\textbf{(073)}``; None for anything else (fractions, LaTeX,
    percentages, expressions)."""
    if len(answer) > 200:
        return None
    match = _PLAIN_NUMBER.match(_unwrap(answer))
    if match is None or not (match["int"] or match["frac"]):
        return None
    if any(word.rstrip(".").lower() in _NOT_UNITS for word in match["unit"].split()):
        return None
    digits = (match["int"] or "0").replace(",", "") + (match["frac"] or "")
    if len(digits) > _MAX_FAST_DIGITS:
        return None
    value = Fraction(digits)
    return (-value if match["sign"] in ("-", "\u2212") else value), not match["frac"]


def exact_fraction(answer: str) -> Fraction | None:
    """The value of a fraction of integers written as ``\\frac{p}{q}`` (``\\dfrac``,
    ``\\tfrac``, a sign before it or in the numerator) or ``p/q``; None for anything else."""
    answer = _unwrap(answer)
    if len(answer) > 200:
        return None
    match = _FRACTION.match(answer)
    if match is None:
        return None
    numerator, denominator = (
        (match["num"], match["den"]) if match["num"] is not None else (match["snum"], match["sden"])
    )
    if len(numerator) + len(denominator) > _MAX_FAST_DIGITS or int(denominator) == 0:
        return None
    value = Fraction(int(numerator), int(denominator))
    return -value if match["sign"] == "-" else value


def _exact_value(answer: str) -> tuple[Fraction, bool] | None:
    """``(value, is_integer)`` of a plain number or a fraction of integers (is_integer False)."""
    number = plain_number(answer)
    if number is not None:
        return number
    fraction = exact_fraction(answer)
    return None if fraction is None else (fraction, False)


def fast_verdict(gold: str, predicted: str) -> bool | None:
    """Decide cheaply when the answer is certain; None means "ask math-verify".

    It decides only plain numbers in ASCII digits, fractions of integers (``\\frac{3}{4}``,
    ``3/4``), closed forms with square roots and pi (``2\\sqrt{5}``, ``\\frac{\\pi}{3}``),
    polynomials, tuples, intervals and lists of those (:mod:`satori_env.exact_values`) and
    identical strings, and never contradicts math-verify where math-verify reads
    both answers as numbers (a property test compares them): unequal values within math-verify's
    rounding tolerance (6 places) are left to it. It also accepts forms math-verify reads as text
    ("18 dollars", "104.").
    """
    if gold.strip() == predicted.strip():
        return bool(gold.strip())  # an empty answer never matches
    gold_number, predicted_number = _exact_value(gold), _exact_value(predicted)
    if gold_number is None or predicted_number is None:
        return closed_form_verdict(_unwrap(gold), _unwrap(predicted))
    (g, g_int), (p, p_int) = gold_number, predicted_number
    if g == p:
        return True
    if (g_int and p_int) or abs(g - p) > Fraction(1, 10**5):
        return False
    return None
