"""COAT demonstration synthesis: right structure, honest checks, verified answers, exact files."""

import random
import re
from collections import Counter

import pytest

from agents.data.synth import (
    KINDS,
    Demonstration,
    arithmetic_demo,
    check,
    gsm8k_demo,
    injected_prefix,
    read_demos,
    synthesize,
    write_demos,
)
from satori_env import ArithmeticTasks, load_problems, verify
from satori_env.coat import count_actions, is_well_formed, split_steps
from satori_env.tasks.columns import work

PROBLEMS = ArithmeticTasks(levels=[1, 2, 3, 4, 5], seed=11).take(200)
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a // b}


@pytest.mark.parametrize(
    "step, text, right",
    [
        (work(58, "+", 64), "Check: 8+4=12, 5+6+1=12, matches.", True),
        (work(58, "+", 64, slip=(1, 1)), "Check: 8+4=12, 5+6+1=12, not 13. Wrong.", False),
        (work(63, "-", 59, slip=(0, -1)), "Check: 13-9=4, not 3. Wrong.", False),
        (work(126, "/", 3), "Check: 1/3=0 r1, 12/3=4, 6/3=2, matches.", True),
        (work(58, "*", 12), "Check: 58*12=696, matches.", True),
        (work(58, "*", 12, slip=(0, 1)), "Check: 58*12=696, not 697. Wrong.", False),
    ],
)
def test_the_critic_rederives_column_facts(step, text, right):
    assert check(step) == (text, right)


FACT = re.compile(r"(\d+)([-+*/])(\d+)(?:([-+])(\d+))?=(\d+)(?: r(\d+))?")


def _facts_are_true(text):
    """Every written fact in ``text`` that a critic's check re-derived is arithmetically right."""
    for check_text in re.findall(r"Check: ([^.]*)", text):
        for fact in check_text.split(", "):
            if fact.startswith("not ") or fact == "matches":
                continue
            x, op, y, op2, z, value, rest = FACT.fullmatch(fact).groups()
            if op == "/":
                assert divmod(int(x), int(y)) == (int(value), int(rest or 0)), fact
            else:
                total = OPS[op](int(x), int(y))
                total = total + int(z) if op2 == "+" else total - int(z) if op2 == "-" else total
                assert total == int(value), fact


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_is_well_formed_verified_and_honest(kind):
    rng = random.Random(0)
    for problem in PROBLEMS:
        demo = arithmetic_demo(problem, kind, rng)
        assert verify(demo.text, problem.answer), demo.text
        assert is_well_formed(demo.text), demo.text
        _facts_are_true(demo.text)
        actions = count_actions(demo.text)
        untrained = [text for text, trained in demo.segments if not trained]
        if kind == "clean":
            assert actions["reflect"] == actions["explore"] == 0 and not untrained
        elif kind == "confirm":
            assert (
                actions["reflect"] == 1
                and actions["explore"] == 0
                and "matches" in demo.text
                and "Wrong" not in demo.text
            )
        elif demo.kind == "fix" or kind == "explore":
            assert actions["reflect"] == 1 and actions["explore"] == 1 and demo.text.count("Wrong.") == 1
            (slip,) = untrained  # only the injected wrong step carries no loss
            a, op, b, result = re.fullmatch(r"<\|continue\|>(\d+)([-+*/])(\d+)\b.*=(\d+)", slip).groups()
            assert OPS[op](int(a), int(b)) != int(result)


def test_explore_answers_wrong_before_it_reflects():
    rng = random.Random(1)
    demos = [arithmetic_demo(problem, "explore", rng) for problem in PROBLEMS]
    explored = [d for d in demos if d.kind == "explore"]
    assert len(explored) > 0.8 * len(demos)  # the rest: no slip the later divisions can carry, so a fix
    for demo in explored:
        problem = demo.problem
        steps = split_steps(demo.text)
        reflect_at = [s.action for s in steps].index("reflect")
        before = "".join(s.text for s in steps[:reflect_at])
        assert not verify(before, problem.answer) and "\\boxed{" in before


def test_gsm8k_demonstrations_follow_the_calculator_notes():
    rng = random.Random(0)
    problems = load_problems("gsm8k:train", limit=60)
    kinds = Counter()
    for problem in problems:
        for kind in ("clean", "confirm", "fix", "explore"):
            demo = gsm8k_demo(problem, kind, rng)
            kinds[demo.kind] += 1
            assert "<<" not in demo.text and verify(demo.text, problem.answer) and is_well_formed(demo.text)
            if demo.kind == "fix":
                assert "Wrong." in demo.text and sum(not trained for _, trained in demo.segments) == 1
    assert kinds["explore"] == 0 and kinds["fix"] > 40  # explore falls back to fix on GSM8K


def test_injected_prefixes_end_in_reflect_after_a_slip():
    rng = random.Random(0)
    for problem in PROBLEMS[:30]:
        for at_end in (False, True):
            prefix = injected_prefix(problem, rng, at_end)
            assert prefix.endswith("<|reflect|>") and prefix.count("<|reflect|>") == 1
            assert not at_end or "\\boxed{" in prefix or problem.level >= 4  # divisions may force a fix
            assert not verify(prefix, problem.answer)


def test_synthesis_follows_the_mix_and_is_deterministic():
    demos, report = synthesize(2000, mix={"clean": 0.5, "fix": 0.5}, levels=(1, 2), seed=3)
    again, _ = synthesize(2000, mix={"clean": 0.5, "fix": 0.5}, levels=(1, 2), seed=3)
    assert [d.text for d in demos] == [d.text for d in again]
    kinds = Counter(d.kind for d in demos)
    assert set(kinds) == {"clean", "fix"} and 900 < kinds["fix"] < 1100
    assert report.dropped == 0 and sum(report.kept.values()) == 2000
    assert {d.problem.level for d in demos} == {1, 2} and all(d.problem.source == "arith:train" for d in demos)


class RejectEveryOther:
    def verify_batch(self, pairs):
        return [i % 2 == 0 for i in range(len(pairs))]


def test_demonstrations_the_verifier_rejects_are_dropped():
    demos, report = synthesize(10, seed=0, verifier=RejectEveryOther())
    assert len(demos) == 5 and report.dropped == 5


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mix": {"clean": 1, "rethink": 1}}, "mix must give non-negative weights"),
        ({"mix": {"clean": 0}}, "mix must give non-negative weights"),
        ({"sources": {"math500": 1}}, "sources must weight 'arith' and/or 'gsm8k'"),
    ],
)
def test_bad_synthesis_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        synthesize(5, **kwargs)


def test_files_round_trip_and_bad_lines_are_named(tmp_path):
    demos, _ = synthesize(30, sources={"arith": 1, "gsm8k": 1}, seed=1)
    write_demos(demos, tmp_path / "demos.jsonl")
    assert read_demos(tmp_path / "demos.jsonl") == demos
    (tmp_path / "bad.jsonl").write_text('{"kind": "clean"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: not a demonstration"):
        read_demos(tmp_path / "bad.jsonl")
    assert isinstance(demos[0], Demonstration)


def test_chain_of_thought_demonstrations_solve_the_same_problems_without_meta_actions():
    from satori_env.coat import META_ACTIONS

    coat, _ = synthesize(40, levels=(1, 2, 3), seed=5)
    cot, report = synthesize(40, levels=(1, 2, 3), seed=5, cot=True)
    assert [d.problem for d in cot] == [d.problem for d in coat] and report.dropped == 0
    assert {d.kind for d in cot} == {"cot"} and any(d.kind != "clean" for d in coat)
    for demo in cot:
        assert not any(token in demo.text for token in META_ACTIONS.values())
        assert all(trained for _, trained in demo.segments)  # no injected slip to skip
        assert demo.text.strip().endswith(f"\\boxed{{{demo.problem.answer}}}.")
