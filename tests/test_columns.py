"""Written (column) arithmetic: right results, honest columns, and slips that are exactly one wrong fact."""

import operator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from satori_env.tasks.columns import work

OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.floordiv}


@pytest.mark.parametrize(
    "a, op, b, text",
    [
        (58, "+", 64, "58+64: 8+4=12, 5+6+1=12, so 58+64=122"),
        (15, "+", 5, "15+5: 5+5=10, 1+0+1=2, so 15+5=20"),
        (63, "-", 59, "63-59: 13-9=4, 6-5-1=0, so 63-59=4"),
        (100, "-", 1, "100-1: 10-1=9, 10-0-1=9, 1-0-1=0, so 100-1=99"),
        (122, "*", 5, "122*5: 2*5=10, 2*5+1=11, 1*5+1=6, so 122*5=610"),
        (126, "/", 3, "126/3: 1/3=0 r1, 12/3=4, 6/3=2, so 126/3=42"),
        (58, "*", 12, "58*12=696"),
    ],
)
def test_worked_steps(a, op, b, text):
    assert work(a, op, b).text == text


@st.composite
def operations(draw):
    op = draw(st.sampled_from("+-*/"))
    b = draw(st.integers(1, 12 if op in "*/" else 9999))
    a = draw(st.integers(0, 99999))
    if op == "-":
        a, b = max(a, b), min(a, b)
    if op == "/":
        a -= a % b
    return a, op, b


@settings(max_examples=500, deadline=None)
@given(operations(), st.integers(0, 10), st.sampled_from([-1, 1]))
def test_results_are_exact_and_a_slip_is_one_wrong_fact(operation, column, delta):
    a, op, b = operation
    step = work(a, op, b)
    assert step.result == OPS[op](a, b) and step.ok
    if step.columns:
        slipped = work(a, op, b, slip=(column % len(step.columns), delta))
        assert [c.ok for c in slipped.columns].count(False) == 1
        assert slipped.result != step.result


def test_unknown_operation():
    with pytest.raises(ValueError, match="unknown operation '%'"):
        work(5, "%", 2)
