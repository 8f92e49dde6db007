"""The RAE restart buffer: derivation, sampling, exact and crash-safe persistence, env integration."""

import copy
import gzip
import hashlib
import json
import os
import subprocess
import sys
from collections import Counter

import gymnasium as gym
import numpy as np
import pytest

import satori_env  # noqa: F401
from satori_env import Problem, RestartBuffer, RestartState, Trajectory
from satori_env.tasks.arithmetic import write_solution
from satori_env.tokenizer import default_tokenizer

TOKENIZER = default_tokenizer()
C, R, X = (TOKENIZER.convert_tokens_to_ids(t) for t in ("<|continue|>", "<|reflect|>", "<|explore|>"))
PROBLEM = Problem("p1", "What is 2+3?", "5", "demo")


def problem(i):
    return Problem(f"p{i}", f"What is {i}+1?", str(i + 1), "demo")


def trajectory(p=PROBLEM, correct=True, response=(C, 100, 101, C, 102, R, 103, X, 104, 105), finished=True):
    return Trajectory(p, tuple(response), correct, finished)


def test_states_are_prefixes_cut_at_step_boundaries_with_reflect_appended():
    buffer = RestartBuffer(max_backtrack=2)
    states = buffer.derive(trajectory(correct=False))
    #   response: C 100 101 | C 102 | R 103 | X 104 105 |end   (boundaries before each meta-action after the first)
    assert [s.prefix for s in states] == [
        (C, 100, 101, C, 102, R),
        (C, 100, 101, C, 102, R, 103, R),
        (C, 100, 101, C, 102, R, 103, X, 104, 105, R),
    ]
    assert {s.reflect_status for s in states} == {-1} and all(s.problem is PROBLEM for s in states)
    assert {s.reflect_status for s in buffer.derive(trajectory(correct=True))} == {1}
    assert [s.prefix for s in RestartBuffer(max_backtrack=0).derive(trajectory())] == [
        (C, 100, 101, C, 102, R, 103, X, 104, 105, R)
    ]
    assert len(RestartBuffer(max_backtrack=10).derive(trajectory())) == 4
    assert buffer.derive(trajectory(finished=False)) == [] and buffer.derive(trajectory(response=())) == []


def test_adding_counts_pass_rates_skips_none_and_evicts_the_oldest():
    buffer = RestartBuffer(capacity=5, max_backtrack=0)
    added = buffer.add_trajectories([trajectory(problem(i), correct=i % 2 == 0) for i in range(4)] + [None])
    assert len(added) == 4 and len(buffer) == 4
    buffer.add_trajectories([trajectory(problem(0), correct=False), trajectory(problem(9))])
    assert len(buffer) == 5 and [s.problem.id for s in buffer.states] == ["p1", "p2", "p3", "p0", "p9"]
    assert buffer.pass_rate("p0") == 0.5 and buffer.pass_rate("p1") == 0.0 and buffer.pass_rate("nope") is None
    with pytest.raises(TypeError, match="expected a satori_env.restart.Trajectory"):
        buffer.add_trajectories(["text"])


def _draws(buffer, n=2000, seed=0):
    rng = np.random.default_rng(seed)
    return Counter(buffer.sample(rng).problem.id for _ in range(n))


def test_sampling_strategies():
    trajectories = [trajectory(problem(1)) for _ in range(9)] + [trajectory(problem(2))]
    uniform, balanced = RestartBuffer(max_backtrack=0), RestartBuffer(strategy="balanced", max_backtrack=0)
    uniform.add_trajectories(trajectories)
    balanced.add_trajectories(trajectories)
    assert 1700 < _draws(uniform)["p1"] < 1900  # 90 % of the states
    assert 900 < _draws(balanced)["p1"] < 1100  # half the problems

    frontier = RestartBuffer(strategy="frontier", max_backtrack=0)
    frontier.add_trajectories([trajectory(problem(1), True), trajectory(problem(2), False)])  # pass rates 1 and 0
    assert set(_draws(frontier)) == {"p1", "p2"}  # no problem in between yet: balanced
    frontier.add_trajectories([trajectory(problem(3), True), trajectory(problem(3), False)])  # pass rate 0.5
    assert set(_draws(frontier)) == {"p3"}


def test_sampling_is_deterministic_under_a_seed():
    a, b = RestartBuffer(seed=4), RestartBuffer(seed=4)
    for buffer in (a, b):
        buffer.add_trajectories([trajectory(problem(i), i % 3 == 0) for i in range(20)])
    assert [a.sample().prefix for _ in range(30)] == [b.sample().prefix for _ in range(30)]
    assert _draws(a, 50, seed=1) == _draws(b, 50, seed=1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"strategy": "greedy"},
            r"unknown restart strategy 'greedy'; valid strategies: \['uniform', 'balanced', 'frontier'\]",
        ),
        ({"capacity": 0}, "capacity must be an int >= 1"),
        ({"max_backtrack": -1}, "max_backtrack must be an int >= 0"),
    ],
)
def test_bad_configuration(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RestartBuffer(**kwargs)


def test_an_empty_buffer_cannot_be_sampled():
    with pytest.raises(ValueError, match="the restart buffer is empty"):
        RestartBuffer().sample()


def _filled(strategy="frontier"):
    buffer = RestartBuffer(strategy=strategy, capacity=50, seed=3)
    buffer.add_trajectories([trajectory(problem(i % 7), correct=i % 3 == 0) for i in range(30)])
    return buffer


def test_save_and_load_round_trip_exactly(tmp_path):
    buffer = _filled()
    buffer.sample()  # the generator has moved
    buffer.save(tmp_path / "buffer.json.gz")
    loaded = RestartBuffer.load(tmp_path / "buffer.json.gz")
    assert loaded.states == buffer.states and loaded.config == buffer.config
    assert all(loaded.pass_rate(f"p{i}") == buffer.pass_rate(f"p{i}") for i in range(7))
    assert [loaded.sample().prefix for _ in range(25)] == [buffer.sample().prefix for _ in range(25)]
    loaded.save(tmp_path / "again.json.gz")  # and saving again gives the same bytes
    buffer_copy = RestartBuffer.load(tmp_path / "again.json.gz")
    assert buffer_copy.states == buffer.states


def test_a_failed_save_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "buffer.json.gz"
    _filled().save(path)
    before = path.read_bytes()
    bigger = _filled()
    bigger.add_trajectories([trajectory(problem(99))])

    def crash(*args):
        raise OSError("disk unplugged")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk unplugged"):
        bigger.save(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["buffer.json.gz"]  # no temporary left
    assert len(RestartBuffer.load(path)) == len(_filled())


def test_a_process_killed_mid_save_leaves_the_previous_file_whole(tmp_path):
    path = tmp_path / "buffer.json.gz"
    _filled().save(path)
    before = path.read_bytes()
    script = f"""
import os, sys
sys.path.insert(0, {str(os.getcwd())!r})
from tests.test_restart import _filled, trajectory, problem
buffer = _filled()
buffer.add_trajectories([trajectory(problem(100 + i)) for i in range(2000)])
real_fsync = os.fsync
def die(fd):  # the data is written but not yet renamed into place: the process dies here
    os._exit(9)
os.fsync = die
buffer.save({str(path)!r})
"""
    result = subprocess.run([sys.executable, "-c", script], timeout=120)
    assert result.returncode == 9
    assert path.read_bytes() == before
    assert len(RestartBuffer.load(path)) == len(_filled())


def test_corrupted_and_foreign_files_are_refused(tmp_path):
    path = tmp_path / "buffer.json.gz"
    _filled().save(path)
    data = path.read_bytes()

    (tmp_path / "truncated").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable satori-env restart buffer"):
        RestartBuffer.load(tmp_path / "truncated")

    document = json.loads(gzip.decompress(data))
    document["payload"]["states"][0][2] = -document["payload"]["states"][0][2]  # a flipped label
    (tmp_path / "tampered").write_bytes(gzip.compress(json.dumps(document).encode()))
    with pytest.raises(ValueError, match="is corrupted: its checksum does not match"):
        RestartBuffer.load(tmp_path / "tampered")

    (tmp_path / "foreign").write_bytes(gzip.compress(b'{"model": "something else"}'))
    with pytest.raises(ValueError, match="is not a satori-env restart buffer"):
        RestartBuffer.load(tmp_path / "foreign")

    document["version"] = 99
    (tmp_path / "future").write_bytes(gzip.compress(json.dumps(document).encode()))
    with pytest.raises(ValueError, match=r"version 99; this satori-env reads versions \[1, 2\]"):
        RestartBuffer.load(tmp_path / "future")

    with pytest.raises(FileNotFoundError, match="no restart buffer at"):
        RestartBuffer.load(tmp_path / "missing")


def _resealed(document):
    """The document with its checksum recomputed: what a crafted file looks like."""
    body = json.dumps(document["payload"], sort_keys=True, separators=(",", ":"))
    return gzip.compress(json.dumps({**document, "sha256": hashlib.sha256(body.encode()).hexdigest()}).encode())


def _craft(payload, path, change):
    crafted = copy.deepcopy(payload)
    change(crafted)
    path.write_bytes(_resealed({"format": "satori-env/restart-buffer", "version": 2, "payload": crafted}))
    return path


HUGE = "x" * 10_000_000


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda p: p["states"][0].__setitem__(1, list("abc")),
            "state 0: the prefix must be a non-empty list of token ids >= 0",
        ),
        (
            lambda p: p["states"][0].__setitem__(1, [-4, R]),
            "state 0: the prefix must be a non-empty list of token ids >= 0",
        ),
        (lambda p: p["states"][0].__setitem__(1, []), "state 0: the prefix must be a non-empty list"),
        (lambda p: p["states"][0].__setitem__(1, [5, 6]), r"state 0: the prefix must end with <\|reflect\|>"),
        (lambda p: p["states"][0].__setitem__(2, 7), "state 0: reflect_status must be -1 or 1, got 7"),
        (lambda p: p["states"][0].__setitem__(2, True), "state 0: reflect_status must be -1 or 1, got True"),
        (lambda p: p["states"][0].__setitem__(0, 10**6), "state 0: problem index 1000000 is not one of the"),
        (lambda p: p["states"].extend(p["states"] * 50), "states must be a list of at most capacity=50"),
        (lambda p: p["config"].__setitem__("capacity", -1), "capacity must be an int >= 1, got -1"),
        (lambda p: p["config"].__setitem__("strategy", HUGE), "unknown restart strategy 'xxx"),
        (lambda p: p["config"]["meta_token_ids"].__setitem__("reflect", "2"), "meta_token_ids must map"),
        (lambda p: p["config"].pop("strategy"), "a restart buffer's config has the keys"),
        (lambda p: p.pop("rng"), "the payload must have exactly the keys"),
        (
            lambda p: p.__setitem__("rng", {"bit_generator": "PCG64", "state": HUGE}),
            "rng is not a NumPy PCG64 generator state",
        ),
        (lambda p: p.__setitem__("pass_counts", {"a": [3, 2]}), "pass_counts must map problem ids to"),
        (lambda p: p["problems"][0].__setitem__("answer", 5), "Problem.answer must be a str"),
        (lambda p: p["problems"][0].__setitem__("colour", "red"), "a Problem dict has the keys"),
        (lambda p: p["problems"][0].__setitem__("meta", HUGE), "Problem.meta must be a dict"),
        (lambda p: p.__setitem__("problems", HUGE), "problems must be a list of Problem dicts"),
    ],
)
def test_a_crafted_file_with_a_valid_checksum_is_refused(tmp_path, change, message):
    path = tmp_path / "buffer.json.gz"
    _filled().save(path)
    payload = json.loads(gzip.decompress(path.read_bytes()))["payload"]
    with pytest.raises(ValueError, match=message) as error:
        RestartBuffer.load(_craft(payload, tmp_path / "crafted.json.gz", change))
    assert len(str(error.value)) < 400  # a 10 MB field is named, not echoed


def test_a_version_1_file_loads_without_a_fingerprint(tmp_path):
    path = tmp_path / "buffer.json.gz"
    buffer = _filled()
    buffer.save(path)
    document = json.loads(gzip.decompress(path.read_bytes()))
    del document["payload"]["config"]["tokenizer_fingerprint"]
    path.write_bytes(_resealed({**document, "version": 1}))
    loaded = RestartBuffer.load(path)
    assert loaded.tokenizer_fingerprint is None and [s.prefix for s in loaded.states] == [
        s.prefix for s in buffer.states
    ]


# -- the environment side -----------------------------------------------------------------------


def _arith_problem():
    return satori_env.load_problems("arith:test", level=2, limit=1)[0]


def _response(problem, answer):
    text = write_solution(problem).replace(f"\\boxed{{{problem.answer}}}", f"\\boxed{{{answer}}}")
    return tuple(TOKENIZER.encode(text))


@pytest.mark.parametrize(
    "source_correct, now_correct, reward",
    [
        (False, True, 0.5),  # fixed a wrong prefix: rule 0 + bonus 0.5
        (False, False, -1.0),  # still wrong: rule -1 + 0
        (True, True, 0.0),  # kept a right prefix right: 0 + 0
        (True, False, -1.5),  # broke a right prefix: rule -1 - 0.5
    ],
)
def test_restarted_episodes_earn_the_reflection_bonus(source_correct, now_correct, reward):
    problem = _arith_problem()
    buffer = RestartBuffer(max_backtrack=0)
    wrong = str(int(problem.answer) + 1)
    (state,) = buffer.add(
        Trajectory(problem, _response(problem, problem.answer if source_correct else wrong), source_correct)
    )
    env = gym.make("SatoriMath-v0", restart_buffer=buffer)
    obs, info = env.reset(options={"restart_state": state})
    assert info["restart"] == {
        "from_restart": True,
        "reflect_status": 1 if source_correct else -1,
        "prefix_tokens": len(state.prefix),
        "skipped": 0,
    }
    assert obs["tokens"][info["prompt_length"] - 1] == R  # the state ends with <|reflect|>
    final = f"Check again.<|explore|>The answer is \\boxed{{{problem.answer if now_correct else wrong}}}."
    _, got, terminated, _, info = env.unwrapped.step_tokens(TOKENIZER.encode(final) + [TOKENIZER.eos_token_id])
    assert terminated and got == reward and info["correct"] is now_correct
    assert (
        info["completion"].startswith(TOKENIZER.decode(state.prefix))
        and info["num_new_tokens"] == len(TOKENIZER.encode(final)) + 1
    )


def test_restart_prob_draws_from_the_buffer():
    buffer = RestartBuffer(max_backtrack=0)
    problem = _arith_problem()
    buffer.add(Trajectory(problem, _response(problem, problem.answer), True))
    always = gym.make("SatoriMath-v0", restart_buffer=buffer, restart_prob=1.0)
    never = gym.make("SatoriMath-v0", restart_buffer=buffer, restart_prob=0.0)
    half = gym.make("SatoriMath-v0", restart_buffer=buffer, restart_prob=0.5)
    assert all(always.reset(seed=s)[1]["restart"]["from_restart"] for s in range(10))
    assert not any(never.reset(seed=s)[1]["restart"]["from_restart"] for s in range(10))
    share = np.mean([half.reset(seed=s)[1]["restart"]["from_restart"] for s in range(200)])
    assert 0.4 < share < 0.6
    assert [half.reset(seed=s)[1]["problem_id"] for s in range(20)] == [
        half.reset(seed=s)[1]["problem_id"] for s in range(20)
    ]


def test_env_trajectories_feed_the_buffer_in_one_call():
    envs = gym.make_vec("SatoriMath-v0", num_envs=4)
    envs.reset(seed=0)
    tokenizer = envs.tokenizer
    completions = [tokenizer.encode(write_solution(env._problem)) + [tokenizer.eos_token_id] for env in envs.envs]
    completions[0] = completions[0][:3]  # this episode goes on
    _, _, terminated, _, infos = envs.step_tokens(completions)
    buffer = RestartBuffer(max_backtrack=1)
    added = buffer.add_trajectories(infos["final_info"]["trajectory"])
    assert terminated.tolist() == [False, True, True, True] and len(added) == 3 * 2
    assert all(state.reflect_status == 1 and state.prefix[-1] == R for state in added)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"restart_prob": 1.5}, ValueError, r"restart_prob must be in \[0, 1\]"),
        ({"restart_buffer": "buffer.json"}, TypeError, "restart_buffer must be a satori_env.RestartBuffer"),
    ],
)
def test_bad_restart_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        gym.make("SatoriMath-v0", **kwargs)


def test_a_buffer_for_another_tokenizer_is_refused(tmp_path):
    from tests.helpers import mid_vocab_pad_tokenizer

    path = mid_vocab_pad_tokenizer(tmp_path)
    other = satori_env.SatoriMathEnv(tokenizer=str(path)).tokenizer  # COAT tokens added at the end
    with pytest.raises(ValueError, match="the restart buffer was built for a tokenizer"):
        gym.make("SatoriMath-v0", restart_buffer=RestartBuffer(tokenizer=other))


def test_a_buffer_or_state_from_a_tokenizer_with_the_same_coat_ids_is_refused(tmp_path):
    """Two tokenizers trained on different texts share the COAT ids (the specials come first)
    but not the rest: only the vocabulary fingerprint tells them apart."""
    from satori_env.tokenizer import tokenizer_fingerprint, train_tokenizer

    other = train_tokenizer(["entirely different text " * 50, "with other merges 123"] * 20, vocab_size=300)
    buffer = RestartBuffer(tokenizer=other)
    assert buffer.meta_token_ids == RestartBuffer().meta_token_ids
    assert buffer.tokenizer_fingerprint == tokenizer_fingerprint(other) != tokenizer_fingerprint(TOKENIZER)
    with pytest.raises(ValueError, match="the restart buffer was built for another tokenizer"):
        gym.make("SatoriMath-v0", restart_buffer=buffer)
    state = buffer.derive(trajectory())[0]
    env = gym.make("SatoriMath-v0")
    with pytest.raises(ValueError, match="the restart state's prefix was written with another tokenizer"):
        env.reset(options={"restart_state": state})
    # the state's fingerprint survives a save and load; a state built by hand is not checked
    buffer.add(trajectory())
    buffer.save(tmp_path / "other.json.gz")
    assert (
        RestartBuffer.load(tmp_path / "other.json.gz").states[0].tokenizer_fingerprint == buffer.tokenizer_fingerprint
    )
    env.reset(options={"restart_state": RestartState(PROBLEM, (C, 100, R), -1)})


def test_reset_options_are_checked():
    env = gym.make("SatoriMath-v0")
    with pytest.raises(ValueError, match="not both"):
        env.reset(options={"problem": PROBLEM, "restart_state": RestartState(PROBLEM, (R,), -1)})
    with pytest.raises(TypeError, match="must be a RestartState"):
        env.reset(options={"restart_state": (R,)})


def test_prefixes_longer_than_the_limit_are_not_derived():
    limited = RestartBuffer(max_backtrack=3, max_prefix_tokens=7)
    assert [len(s.prefix) for s in limited.derive(trajectory())] == [4, 6]  # 8 and 11 are too long
    with pytest.raises(ValueError, match="max_prefix_tokens must be None or an int >= 1"):
        RestartBuffer(max_prefix_tokens=0)


def test_the_readme_restart_pattern_runs_for_many_iterations_with_a_small_window():
    """Restarts of restarted episodes grow; a buffer with no max_prefix_tokens must never crash
    the env: states that do not fit are skipped, counted in info, with one warning."""
    buffer = RestartBuffer(strategy="uniform", max_backtrack=0)
    envs = gym.make_vec("SatoriMath-v0", num_envs=8, restart_buffer=buffer, restart_prob=1.0, max_new_tokens=32)
    rng = np.random.default_rng(0)
    _, info = envs.reset(seed=0)
    skipped, restarted = 0, 0
    with pytest.warns(UserWarning, match=r"does not fit .* RestartBuffer\(max_prefix_tokens=33\)"):
        for _ in range(40):
            tokens = []
            for env in envs.envs:  # some tokens, then EOS: finished episodes feed the buffer
                room = env.max_new_tokens - (env._length - env._start)
                tokens.append(list(rng.integers(20, 300, size=rng.integers(room // 2, room))) + [env.eos_id])
            *_, info = envs.step_tokens(tokens)
            buffer.add_trajectories(info["final_info"]["trajectory"])
            skipped += int(info["restart"]["skipped"].sum())
            restarted += int(info["restart"]["from_restart"].sum())
    assert skipped > 20 and restarted > 200
    assert sum(env.restart_skips for env in envs.envs) == skipped
    assert max(len(s.prefix) for s in buffer.states) > envs.envs[0].max_prompt_tokens  # states did outgrow the window
    # a pinned state that does not fit is an error naming the setting that keeps such states out
    too_long = max(buffer.states, key=lambda s: len(s.prefix))
    with pytest.raises(ValueError, match=r"RestartBuffer\(max_prefix_tokens=\.\.\.\)"):
        envs.envs[0].reset(options={"restart_state": too_long})
