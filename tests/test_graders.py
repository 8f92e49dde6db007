"""The out-of-domain answer rules (satori_env.graders): every benchmark's gold answers, boxed as a
model writes them, are right; near misses are wrong; the envs judge those problems by their rule
and everything else as math."""

import ast

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from satori_env import Problem, SatoriMathEnv, SatoriMathVectorEnv, load_problems
from satori_env.graders import GRADERS, grade, judge
from satori_env.verifier import default_verifier

OOD = ("folio", "strategyqa", "cruxeval_o", "tablebench", "mmlu_pro_stem")


def _problem(rule: str, gold: str) -> Problem:
    return Problem("t/0", "q", gold, "test", None, {"grader": rule})


def _correct(completion: str, rule: str, gold: str) -> bool:
    return grade(completion, _problem(rule, gold)).correct


@pytest.mark.parametrize("source", OOD)
def test_every_gold_answer_boxed_as_a_model_writes_it_is_right(source):
    problems = load_problems(source)
    assert len(problems) == {"folio": 203, "strategyqa": 2290, "cruxeval_o": 800, "tablebench": 493,
                             "mmlu_pro_stem": 5371}[source]  # fmt: skip
    for problem in problems:
        assert grade(f"... so the final answer is \\boxed{{{problem.answer}}}.", problem).correct, problem.id
    text = {"folio": "\\text{{{}}}", "strategyqa": "\\text{{{}}}", "mmlu_pro_stem": "({})"}.get(source)
    if text is not None:  # the LaTeX a model wraps a label or letter in
        assert all(grade(f"\\boxed{{{text.format(p.answer)}}}", p).correct for p in problems)


def test_labels_read_as_words_not_prefixes():
    assert _correct("\\boxed{yes}", "strategyqa", "True") and _correct("\\boxed{No.}", "strategyqa", "False")
    assert _correct("\\boxed{\\textbf{unknown}}", "folio", "Uncertain") and _correct("\\boxed{proved}", "folio", "True")
    assert not _correct("\\boxed{True}", "folio", "False")
    assert not _correct("\\boxed{not sure}", "folio", "Uncertain")  # rStar's prefix rule would say False
    assert not _correct("\\boxed{T}", "folio", "True") and not _correct("\\boxed{uncertain}", "strategyqa", "False")
    assert not _correct("\\boxed{Uncertain}", "strategyqa", "True")  # StrategyQA has two labels
    assert grade("True, I think.", _problem("folio", "True")).status == "no_answer"


def test_cruxeval_compares_values_without_running_code():
    assert _correct("\\boxed{[1,2,  3]}", "cruxeval", "[1, 2, 3]") and _correct("\\boxed{(1,)}", "cruxeval", "(1,)")
    assert _correct('\\boxed{"abc"}', "cruxeval", "'abc'") and _correct("\\boxed{abc}", "cruxeval", "'abc'")
    assert _correct("\\boxed{\\text{ertubwi}}", "cruxeval", "'ertubwi'")  # the paper's Fig. 15
    assert _correct("\\boxed{{'a': 1}}", "cruxeval", "{'a': 1}")
    assert not _correct("\\boxed{[1, 2]}", "cruxeval", "[1, 2, 3]")
    assert not _correct("\\boxed{'1'}", "cruxeval", "1") and not _correct("\\boxed{abd}", "cruxeval", "'abc'")
    assert not _correct("\\boxed{__import__('os').getcwd()}", "cruxeval", "'/'")  # read, never executed
    assert not _correct("\\boxed{" + "[" * 5000 + "]" * 5000 + "}", "cruxeval", "[]")  # too deep: wrong, no crash
    strings = [  # outputs that survive being boxed unquoted (no edge spaces or braces)
        p for p in load_problems("cruxeval_o")
        if isinstance(v := ast.literal_eval(p.answer), str) and v == v.strip() and v and not set(v) & set("{}")
    ]  # fmt: skip
    assert len(strings) > 300 and all(grade(f"\\boxed{{{ast.literal_eval(p.answer)}}}", p).correct for p in strings)


def test_mmlu_pro_reads_the_letter_or_its_answer_is_pattern():
    assert _correct("\\boxed{B. a shoot tip}", "mmlu_pro", "B") and _correct("The answer is (B).", "mmlu_pro", "B")
    assert not _correct("\\boxed{C}", "mmlu_pro", "B") and not _correct("\\boxed{BC}", "mmlu_pro", "B")
    assert not _correct("\\boxed{b}", "mmlu_pro", "B") and not _correct("The answer is (C).", "mmlu_pro", "B")


def test_tablebench_exact_match_rounds_to_the_reference():
    assert _correct("\\boxed{2606.249}", "tablebench", "2606.25") and _correct("\\boxed{10.6}", "tablebench", "10.60")
    assert _correct("\\boxed{0.12}", "tablebench", "12%") and _correct("\\boxed{12.0%}", "tablebench", "12%")
    assert _correct("\\boxed{marian, 3}", "tablebench", "marian,3")
    assert not _correct("\\boxed{10.7}", "tablebench", "10.6") and not _correct(
        "\\boxed{Marian}", "tablebench", "marian"
    )
    assert not _correct("\\boxed{marian}", "tablebench", "marian, jane")  # every item must match
    assert not _correct("\\boxed{0.13}", "tablebench", "12%")


def test_an_unknown_rule_is_named():
    with pytest.raises(ValueError, match="names an unknown grader 'chess'; valid graders: \\['cruxeval', 'folio'"):
        grade("\\boxed{1}", _problem("chess", "1"))
    assert set(GRADERS) == {"folio", "strategyqa", "cruxeval", "mmlu_pro", "tablebench"}


def test_judge_mixes_rules_and_math_in_one_batch():
    problems = [_problem("folio", "True"), Problem("m/0", "q", "\\frac{1}{2}", "test"), _problem("mmlu_pro", "A")]
    verdicts = judge(default_verifier(), ["\\boxed{yes}", "\\boxed{0.5}", "\\boxed{B}"], problems)
    assert [v.correct for v in verdicts] == [True, True, False] and [v.predicted for v in verdicts] == [
        "yes",
        "0.5",
        "B",
    ]


def test_the_envs_judge_an_out_of_domain_problem_by_its_rule():
    problem = load_problems("strategyqa", limit=1)[0]
    env = SatoriMathEnv(tasks=[problem], max_new_tokens=64)
    tokenizer = env.tokenizer
    answer = "yes" if problem.answer == "True" else "no"
    wrong = "no" if answer == "yes" else "yes"
    for text, right in ((f"<|continue|>\\boxed{{{answer}}}", True), (f"<|continue|>\\boxed{{{wrong}}}", False)):
        env.reset(seed=0)
        ids = tokenizer.encode(text, add_special_tokens=False) + [tokenizer.eos_token_id]
        *_, info = env.step_tokens(ids)
        assert info["correct"] is right and info["gold"] == problem.answer
    vector = SatoriMathVectorEnv(num_envs=2, tasks=[problem], max_new_tokens=64, autoreset_mode=AutoresetMode.DISABLED)
    vector.reset(seed=0)
    ids = [
        tokenizer.encode(f"\\boxed{{{a}}}", add_special_tokens=False) + [tokenizer.eos_token_id]
        for a in (answer, wrong)
    ]
    *_, infos = vector.step_tokens(ids)
    assert list(infos["correct"]) == [True, False] and np.all(infos["verifier_status"] == "ok")


def test_a_checker_with_only_check_batch_still_judges_the_math_problems():
    from satori_env.verifier import Verdict

    class Exact:  # any object with check and check_batch is a verifier to the env
        def check(self, completion, gold):
            return self.check_batch([(completion, gold)])[0]

        def check_batch(self, pairs):
            return [Verdict(completion.endswith(gold), gold, "ok", 0.0) for completion, gold in pairs]

    problems = [Problem("m/0", "q", "12", "test"), _problem("folio", "True")]
    assert [v.correct for v in judge(Exact(), ["so 12", "\\boxed{yes}"], problems)] == [True, True]
    assert [v.correct for v in judge(Exact(), ["so 13", "\\boxed{no}"], problems)] == [False, False]
