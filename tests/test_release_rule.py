"""Satori's release's answer rule (satori_env.release_rule, Verifier(rule="satori-release")): where
it reads the answer, what it accepts that math-verify does not and the reverse, and the env
argument that switches to it."""

import pytest

from satori_env import Problem, SatoriMathEnv
from satori_env.release_rule import extract, gsm8k_equal, math_equal
from satori_env.verifier import Verifier, rule_verifier

FILLER = "Let us check every step once more before answering. " * 4  # 208 characters


def test_the_answer_is_the_last_box_of_the_last_128_characters():
    assert extract("so \\boxed{\\frac{1}{2}} and done") == "\\frac{1}{2}"
    assert extract("\\boxed{1} then \\boxed{2}") == "2"
    assert extract("\\boxed{7}" + FILLER) is None  # 208 characters after it: outside the window
    assert extract("\\boxed{7}" + FILLER, window=10_000) == "7"
    assert extract("\\boxed{a\nb}") is None  # the release's pattern does not cross a line break
    assert extract("\\fbox{3}") is None and extract("\\boxed{}") is None and extract("\\boxed{3") is None
    assert extract("\\boxed{\\{1,2\\}}") == "\\{1,2\\}"


@pytest.mark.parametrize(
    "answer, gold",
    [
        ("1000.5", "1000"),  # numbers within 0.1 %
        ("(1,2)", "1"),  # a bracketed answer that contains the gold
        ("50\\%", "0.5"),
        ("\\frac{1}{2}", "0.5"),
        ("\\text{Evelyn}", "evelyn"),
        ("x^2+2x+1", "(x+1)^2"),
        ("x = 5", "5"),
        ("\\dfrac{3}{4}", "0.75"),
    ],
)
def test_what_the_math_checker_accepts(answer, gold):
    assert math_equal(answer, gold)


@pytest.mark.parametrize(
    "answer, gold", [("3", "4"), ("1001.5", "1000"), ("x^2", "(x+1)^2"), ("", "1"), ("(3,4)", "(3,5)"), ("12_3", "5")]
)
def test_what_the_math_checker_rejects(answer, gold):
    assert not math_equal(answer, gold)


def test_gsm8k_numbers_are_compared_exactly():
    assert gsm8k_equal("18.0", "18") and gsm8k_equal("18", "18")
    assert not gsm8k_equal("1000.5", "1000") and not gsm8k_equal("18 apples", "18")


def test_the_release_verifier_differs_from_math_verify_where_the_rules_do():
    release, default = Verifier(rule="satori-release", workers=1), Verifier(workers=1)
    try:
        late = "\\boxed{7}" + FILLER
        assert default.check(late, "7").correct and release.check(late, "7").status == "no_answer"
        assert release.check("\\boxed{1000.5}", "1000").correct and not default.check("\\boxed{1000.5}", "1000").correct
        assert release.check("so \\boxed{x^2+2x+1}", "(x+1)^2").correct  # the symbolic step, in a worker
        gsm8k = Problem("g/1", "q", "1000", "gsm8k:test")
        math = Problem("m/1", "q", "1000", "math500")
        verdicts = release.check_problems(["\\boxed{1000.5}"] * 2, [gsm8k, math])
        assert [v.correct for v in verdicts] == [False, True]  # GSM8K's checker is exact, MATH's is not
    finally:
        release.close()
        default.close()
    with pytest.raises(
        ValueError, match="unknown answer rule 'sympy'; valid rules: \\['math-verify', 'satori-release'\\]"
    ):
        Verifier(rule="sympy")


def test_an_env_judges_by_the_rule_it_is_given():
    problem = Problem("m/1", "What is 3+4?", "7", "math500")
    completion = "<|continue|>3+4=7, so \\boxed{7}.<|continue|>" + FILLER
    verdicts = {}
    for rule in (None, "satori-release"):
        env = SatoriMathEnv(tasks=[problem], max_new_tokens=256, verifier=rule)
        env.reset(seed=0)
        ids = env.tokenizer.encode(completion, add_special_tokens=False) + [env.tokenizer.eos_token_id]
        *_, info = env.step_tokens(ids)
        verdicts[rule] = info["correct"]
    assert verdicts == {None: True, "satori-release": False}  # the box is 210 characters from the end
    assert SatoriMathEnv(verifier="satori-release").verifier is rule_verifier("satori-release")
    with pytest.raises(ValueError, match="unknown answer rule"):
        SatoriMathEnv(verifier="exact")
