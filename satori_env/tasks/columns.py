"""Written (column) arithmetic: one step of a solution as single-digit facts with carries.

A tiny model cannot learn ``58+64=122`` in one shot from a few minutes of examples, but it can
learn the hundred single-digit facts and the carrying, so a procedural solution step shows its
work, least significant column first (long division: most significant first)::

    58+64: 8+4=12, 5+6+1=12, so 58+64=122
    63-59: 13-9=4, 6-5-1=0, so 63-59=4
    122*5: 2*5=10, 2*5+1=11, 1*5+1=6, so 122*5=610
    126/3: 1/3=0 r1, 12/3=4, 6/3=2, so 126/3=42

``work(a, op, b, slip=(column, delta))`` can also write one column wrong (and carry on from the
wrong value), which is how demonstrations get a slip for a reflection to find. Multipliers of
two digits (level 6) are written in one go.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Column", "Work", "work"]


@dataclass(frozen=True)
class Column:
    """One written fact: what was written, and the right fact for the same inputs."""

    written: str
    right: str

    @property
    def ok(self) -> bool:
        return self.written == self.right


@dataclass(frozen=True)
class Work:
    """A worked step: its columns and the result they lead to."""

    a: int
    op: str
    b: int
    columns: tuple[Column, ...]
    result: int

    @property
    def text(self) -> str:
        """``"58+64: 8+4=12, 5+6+1=12, so 58+64=122"`` (or ``"58*12=696"`` without columns)."""
        head = f"{self.a}{self.op}{self.b}"
        if not self.columns:
            return f"{head}={self.result}"
        return f"{head}: " + ", ".join(c.written for c in self.columns) + f", so {head}={self.result}"

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.columns)


def _digits(n: int) -> list[int]:
    """Least significant first."""
    return [int(d) for d in reversed(str(n))]


def _number(digits_low_first: list[int]) -> int:
    return int("".join(str(d) for d in reversed(digits_low_first)) or "0")


def work(a: int, op: str, b: int, slip: tuple[int, int] | None = None) -> Work:
    """Work out ``a op b`` column by column; ``slip=(column, delta)`` writes that column's value
    off by ``delta`` (the following columns are right given the wrong one)."""
    if op == "+":
        return _add(a, b, slip)
    if op == "-":
        return _subtract(a, b, slip)
    if op == "*":
        return _multiply(a, b, slip)
    if op == "/":
        return _divide(a, b, slip)
    raise ValueError(f"unknown operation {op!r}; valid: + - * /")


def _off(index: int, slip: tuple[int, int] | None) -> int:
    return slip[1] if slip is not None and slip[0] == index else 0


def _slipped(right: int, delta: int, top: int | None = None) -> int:
    """``right + delta``, or ``right - delta`` where that would leave 0..top."""
    value = right + delta
    return value if 0 <= value and (top is None or value <= top) else right - delta


def _carry_through(a: int, op: str, b: int, bases: list[tuple[str, int]], slip) -> Work:
    """Columns whose value is ``base + carry`` (addition, multiplication by a digit)."""
    columns, digits, carry = [], [], 0
    for i, (expression, base) in enumerate(bases):
        expression += f"+{carry}" if carry else ""
        right = base + carry
        value = _slipped(right, _off(i, slip))
        columns.append(Column(f"{expression}={value}", f"{expression}={right}"))
        digits.append(value % 10)
        carry = value // 10
    if carry:
        digits += _digits(carry)
    return Work(a, op, b, tuple(columns), _number(digits))


def _add(a: int, b: int, slip) -> Work:
    da, db = _digits(a), _digits(b)
    pairs = [(da[i] if i < len(da) else 0, db[i] if i < len(db) else 0) for i in range(max(len(da), len(db)))]
    return _carry_through(a, "+", b, [(f"{x}+{y}", x + y) for x, y in pairs], slip)


def _subtract(a: int, b: int, slip) -> Work:
    da, db = _digits(a), _digits(b)
    columns, digits, borrow = [], [], 0
    for i in range(len(da)):
        x, y = da[i], (db[i] if i < len(db) else 0)
        borrow_next = 1 if x - y - borrow < 0 else 0
        top = x + 10 * borrow_next
        expression = f"{top}-{y}" + (f"-{borrow}" if borrow else "")
        right = top - y - borrow
        value = _slipped(right, _off(i, slip), top=9)
        columns.append(Column(f"{expression}={value}", f"{expression}={right}"))
        digits.append(value)
        borrow = borrow_next
    return Work(a, "-", b, tuple(columns), _number(digits))


def _multiply(a: int, b: int, slip) -> Work:
    if b > 9:  # two-digit multipliers: written in one go
        return Work(a, "*", b, (), a * b + (slip[1] if slip else 0))
    return _carry_through(a, "*", b, [(f"{x}*{b}", x * b) for x in _digits(a)], slip)


def _divide(a: int, b: int, slip) -> Work:
    columns, quotient, remainder = [], [], 0
    for i, x in enumerate(str(a)):
        current = remainder * 10 + int(x)
        right_q, remainder = divmod(current, b)
        q = _slipped(right_q, _off(i, slip), top=9)
        tail = f" r{remainder}" if remainder else ""
        columns.append(Column(f"{current}/{b}={q}{tail}", f"{current}/{b}={right_q}{tail}"))
        quotient.append(q)
    return Work(a, "/", b, tuple(columns), int("".join(str(q) for q in quotient)))
