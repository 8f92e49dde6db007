"""verl's training data from any satori task source: one parquet row per problem, in the columns
verl's ``RLHFDataset`` reads (``satori verl-data``; needs ``pyarrow``, which ``datasets`` brings).

Each row holds the problem itself (``extra_info.problem``, JSON), from which the agent loop
(:mod:`satori_env.integrations.verl`) builds the prompt ids with the env's template, token-exact;
``prompt`` (chat messages in Satori's template) is what verl's length filter and viewers read;
``reward_model.ground_truth`` the gold answer; ``extra_info.arm`` the arm a curriculum steers by
(the task source the row came from); ``agent_name`` routes the row to the Satori agent loop.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from satori_env.atomic import atomic_write
from satori_env.coat import PromptTemplate, get_template
from satori_env.tasks import Problem, load_problems

__all__ = ["AGENT_NAME", "chat_messages", "problem_of", "verl_rows", "write_verl_parquet"]

AGENT_NAME = "satori_agent"
_CHAT_HEAD, _CHAT_TAIL = "<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\n"


def chat_messages(template: str | PromptTemplate, question: str) -> list[dict[str, str]]:
    """The prompt as chat messages: a chat-format template's user turn, or the whole text as one
    user message."""
    text = get_template(template).format(question)
    if text.startswith(_CHAT_HEAD) and text.endswith(_CHAT_TAIL):
        text = text[len(_CHAT_HEAD) : -len(_CHAT_TAIL)]
    return [{"role": "user", "content": text}]


def verl_rows(
    tasks: Sequence[str], limit: int | None = None, seed: int = 0, prompt_template: str = "satori"
) -> list[dict[str, Any]]:
    """verl's rows for the problems of ``tasks`` (one curriculum arm each, easiest first: a source
    name, or ``name@level`` for one difficulty level, e.g. ``arith:train@2``), ``limit`` per arm."""
    rows: list[dict[str, Any]] = []
    for arm in tasks:
        name, _, level = arm.partition("@")
        if level and not level.isdigit():
            raise ValueError(f"task {arm!r}: the level after '@' must be a whole number (e.g. arith:train@2)")
        for problem in load_problems(name, level=int(level) if level else None, limit=limit, seed=seed):
            rows.append(
                {
                    "data_source": f"satori/{problem.source}",
                    "prompt": chat_messages(prompt_template, problem.question),
                    "ability": "math",
                    "reward_model": {"style": "rule", "ground_truth": problem.answer},
                    "extra_info": {"index": len(rows), "problem": json.dumps(problem.to_dict()), "arm": arm},
                    "agent_name": AGENT_NAME,
                }
            )
    return rows


def write_verl_parquet(
    tasks: Sequence[str], out: str | Path, limit: int | None = None, seed: int = 0, prompt_template: str = "satori"
) -> Path:
    """Write :func:`verl_rows` to ``out`` (atomically); returns the path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = verl_rows(tasks, limit, seed, prompt_template)
    if not rows:
        raise ValueError(f"the tasks {list(tasks)} gave no problems")
    buffer = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, buffer.getvalue().to_pybytes())
    return out


def problem_of(extra_info: dict[str, Any]) -> Problem:
    """The problem a row holds."""
    if "problem" not in extra_info:
        raise ValueError(
            "the row's extra_info has no 'problem': write the training data with `satori verl-data` "
            f"(got the keys {sorted(extra_info)})"
        )
    return Problem.from_dict(json.loads(extra_info["problem"]))
