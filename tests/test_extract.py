"""extract_answer: the final answer of a completion, found in linear time."""

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from satori_env import extract_answer


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"so $x = \boxed{\frac{1}{\sqrt{2}}}$.", r"\frac{1}{\sqrt{2}}"),
        (r"\boxed{3} and then \boxed{4}", "4"),
        (r"<|continue|>\boxed{7}<|reflect|>check<|explore|>\boxed{8}", "8"),
        (r"\boxed{1} then a truncated \boxed{2", "1"),  # the last *balanced* box
        (r"\boxed{\{1,2\}}", r"\{1,2\}"),  # escaped braces are characters, not groups
        (r"\boxed{\left\{ x \right.}", r"\left\{ x \right."),
        (r"\fbox{12}", "12"),
        (r"\boxed {3}", "3"),
        (r"\boxed{ 5 }", "5"),
        (r"\boxed{}", ""),
        (r"\boxed{a}\fbox{b}", "b"),
        (r"The answer is \boxed{2}. The answer is 3.", "2"),  # a box beats the text markers
        ("Adding up, the answer is 42.", "42"),
        ("The answer is: $\\frac{1}{2}$.", r"\frac{1}{2}"),
        ("the answer is 3.5. Done", "3.5"),
        ("The final answer is 7\nmore text", "7"),
        ("the answer is 5<|reflect|> no, it is 6", "5"),
        ("THE ANSWER IS 9", "9"),
        ("the answer is 4, and the answer is 6", "6"),
        ("Janet sells 9 eggs.\n#### 18", "18"),
        ("#### 1,000", "1,000"),
        ("So the answer is <<8=8>>8\n#### 8", "8"),  # the later marker wins
        ("#### 8\nIn short, the answer is 9", "9"),
        ("no final answer: 18", None),
        ("", None),
        ("the answer is", None),
        ("\\boxed{unclosed", None),
    ],
)
def test_extraction_cases(text, expected):
    assert extract_answer(text) == expected


def test_non_string_is_a_type_error():
    with pytest.raises(TypeError, match="expects a str"):
        extract_answer(None)  # type: ignore[arg-type]


simple_answer = st.text(alphabet="0123456789abcxyz+-*/^(). ", min_size=1, max_size=20)
balanced = st.recursive(
    simple_answer, lambda inner: st.builds(lambda a, b: f"{a}{{{b}}}", simple_answer, inner), max_leaves=5
)
plain_text = st.text(alphabet=st.characters(blacklist_characters="{}\\", blacklist_categories=("Cs",)), max_size=50)


@settings(max_examples=300, deadline=None)
@given(prefix=st.lists(st.tuples(plain_text, balanced), max_size=3), answer=balanced, suffix=plain_text)
def test_last_box_wins_whatever_comes_before(prefix, answer, suffix):
    text = "".join(f"{t}\\boxed{{{a}}}" for t, a in prefix) + f"\\boxed{{{answer}}}" + suffix
    assert extract_answer(text) == answer.strip()


@pytest.mark.parametrize(
    "text",
    [
        "x" * 2_000_000,
        "{" * 1_000_000 + "}" * 1_000_000,
        r"\boxed{" * 200_000,
        r"\boxed{" + "{" * 1_000_000,
        "the answer is " * 100_000,
        "}" * 1_000_000 + r"\boxed{1}",
    ],
    ids=["letters", "braces", "open-boxes", "unclosed-box", "markers", "closers"],
)
def test_megabyte_inputs_take_linear_time(text):
    start = time.perf_counter()
    extract_answer(text)
    assert time.perf_counter() - start < 1.0
