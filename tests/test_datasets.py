"""Vendored benchmarks: intact copies, right counts, gold answers that their own solutions verify."""

import gzip
import hashlib
import re
from importlib import resources

import pytest

from satori_env import Problem, list_sources, load_problems, verify_batch
from satori_env.tasks.datasets import DATASETS, reference_solution

COUNTS = {
    "gsm8k:train": 7473,
    "gsm8k:test": 1319,
    "math500": 500,
    "aime24": 30,
    "amc23": 40,
    "olympiadbench": 675,
    "minerva": 272,
    "folio": 203,
    "strategyqa": 2290,
    "cruxeval_o": 800,
    "tablebench": 493,  # of 886: the fact-checking and numerical-reasoning rows Satori scored
    "mmlu_pro_stem": 5371,
}
OUT_OF_DOMAIN = {"folio", "strategyqa", "cruxeval_o", "tablebench", "mmlu_pro_stem"}  # graded by their own rules


def test_every_dataset_is_counted_here():
    assert set(COUNTS) == set(DATASETS)


def test_vendored_files_match_the_published_checksums():
    data = resources.files("satori_env.tasks").joinpath("data")
    readme = data.joinpath("README.md").read_text()
    sums = dict((name, digest) for digest, name in re.findall(r"^([0-9a-f]{64})  (\S+\.jsonl)$", readme, re.M))
    assert len(sums) == 12
    for name, digest in sums.items():
        raw = gzip.decompress(data.joinpath(name + ".gz").read_bytes())
        assert hashlib.sha256(raw).hexdigest() == digest, name


@pytest.mark.parametrize("name, count", COUNTS.items())
def test_counts_ids_and_gold_answers(name, count):
    problems = load_problems(name)
    assert len(problems) == count
    assert len({p.id for p in problems}) == count
    for p in problems:
        assert isinstance(p, Problem) and p.source == name
        assert p.question.strip() and p.answer.strip()
        if name in OUT_OF_DOMAIN:
            assert p.meta["grader"] and not p.meta.get("solution"), p
        else:
            assert not re.search(r"(?<!\\)\$", p.answer) and "####" not in p.answer, p  # \$ is currency


def test_math500_every_solution_box_verifies_against_its_answer():
    problems = load_problems("math500")
    assert verify_batch([(p.meta["solution"], p.answer) for p in problems]) == [True] * 500
    assert sorted({p.level for p in problems}) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("name", ["gsm8k:train", "gsm8k:test", "minerva"])
def test_every_reference_solution_verifies(name):
    problems = load_problems(name)
    assert all(verify_batch([(reference_solution(p), p.answer) for p in problems]))


def test_aime24_solutions_that_state_an_answer_verify():
    problems = load_problems("aime24")
    results = verify_batch([(reference_solution(p), p.answer) for p in problems])
    assert sum(results) == 29  # one solution (2024 I #1) never states its answer explicitly
    assert [p.answer for p in problems][:3] == ["204", "113", "371"]
    assert "25" in {p.answer for p in problems}  # published as "025"


def test_gold_answers_are_normalised():
    amc = load_problems("amc23")
    assert amc[0].answer == "27"  # published as the float 27.0
    olympiad = {p.id: p for p in load_problems("olympiadbench")}
    multi = [p for p in olympiad.values() if p.meta["is_multiple_answer"]]
    assert multi and all("$" not in p.answer for p in multi)
    answers = {p.answer for p in olympiad.values()}
    assert {"69, 84", "221,8", "(-\\infty, 0) \\cup\\{1\\}"} <= answers  # "$69$,$84$", "$221,$8$", "$..$."


def test_level_filter_and_limit():
    level5 = load_problems("math500", level=5)
    assert level5 and all(p.level == 5 for p in level5)
    assert len(load_problems("gsm8k:test", limit=10)) == 10
    assert load_problems("gsm8k:test", limit=3) == load_problems("gsm8k:test")[:3]
    assert load_problems("math500:test") == load_problems("math500")


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("gsm8k:dev", {}, "unknown problem source 'gsm8k:dev'; valid names: aime24, amc23"),
        ("mat500", {}, "valid names: .*math500"),
        ("gsm8k", {}, r"several splits; choose one of \['gsm8k:test', 'gsm8k:train'\]"),
        ("math500", {"level": 9}, r"no problems of level 9; its levels: \[1, 2, 3, 4, 5\]"),
        ("gsm8k:test", {"level": 1}, "its levels: none"),
        ("gsm8k:test", {"limit": -1}, "limit must be a non-negative int"),
        ("arith:train", {"level": 7}, r"arithmetic level must be one of \[1, 2, 3, 4, 5, 6\]"),
    ],
)
def test_bad_names_and_arguments_are_explained(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_problems(name, **kwargs)


def test_list_sources_names_every_loadable_source():
    for name in list_sources():
        assert load_problems(name, limit=2)


def test_problem_round_trip_and_validation():
    problem = load_problems("math500", limit=1)[0]
    assert Problem.from_dict(problem.to_dict()) == problem
    assert hash(problem) == hash(Problem.from_dict(problem.to_dict()))
    with pytest.raises(TypeError, match="Problem.answer must be a str"):
        Problem("id", "q", 3, "src")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Problem.level must be an int"):
        Problem("id", "q", "3", "src", level="hard")  # type: ignore[arg-type]
