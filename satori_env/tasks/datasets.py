"""Loaders for the benchmark copies vendored in ``satori_env/tasks/data`` (see its README).

Each loader maps one published file to :class:`Problem` records with a clean gold answer; the
raw fields (reference solution, subject, ...) stay in ``Problem.meta``.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable, Iterator
from functools import cache
from importlib import resources
from typing import Any

from satori_env.answers import extract_answer
from satori_env.tasks.problem import Problem

__all__ = ["DATASETS", "load_dataset", "reference_response", "reference_solution"]


def _rows(filename: str) -> Iterator[dict[str, Any]]:
    with resources.files("satori_env.tasks").joinpath("data", filename).open("rb") as raw:
        with gzip.open(raw, "rt", encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    yield json.loads(line)


def _number_text(value: Any) -> str:
    """27.0 -> "27", "025" -> "25"; anything else unchanged (as a string)."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() and abs(number) < 1e15 else text


_DOLLAR_LIST = re.compile(r"\$\s*,\s*\$")
_MATH_DELIMITER = re.compile(r"(?<!\\)\$")  # an unescaped $ (a currency \$ stays)


def _strip_delimiters(answer: str) -> str:
    """Gold answers are bare LaTeX: "$(0,1)$." -> "(0,1)", "$a$,$b$" -> "a, b"."""
    answer = _DOLLAR_LIST.sub(", ", answer.strip())
    return _MATH_DELIMITER.sub("", answer).strip().rstrip(".").strip()


def _gsm8k(split: str) -> list[Problem]:
    problems = []
    for index, row in enumerate(_rows(f"gsm8k_{split}.jsonl.gz")):
        solution = row["answer"]
        gold = solution.rsplit("####", 1)[1].strip().replace(",", "")
        problems.append(
            Problem(f"gsm8k:{split}/{index}", row["question"], gold, f"gsm8k:{split}", None, {"solution": solution})
        )
    return problems


def _math500() -> list[Problem]:
    return [
        Problem(
            f"math500/{row['unique_id']}",
            row["problem"],
            row["answer"],
            "math500",
            int(row["level"]),
            {"solution": row["solution"], "subject": row["subject"]},
        )
        for row in _rows("math500.jsonl.gz")
    ]


def _aime24() -> list[Problem]:
    return [
        Problem(
            f"aime24/{row['id']}",
            row["problem"],
            _number_text(row["answer"]),
            "aime24",
            None,
            {"solution": row["solution"], "url": row["url"]},
        )
        for row in _rows("aime24.jsonl.gz")
    ]


def _amc23() -> list[Problem]:
    return [
        Problem(f"amc23/{row['id']}", row["problem"], _number_text(row["answer"]), "amc23", None, {"url": row["url"]})
        for row in _rows("amc23.jsonl.gz")
    ]


def _olympiadbench() -> list[Problem]:
    problems = []
    for row in _rows("olympiadbench.jsonl.gz"):
        question = row["question"] if not row["context"] else f"{row['context']}\n\n{row['question']}"
        meta = {key: row[key] for key in ("solution", "final_answer", "answer_type", "unit", "subfield")}
        meta["is_multiple_answer"] = row["is_multiple_answer"]
        problems.append(
            Problem(
                f"olympiadbench/{row['id']}",
                question,
                _strip_delimiters(", ".join(row["final_answer"])),
                "olympiadbench",
                None,
                meta,
            )
        )
    return problems


def _minerva() -> list[Problem]:
    problems = []
    for row in _rows("minerva_math.jsonl.gz"):
        gold = extract_answer(row["solution"])
        if gold is not None:
            gold = _strip_delimiters(gold)
        if not gold:  # every published solution boxes its answer; guard against a bad copy
            raise ValueError(f"minerva problem {row['idx']} has no boxed answer in its solution")
        problems.append(
            Problem(
                f"minerva/{row['idx']}",
                row["problem"],
                gold,
                "minerva",
                None,
                {"solution": row["solution"], "type": row["type"]},
            )
        )
    return problems


# -- out-of-domain sets of Satori's Table 2 (graded by satori_env.graders, not as math) ------------------

_OOD_GRADERS = {
    "folio": "folio",
    "strategyqa": "strategyqa",
    "cruxeval_o": "cruxeval",
    "tablebench": "tablebench",
    "mmlu_pro_stem": "mmlu_pro",
}


def _ood(name: str) -> list[Problem]:
    """One out-of-domain set; TableBench: the fact-checking and numerical-reasoning rows Satori
    scored (``satori_subset``). ``meta["grader"]`` names the answer rule."""
    problems = []
    for row in _rows(f"ood_{name}.jsonl.gz"):
        if name == "tablebench" and not row["satori_subset"]:
            continue
        meta = {**row["meta"], "grader": _OOD_GRADERS[name]}
        meta.update({key: row[key] for key in ("choices", "code", "input", "qtype", "qsubtype") if key in row})
        problems.append(
            Problem(f"{name}/{row['id'].rsplit('-', 1)[1]}", row["question"], row["answer"], name, None, meta)
        )
    return problems


DATASETS: dict[str, Callable[[], list[Problem]]] = {
    "gsm8k:train": lambda: _gsm8k("train"),
    "gsm8k:test": lambda: _gsm8k("test"),
    "math500": _math500,
    "aime24": _aime24,
    "amc23": _amc23,
    "olympiadbench": _olympiadbench,
    "minerva": _minerva,
    **{name: (lambda name=name: _ood(name)) for name in _OOD_GRADERS},
}


@cache
def load_dataset(name: str) -> tuple[Problem, ...]:
    """All problems of one vendored dataset (cached; problems are immutable)."""
    return tuple(DATASETS[name]())


def reference_solution(problem: Problem) -> str | None:
    """The dataset's own worked solution for ``problem`` as one text, when it has one.

    Used to test answer extraction against the benchmarks themselves: a reference solution
    should verify against its own gold answer.
    """
    solution = problem.meta.get("solution")
    if isinstance(solution, list):  # OlympiadBench: several alternative solutions
        solution = solution[0] if solution else None
    return solution if isinstance(solution, str) else None


def reference_response(problem: Problem) -> str | None:
    """The reference solution as a model asked to box its answer writes it: GSM8K's (whose answer
    follows ``####``) and OlympiadBench's prose solutions end with the published final answer
    boxed; the others box it already."""
    solution = reference_solution(problem)
    if solution is None:
        return None
    if "final_answer" in problem.meta:
        return (
            solution
            + " The final answer is \\boxed{"
            + ", ".join(a.strip("$ ") for a in problem.meta["final_answer"])
            + "}."
        )
    if problem.source.startswith("gsm8k"):
        return solution + f" The final answer is \\boxed{{{problem.answer}}}."
    return solution
