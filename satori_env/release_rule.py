"""The answer rule of Satori's release (``satori-reasoning/Satori``, ``openrlhf/eval_src``), written
anew from its description, so that results can be compared with the paper's.

The release reads the response differently from :mod:`satori_env.answers`:

* only the **last 128 characters** are read; the answer is the last ``\\boxed{...}`` there
  (braces matched), its content taken by a greedy ``\\boxed\\{(.*)\\}`` that does not cross a
  line break (a box with a newline inside, or an ``\\fbox``, gives no answer);
* **GSM8K** answers are equal when both read as numbers with the same ``float`` value (no
  tolerance);
* every other answer (its MATH checker, from Xwin-Math / ToRA) is equal when, after lower-casing
  and dropping ``$``, ``\\%``, degree marks and ``\\left``/``\\right``: the strings match without
  spaces and commas (or one, wrapped in brackets, contains the other; or, with no digit in
  either, they match without brackets); or a percentage converted to a fraction, the single
  number each contains, or the whole string compares equal as a number (integers exactly,
  decimals, ``\\frac{a}{b}`` and ``\\sqrt[n]{a}`` within 0.1 %, ``a_b`` in base b); or the two
  parse to expressions whose difference simplifies to 0. Both orders are tried; any error is
  a wrong answer.

Two deliberate differences: LaTeX is parsed with ``latex2sympy2_extended`` (math-verify's
parser) where the release calls sympy's ``parse_latex``, and text is never handed to
``sympy.parse_expr`` / ``sympify`` (they ``eval`` it, and a completion is untrusted), which the
release falls back to. This module imports nothing from ``satori_env``: the verifier's worker
processes load it by path and run the symbolic step under their time and memory limits.
"""

from __future__ import annotations

import math
import re
import unicodedata
from itertools import permutations

__all__ = ["WINDOW", "extract", "fast_equal", "gsm8k_equal", "math_equal"]

WINDOW = 128  # characters of the end of the text the release reads

# -- extraction -----------------------------------------------------------------------------------

_BOX_CONTENT = re.compile(r"\\boxed\{(.*)\}")  # greedy, no re.S: a line break inside ends the match


def extract(text: str, window: int = WINDOW) -> str | None:
    """The release's answer: the content of the last ``\\boxed{}`` in the last ``window``
    characters of ``text`` (None when there is none, it does not close, or it is empty)."""
    tail = text[-window:]
    start = tail.rfind("\\boxed")
    if start < 0:
        start = tail.rfind("\\fbox")
        if start < 0:
            return None
    depth = 0
    for index in range(start, len(tail)):
        if tail[index] == "{":
            depth += 1
        elif tail[index] == "}":
            depth -= 1
            if depth == 0:
                found = _BOX_CONTENT.findall(tail[start : index + 1])
                return found[-1] or None if found else None
    return None


# -- GSM8K ----------------------------------------------------------------------------------------


def _as_number(text: str) -> str | None:
    try:
        return str(float(text))
    except (ValueError, OverflowError):
        pass
    try:
        return str(unicodedata.numeric(text))
    except (TypeError, ValueError):
        return None


def gsm8k_equal(answer: str, gold: str) -> bool:
    """The release's GSM8K checker: both numbers, the same float."""
    a, b = _as_number(answer), _as_number(gold)
    return a is not None and b is not None and a == b


# -- the MATH checker -------------------------------------------------------------------------------

_NORMALIZE = [
    ("\\$", ""), ("$", ""), ("\\%", "%"), ("\\dfrac", "\\frac"), ("^\\circ", ""), ("^{\\circ}", ""), ("\u03c0", "\\pi"),
    ("{,}", ""), ("\u00b0", ""), ("\\left(", "("), ("\\right)", ")"), ("\\left[", "["), ("\\right]", "]"), (", ", ","),
    (" ,", ","),
]  # fmt: skip
_NUMBER = re.compile(
    r"\$(.*?)\$"  # a $...$ span, as one item
    r"|([-\d]\d*e[-\d]\d*)"  # scientific
    r"|([-\d]\d*/\d+)"  # fraction
    r"|((?:[-\d]\d*)?\.\d+)"  # decimal
    r"|([+-]?\d{1,3}(?!\d)(?:,\d{3}(?!\d))+)(?!,)"  # 1,234,567
    r"|([-\d]\d*)",  # integer (a lone "-" counts, as in the release's grammar)
    re.S,
)
_PERCENT = re.compile(r"(\d+\.?\d*)%")
_BASE = re.compile(r"(\d+)_\{?(\d+)\}?")
_FRAC = re.compile(r"^\\frac\{(-?\d+)\}\{(-?\d+)\}")
_SQRT = re.compile(r"^\\sqrt(?:\[(\d+)\])?\{(-?\d+)\}")
_PLAIN = re.compile(r"-?\d+(?:\.\d+)?")
_OUTER = [
    ("\\left(", "\\right)"),
    ("(", ")"),
    ("\\left[", "\\right]"),
    ("[", "]"),
    ("\\left\\{", "\\right\\}"),
    ("{", "}"),
]


def _normalize(text: str) -> str:
    for old, new in _NORMALIZE:
        text = text.replace(old, new)
    return text.lower()


def _trim(text: str) -> str:
    return text.strip(" \n").rstrip(".").strip(" \n").rstrip(".")


def _group_end(text: str, brace: int) -> int | None:
    depth = 0
    for index in range(brace, len(text)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            return index
    return None


def _unbox(text: str) -> str:
    """``\\box``, ``\\boxed``, ``\\mbox`` and ``\\text`` groups replaced by their content."""
    for command in ("\\box", "\\boxed", "\\mbox", "\\text"):
        while (start := text.find(command)) >= 0:
            brace = text.find("{", start)
            end = _group_end(text, brace) if brace >= 0 else None
            if end is None:
                break
            text = text[:start] + text[brace + 1 : end] + text[end + 1 :]
    return text


def _drop_text(text: str) -> str:
    """``\\text{...}`` and ``\\mbox{...}`` groups removed with their content (and a ``^digit``)."""
    out, index = [], 0
    while index < len(text):
        command = next((c for c in ("\\text", "\\mbox") if text.startswith(c, index)), None)
        brace = index + len(command) if command else -1
        while command and brace < len(text) and text[brace] == " ":
            brace += 1
        end = _group_end(text, brace) if command and brace < len(text) and text[brace] == "{" else None
        if end is None:
            out.append(text[index])
            index += 1
            continue
        index = end + 1
        if text[index : index + 1] == "^" and text[index + 1 : index + 2].isdigit():
            index += 2
    return "".join(out)


def _numbers(text: str) -> list[str]:
    return [next(group for group in match.groups() if group is not None) for match in _NUMBER.finditer(text)]


def _has_structure(text: str) -> bool:
    return any(char in text for char in "()[]\\<>,xyz")


def _literal_equal(answer: str, gold: str) -> bool:
    a, b = (s.replace(",", " ").replace(" ", "") for s in (answer, gold))
    if a == b:
        return True
    for outer, inner in permutations([a, b]):
        for left, right in ("()", "[]", "{}"):
            if outer.startswith(left) and outer.endswith(right) and inner in outer:
                return True
    if not any(char.isdigit() for char in answer + gold):
        return a.strip("[]() ") == b.strip("[]() ")
    return False


def _as_int(text: str) -> int | None:
    try:
        value = float(text)
        whole = int(value)
    except (ValueError, OverflowError):
        return None
    return whole if math.isclose(whole, value, rel_tol=1e-9) else None


def _as_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _latex_number(text: str) -> float | None:
    for left, right in _OUTER:
        if text.startswith(left) and text.endswith(right):
            text = text[len(left) : len(text) - len(right)].strip()
            break
    value = _as_float(text)
    if value is not None:
        return value
    if text.startswith("\\frac{") and "}{" in text and text.endswith("}") and (match := _FRAC.match(text)):
        return int(match.group(1)) / int(match.group(2))
    if text.startswith("\\sqrt") and text.endswith("}") and (match := _SQRT.match(text)):
        return int(match.group(2)) ** (1 / (int(match.group(1)) if match.group(1) else 2))
    return None


def _numerically_equal(a: str, b: str) -> bool | None:
    ints = _as_int(a), _as_int(b)
    if None not in ints:
        return ints[0] == ints[1]
    floats = _as_float(a), _as_float(b)
    if None not in floats:
        return math.isclose(floats[0], floats[1], rel_tol=1e-3)
    bases = [_BASE.match(s) for s in (a, b)]
    if all(bases):
        return int(bases[0].group(1), int(bases[0].group(2))) == int(bases[1].group(1), int(bases[1].group(2)))
    values = _latex_number(a), _latex_number(b)
    if None not in values:
        return math.isclose(values[0], values[1], rel_tol=1e-3)
    return None


def _parse(text: str):
    from latex2sympy2_extended import latex2sympy

    try:
        return latex2sympy(text)
    except Exception:  # noqa: BLE001 - not LaTeX it can read
        return None


def _symbolically_equal(a: str, b: str) -> bool | None:
    """The two parse to expressions whose difference simplifies to 0 (None: cannot tell)."""
    import sympy

    first, second = _parse(a), _parse(b)
    if first is None or second is None:
        return None
    try:
        if first == second or sympy.simplify(first - second) == 0:
            return True
    except Exception:  # noqa: BLE001 - not comparable (sets, relations, ...)
        return None
    return False if first.is_number else None  # the release: a number that is not equal is wrong


def _strip_equation(text: str) -> str:
    if text.count("=") == 1:
        left, right = text.split("=")
        return left if _trim(right) == "0" and len(_trim(left)) >= 2 else right
    return text


def _number_equal(answer: str, gold: str) -> bool | None:
    if "," in answer or "," in gold:
        return None
    answer, gold = _trim(_strip_equation(answer)), _trim(_strip_equation(gold))
    verdict = _numerically_equal(answer, gold)
    return verdict if verdict is not None else _symbolically_equal(answer, gold)


def _percent_to_fraction(text: str) -> str:
    return _PERCENT.sub(lambda m: str(float(m.group(1)) / 100), text)


def _equal_once(answer: str, gold: str) -> bool:
    if not answer:
        return False
    answer, gold = _normalize(answer), _normalize(gold)
    if _literal_equal(_trim(_unbox(answer)), _trim(_unbox(gold))):
        return True
    if "%" in answer or "%" in gold:
        answers = [_percent_to_fraction(answer) if "%" in answer else answer, answer]
        golds = [_percent_to_fraction(gold) if "%" in gold else gold, gold]
        if any(_number_equal(x, y) for x in answers for y in golds):
            return True
    found = _numbers(answer)
    gold = gold if gold.startswith("$") else "$" + gold
    gold = gold if gold.endswith("$") else gold + "$"
    expected = _numbers(gold)
    if (
        len(found) == 1
        and len(expected) == 1
        and not _has_structure(answer.replace(found[0], ""))
        and not _has_structure(gold.replace(expected[0], ""))
    ):
        if _number_equal(_trim(_unbox(_drop_text(found[0]))), _trim(_unbox(_drop_text(expected[0])))) is True:
            return True
    return _number_equal(_trim(answer), _trim(gold)) is True


def _latex_equal(answer: str, gold: str) -> bool:
    candidates = [answer]
    for conjunction in ("\\text{ or }", "\\text{ and }"):
        if conjunction in answer:
            for order in permutations(answer.split(conjunction)):
                joined = " , ".join(order)
                if joined not in candidates:
                    candidates.append(joined)
            break
    return any(_equal_once(candidate, gold) for candidate in candidates)


def _math_equal_one_way(answer: str, gold: str) -> bool:
    if answer == "" or gold == "":
        return False
    answer, gold = answer.strip(), gold.strip()
    if answer.lower() == gold.lower():
        return True
    try:
        return _latex_equal(answer, gold)
    except Exception:  # noqa: BLE001 - the release counts any error as wrong
        return False


def math_equal(answer: str, gold: str) -> bool:
    """The release's MATH checker, both orders."""
    return _math_equal_one_way(answer, gold) or _math_equal_one_way(gold, answer)


def fast_equal(answer: str, gold: str) -> bool | None:
    """:func:`math_equal` decided without sympy when both are plain numbers (else None)."""
    if _PLAIN.fullmatch(answer.strip()) and _PLAIN.fullmatch(gold.strip()):
        return math_equal(answer, gold)
    return None
