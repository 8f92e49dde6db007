"""The evaluation harness: its metrics, its extraction on the benchmarks' own reference solutions,
the COAT analysis, and ``satori eval`` end to end."""

from __future__ import annotations

import json
from itertools import combinations

import pytest

from agents.cli import main
from agents.evaluation.benchmarks import BENCHMARKS, EvalArgs, coat_analysis, evaluate_benchmark
from agents.evaluation.metrics import AnswerChange, answer_changes, majority_vote, pass_at_k
from satori_env import load_problems
from satori_env.coat import get_template
from satori_env.tasks.datasets import reference_response, reference_solution
from satori_env.tokenizer import default_tokenizer


@pytest.mark.parametrize("n", [1, 3, 5])
def test_pass_at_k_is_the_chance_that_some_k_subset_holds_a_right_sample(n):
    for c in range(n + 1):
        samples = [True] * c + [False] * (n - c)
        for k in range(1, n + 1):
            subsets = list(combinations(samples, k))
            assert pass_at_k(n, c, k) == pytest.approx(sum(any(s) for s in subsets) / len(subsets))


def test_pass_at_k_refuses_impossible_counts():
    with pytest.raises(ValueError, match="0 <= c <= n"):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_at_k(4, 1, 5)


def test_majority_vote_groups_equivalent_answers(verifier):
    def same(a, b):
        return verifier.check(f"\\boxed{{{a}}}", b).correct

    # "1/2", "0.5" and "\frac{1}{2}" are one answer (3 votes) against "2" (2 votes)
    assert majority_vote(["2", "1/2", "0.5", "2", "\\frac{1}{2}"], [False, True, True, False, True], same)
    assert not majority_vote(["2", "1/2", "2"], [False, True, False], same)
    # a tie goes to the answer given first; samples without an answer do not vote
    assert not majority_vote(["3", "0.5", None, None], [False, True, False, False], same)
    assert majority_vote([None, "0.5", None, "3", "1/2"], [False, True, False, False, True], same)
    assert not majority_vote([None, None], [False, False], same)


def test_answer_changes_read_the_answers_around_each_meta_action():
    assert answer_changes("<|continue|>2+3=5<|continue|>The answer is \\boxed{5}.") == []
    assert answer_changes("<|continue|>\\boxed{4}<|reflect|>Yes, that is right.") == [
        AnswerChange("reflect", "4", None)
    ]
    assert answer_changes("<|continue|>2+3=6<|reflect|>2+3 is 5, not 6.<|explore|>2+3=5 so \\boxed{5}") == [
        AnswerChange("reflect", None, "5"),
        AnswerChange("explore", None, "5"),
    ]
    # the first answer after the meta-action, not the last one of the response
    text = "\\boxed{1}<|explore|>try \\boxed{2}<|continue|>so \\boxed{3}"
    assert answer_changes(text) == [AnswerChange("explore", "1", "2")]


class ReferenceEngine:
    """An engine that writes each problem's reference solution as a COAT response. With
    ``slip_every=N``, every N-th response first boxes a wrong answer, reflects and explores."""

    def __init__(self, tokenizer, problems, template: str, slip_every: int = 0) -> None:
        self.tokenizer, self.responses = tokenizer, {}
        for index, problem in enumerate(problems):
            response = f"<|continue|>{reference_response(problem)}"
            if slip_every and index % slip_every == 0:
                guess = f"<|continue|>A guess: \\boxed{{{problem.answer}1}}.<|reflect|>That guess was not checked."
                response = f"{guess}<|explore|>{reference_response(problem)}"
            self.responses[get_template(template).format(problem.question)] = response

    def generate(self, prompts, params):
        texts = [self.responses[self.tokenizer.decode(prompt)] for prompt in prompts]
        return [
            self.tokenizer.encode(text, add_special_tokens=False)[: params.max_new_tokens]
            + [self.tokenizer.eos_token_id]
            for text in texts
        ]

    def sync_weights(self) -> None:
        pass


@pytest.mark.parametrize("bench", ["gsm8k", "math500", "olympiadbench", "minerva", "aime24"])
def test_the_harness_scores_reference_solutions_right(bench, verifier):
    """The protocol's extraction and checking, run on each benchmark's own solutions written
    through the environment exactly as a model's responses are (satori template)."""
    tokenizer = default_tokenizer()
    problems = [p for p in load_problems(BENCHMARKS[bench], limit=40) if reference_solution(p) is not None]
    engine = ReferenceEngine(tokenizer, problems, "satori")
    longest = max(len(tokenizer.encode(r)) for r in engine.responses.values())
    args = EvalArgs(model="-", bench=bench, max_new_tokens=longest + 1, batch_size=16, progress=False)
    result = evaluate_benchmark(engine, tokenizer, problems, args, verifier)
    expected = 29 / 30 if bench == "aime24" else 1.0  # one AIME solution never states its answer
    assert result["n"] == len(problems) and result["pass@1"] == pytest.approx(expected)
    assert result["coat"]["actions_per_response"] == {"continue": 1.0, "reflect": 0.0, "explore": 0.0}


def test_the_release_rule_through_the_harness_judges_as_the_rule_itself():
    """``EvalArgs(verifier="satori-release")``: the environment judges every response by the
    release's rule, the same per-problem verdicts as ``satori_env.release_rule`` gives directly."""
    from satori_env.release_rule import extract, math_equal

    tokenizer = default_tokenizer()
    problems = load_problems("math500", limit=60)
    engine = ReferenceEngine(tokenizer, problems, "satori")
    longest = max(len(tokenizer.encode(r)) for r in engine.responses.values())
    args = EvalArgs(model="-", bench="math500", max_new_tokens=longest + 1, batch_size=16, progress=False,
                    verifier="satori-release")  # fmt: skip
    result = evaluate_benchmark(engine, tokenizer, problems, args)
    expected = [(a := extract(reference_response(p))) is not None and math_equal(a, p.answer) for p in problems]
    assert [r["correct"] for r in result["records"]] == expected
    assert 0.8 < result["pass@1"] < 1.0  # some solutions box their answer before a last sentence of over 128 characters


def test_coat_analysis_counts_wrong_answers_turned_right(verifier):
    tokenizer = default_tokenizer()
    problems = load_problems("math500", limit=12)
    engine = ReferenceEngine(tokenizer, problems, "satori", slip_every=3)  # 4 slips
    longest = max(len(tokenizer.encode(r)) for r in engine.responses.values())
    args = EvalArgs(model="-", bench="math500", max_new_tokens=longest + 1, batch_size=8, k=2, progress=False)
    result = evaluate_benchmark(engine, tokenizer, problems, args, verifier)
    coat = result["coat"]
    assert result["pass@1"] == 1.0  # the last box is the answer
    assert coat["changes"]["reflect"] == {"wrong_to_right": 4, "right_to_wrong": 0, "kept": 0, "no_answer_before": 0}
    assert coat["changes"]["explore"] == {"wrong_to_right": 4, "right_to_wrong": 0, "kept": 0, "no_answer_before": 0}
    assert coat["responses_with"]["reflect"] == pytest.approx(4 / 12)
    assert coat["accuracy_with_reflection"] == coat["accuracy_without_reflection"] == 1.0
    assert result["sampled_pass@1"] == result["pass@2"] == result["maj@2"] == 1.0
    assert len(result["sampled_records"]) == 24 and len(coat["lengths"]) == 12


def test_coat_analysis_counts_right_answers_broken(verifier):
    records = [
        {
            "completion": "\\boxed{5}<|reflect|>No.<|explore|>\\boxed{6}",
            "gold": "5",
            "actions": {"continue": 0, "reflect": 1, "explore": 1},
            "num_new_tokens": 9,
            "correct": False,
        },
        {
            "completion": "\\boxed{5}<|reflect|>Yes, 5.",
            "gold": "5",
            "actions": {"continue": 0, "reflect": 1, "explore": 0},
            "num_new_tokens": 5,
            "correct": True,
        },
    ]
    coat = coat_analysis(records, verifier)
    assert coat["changes"]["reflect"] == {"wrong_to_right": 0, "right_to_wrong": 1, "kept": 1, "no_answer_before": 0}
    assert coat["changes"]["explore"] == {"wrong_to_right": 0, "right_to_wrong": 1, "kept": 0, "no_answer_before": 0}
    assert coat["accuracy_with_reflection"] == 0.5 and coat["accuracy_without_reflection"] is None


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--bench", "gsm8k,mmlu"], "unknown benchmark(s) ['mmlu']; valid: ['gsm8k'"),
        (["--engine", "sglang"], "unknown engine 'sglang'; valid engines: ['hf', 'vllm']"),
        (["--k", "-1"], "k must be >= 0"),
        (["--limit", "0"], "limit must be >= 1"),
        (["--temperature", "-1"], "temperature must be >= 0"),
        (["--verifier", "exact"], "unknown verifier 'exact'; valid answer rules: ['math-verify', 'satori-release']"),
    ],
)
def test_satori_eval_refuses_bad_settings_before_loading_anything(argv, message):
    with pytest.raises(
        SystemExit, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")
    ):
        main(["eval", "--model", "no/such/model", *argv])


def test_satori_eval_end_to_end(tmp_path, capsys):
    from agents.models import build_model

    build_model("tiny", tmp_path / "model", seed=0)
    out = tmp_path / "eval"
    argv = [
        "eval",
        "--model",
        str(tmp_path / "model"),
        "--bench",
        "arith,gsm8k,folio",
        "--limit",
        "6",
        "--k",
        "3",
        "--template",
        "compact",
        "--max-new-tokens",
        "24",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    for bench in ("arith", "gsm8k", "folio"):
        numbers = results["benchmarks"][bench]
        assert numbers["n"] == 6 and len(numbers["records"]) == 6 and len(numbers["sampled_records"]) == 18
        assert 0 <= numbers["sampled_pass@1"] <= numbers["pass@3"] <= 1
        assert all(r["num_new_tokens"] <= 24 for r in numbers["records"])
    table = (out / "results.md").read_text()
    assert "| gsm8k | 6 |" in table and "| 93.2 | 93.9 |" in table and "maj@3" in table
    assert "| folio | 6 |" in table and "| 71.4 | 72.9 |" in table  # out of domain, graded by its rule
    assert {r["grader"] for r in results["benchmarks"]["folio"]["records"]} == {"folio"}
    assert (out / "coat.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| arith | 6 |" in capsys.readouterr().out


def test_the_response_budget_fits_the_model():
    from types import SimpleNamespace

    from agents.evaluation.benchmarks import fit_new_tokens

    tiny = SimpleNamespace(max_position_embeddings=1024)
    assert fit_new_tokens(None, 100, tiny) == 924  # 4096 would run past the positions
    assert fit_new_tokens(None, 100, SimpleNamespace(max_position_embeddings=32768)) == 4096
    assert fit_new_tokens(None, 100, SimpleNamespace()) == 4096  # positions unknown
    assert fit_new_tokens(64, 100, tiny) == 64
    with pytest.warns(UserWarning, match=r"exceed the model's 1024 positions.*--max-new-tokens 924 fits"):
        assert fit_new_tokens(2000, 100, tiny) == 2000


def test_satori_eval_prompts_a_tuned_policy_with_its_own_template(tmp_path):
    from agents.models import build_model, load_policy, policy_settings, save_policy

    build_model("tiny", tmp_path / "base", seed=0)
    model, tokenizer = load_policy(str(tmp_path / "base"), device="cpu")
    save_policy(model, tokenizer, tmp_path / "tuned", prompt_template="compact")
    assert (
        policy_settings(tmp_path / "tuned") == {"prompt_template": "compact"}
        and policy_settings(tmp_path / "base") == {}
    )
    out = tmp_path / "eval"
    assert (
        main(
            [
                "eval",
                "--model",
                str(tmp_path / "tuned"),
                "--bench",
                "arith",
                "--limit",
                "2",
                "--out",
                str(out),
                "--no-progress",
                "--no-plots",
            ]
        )
        == 0
    )
    config = json.loads((out / "results.json").read_text())["config"]
    assert config["template"] == "compact"
    longest = max(
        len(tokenizer.encode(f"Problem: {p.question}\nSolution:")) for p in load_problems("arith:test", limit=2, seed=0)
    )
    assert config["max_new_tokens"] == model.config.max_position_embeddings - longest


def test_answer_changes_of_an_out_of_domain_problem_are_judged_by_its_rule(verifier):
    from agents.evaluation.metrics import change_outcomes

    records = [
        {"completion": "\\boxed{no}<|reflect|>Check.<|explore|>\\boxed{yes}", "gold": "True", "grader": "strategyqa"},
        {"completion": "\\boxed{5}<|reflect|>No.<|explore|>\\boxed{6}", "gold": "5"},
    ]
    assert change_outcomes(records, verifier) == [
        [("reflect", "wrong_to_right"), ("explore", "wrong_to_right")],  # "yes" is True only by StrategyQA's rule
        [("reflect", "right_to_wrong"), ("explore", "right_to_wrong")],
    ]
