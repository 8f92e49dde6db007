"""verl's training data from satori task sources: every row holds its problem exactly, the arm a
curriculum steers by, the gold answer and chat messages in Satori's template; bad task names are
refused with the valid ones. (Loading it with verl's own dataset class: test_integration_verl.)"""

from __future__ import annotations

import pytest

pq = pytest.importorskip("pyarrow.parquet")

from satori_env import load_problems  # noqa: E402
from satori_env.coat import get_template  # noqa: E402
from satori_env.integrations.verl_data import chat_messages, problem_of, write_verl_parquet  # noqa: E402


def test_rows_hold_their_problems_arms_and_answers(tmp_path):
    path = write_verl_parquet(["arith:train@1", "arith:train@3"], tmp_path / "data" / "train.parquet", limit=4)
    rows = pq.read_table(path).to_pylist()
    assert [row["extra_info"]["arm"] for row in rows] == ["arith:train@1"] * 4 + ["arith:train@3"] * 4
    expected = load_problems("arith:train", level=1, limit=4) + load_problems("arith:train", level=3, limit=4)
    assert [problem_of(row["extra_info"]) for row in rows] == expected
    assert [row["reward_model"]["ground_truth"] for row in rows] == [p.answer for p in expected]
    assert [row["extra_info"]["index"] for row in rows] == list(range(8))
    assert {row["agent_name"] for row in rows} == {"satori_agent"}
    assert not list(tmp_path.glob("data/.*"))  # no partial file left behind


def test_chat_messages_are_the_user_turn_of_satoris_template():
    (message,) = chat_messages("satori", "What is 2+3?")
    assert message["role"] == "user"
    assert f"<|im_start|>user\n{message['content']}<|im_end|>\n<|im_start|>assistant\n" == get_template(
        "satori"
    ).format("What is 2+3?")
    assert chat_messages("compact", "What is 2+3?") == [{"role": "user", "content": "Problem: What is 2+3?\nSolution:"}]


@pytest.mark.parametrize(
    "tasks, message",
    [(["nope"], "unknown problem source 'nope'; valid names"), (["arith:train@x"], "level after '@' must be a whole")],
)
def test_bad_tasks_are_refused(tmp_path, tasks, message):
    with pytest.raises(ValueError, match=message):
        write_verl_parquet(tasks, tmp_path / "train.parquet")
    assert not (tmp_path / "train.parquet").exists()


def test_a_row_from_elsewhere_names_the_command():
    with pytest.raises(ValueError, match="write the training data with `satori verl-data`"):
        problem_of({"index": 3})


def test_the_command_writes_the_rows(tmp_path, capsys):
    from agents.cli import main

    out = tmp_path / "train.parquet"
    assert main(["verl-data", "--out", str(out), "--tasks", "arith:train@1", "arith:train@2", "--limit", "3"]) == 0
    assert capsys.readouterr().out.strip() == f"6 rows -> {out}"
    assert [row["arm"] for row in pq.read_table(out).column("extra_info").to_pylist()] == ["arith:train@1"] * 3 + [
        "arith:train@2"
    ] * 3
