"""Vector forms: Gymnasium's sync/async wrappers and the native batched env for LLM rollouts."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import satori_env
from satori_env import Problem, SatoriMathEnv, SatoriMathVectorEnv
from tests.helpers import solution_tokens


def test_make_vec_defaults_to_the_native_vector_env():
    envs = gym.make_vec("SatoriMath-v0", num_envs=3)
    assert isinstance(envs.unwrapped, SatoriMathVectorEnv)
    obs, infos = envs.reset(seed=0)
    assert obs["tokens"].shape == (3, envs.single_observation_space["tokens"].shape[0])
    assert infos["prompt_length"].shape == (3,) and infos["_prompt_length"].all()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_gymnasium_vector_envs_run(mode):
    envs = gym.make_vec("SatoriMath-v0", num_envs=2, vectorization_mode=mode, max_new_tokens=4)
    try:
        envs.reset(seed=0)
        seven = np.array([7, 7])
        for _ in range(4):
            obs, rewards, terminated, truncated, infos = envs.step(seven)
        assert truncated.all() and (rewards == -1.0).all()  # "7777" is no answer
        assert "final_info" in infos or "completion" in infos  # same-step or next-step autoreset
    finally:
        envs.close()


def _solutions(envs):
    return [solution_tokens(env, env._problem) for env in envs.envs]


def test_step_tokens_verifies_finished_episodes_in_one_batch(monkeypatch):
    envs = SatoriMathVectorEnv(num_envs=4)
    envs.reset(seed=0)
    verifier = satori_env.verifier.default_verifier()
    batches = []
    original = verifier.check_batch
    monkeypatch.setattr(
        verifier, "check_batch", lambda pairs, **kw: batches.append(len(pairs)) or original(pairs, **kw)
    )
    chunks = _solutions(envs)
    chunks[1] = solution_tokens(envs.envs[1], envs.envs[1]._problem, wrong=True)
    old_ids = [env._problem.id for env in envs.envs]
    obs, rewards, terminated, truncated, infos = envs.step_tokens(chunks)
    assert batches == [4]
    assert rewards.tolist() == [0.0, -1.0, 0.0, 0.0] and terminated.all() and not truncated.any()
    assert infos["final_info"]["correct"].tolist() == [True, False, True, True]
    assert infos["final_info"]["problem_id"].tolist() == old_ids
    # same-step autoreset: the observation and info are the next episode's
    assert [env._problem.id for env in envs.envs] != old_ids and infos["_final_obs"].all()
    assert (obs["length"][:, 0] == infos["prompt_length"]).all()


@pytest.mark.parametrize("mode", [AutoresetMode.DISABLED, "Disabled"])
def test_disabled_autoreset_leaves_finished_episodes_as_they_ended(mode):
    envs = SatoriMathVectorEnv(num_envs=3, autoreset_mode=mode)
    assert envs.metadata["autoreset_mode"] is AutoresetMode.DISABLED
    assert SatoriMathVectorEnv.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP  # the class default is untouched
    envs.reset(seed=0)
    old_ids = [env._problem.id for env in envs.envs]
    chunks = _solutions(envs)
    chunks[2] = solution_tokens(envs.envs[2], envs.envs[2]._problem, wrong=True)
    obs, rewards, terminated, truncated, infos = envs.step_tokens(chunks)
    assert rewards.tolist() == [0.0, 0.0, -1.0] and terminated.all()
    # no final_info: the step's info is the finished episodes' own, and no new problem was drawn
    assert "final_info" not in infos and "final_obs" not in infos
    assert infos["correct"].tolist() == [True, True, False] and infos["problem_id"].tolist() == old_ids
    assert [env._problem.id for env in envs.envs] == old_ids
    assert (obs["length"][:, 0] == [len(c) + p for c, p in zip(chunks, infos["prompt_length"])]).all()
    with pytest.raises(RuntimeError, match="reset"):
        envs.step(np.array([7, 7, 7]))
    envs.reset()
    assert [env._problem.id for env in envs.envs] != old_ids


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, "next_step", None])
def test_unsupported_autoreset_modes_are_refused(mode):
    with pytest.raises(ValueError, match="autoreset_mode must be one of .*Disabled.*SameStep"):
        SatoriMathVectorEnv(num_envs=2, autoreset_mode=mode)


def test_copies_encode_a_shared_problem_once(monkeypatch):
    envs = SatoriMathVectorEnv(num_envs=4)
    envs.reset(seed=0)
    calls = []
    encode = envs.tokenizer.encode
    monkeypatch.setattr(envs.tokenizer, "encode", lambda text, **kw: calls.append(text) or encode(text, **kw))
    problem = Problem(id="p", question="What is 12 + 30?", answer="42", source="test")
    envs.reset(options={"problem": problem})
    assert len(calls) == 1 and all(env._problem is problem for env in envs.envs)


def test_partial_chunks_and_padded_generation_output():
    envs = SatoriMathVectorEnv(num_envs=2)
    envs.reset(seed=1)
    full = _solutions(envs)
    first = [row[:3] for row in full]
    _, rewards, terminated, truncated, infos = envs.step_tokens(first)
    assert not terminated.any() and not truncated.any() and infos == {}
    rest = [row[3:] for row in full]
    width = max(map(len, rest)) + 5
    padded = np.full((2, width), envs.envs[0].pad_id)  # what a generation engine returns
    for i, row in enumerate(rest):
        padded[i, : len(row)] = row
    _, rewards, terminated, _, infos = envs.step_tokens(padded)
    assert terminated.all() and rewards.tolist() == [0.0, 0.0]


def test_native_steps_match_independent_envs():
    envs = SatoriMathVectorEnv(num_envs=3, max_new_tokens=6)
    singles = [SatoriMathEnv(max_new_tokens=6) for _ in range(3)]
    obs, _ = envs.reset(seed=10)
    for i, env in enumerate(singles):
        single_obs, _ = env.reset(seed=10 + i)
        assert np.array_equal(single_obs["tokens"], obs["tokens"][i])
    rng = np.random.default_rng(0)
    for _ in range(13):
        actions = rng.integers(6, 1000, size=3)
        obs, rewards, terminated, truncated, infos = envs.step(actions)
        for i, env in enumerate(singles):
            single_obs, reward, term, trunc, _ = env.step(actions[i])
            assert (reward, term, trunc) == (rewards[i], terminated[i], truncated[i])
            if term or trunc:
                single_obs, _ = env.reset()
            assert np.array_equal(single_obs["tokens"], obs["tokens"][i])


def test_seeds_and_shared_state():
    envs = SatoriMathVectorEnv(num_envs=3)
    _, infos_a = envs.reset(seed=7)
    _, infos_b = envs.reset(seed=[7, 8, 9])
    assert infos_a["problem_id"].tolist() == infos_b["problem_id"].tolist()
    assert len({id(env.tokenizer) for env in envs.envs}) == 1 and len({id(env.source) for env in envs.envs}) == 1
    assert envs.action_masks().shape == (3, envs.single_action_space.n)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda e: e.step_tokens([[7]]), ValueError, r"one token sequence per environment \(2\), got 1"),
        (lambda e: e.step(np.array([7])), ValueError, "actions must be 2 token ids"),
        (lambda e: e.step(np.array([7, 5000])), ValueError, "outside the action space"),
        (lambda e: e.reset(seed=[1]), ValueError, "got 1 seeds for 2 environments"),
    ],
)
def test_bad_batches_are_explained(call, error, message):
    envs = SatoriMathVectorEnv(num_envs=2)
    envs.reset(seed=0)
    with pytest.raises(error, match=message):
        call(envs)


def test_stepping_before_reset_is_an_error():
    with pytest.raises(RuntimeError, match="call reset"):
        SatoriMathVectorEnv(num_envs=2).step(np.array([7, 7]))
    with pytest.raises(ValueError, match="num_envs must be a positive int"):
        SatoriMathVectorEnv(num_envs=0)


def test_per_copy_reset_options_pin_problems():
    problems = satori_env.load_problems("arith:test", level=2, limit=3)
    envs = SatoriMathVectorEnv(num_envs=3)
    _, infos = envs.reset(options=[{"problem": p} for p in problems])
    assert infos["problem_id"].tolist() == [p.id for p in problems]
    with pytest.raises(ValueError, match="got 2 option dicts for 3 environments"):
        envs.reset(options=[{}, {}])


def test_reset_groups_gives_each_group_one_start():
    from satori_env import RestartBuffer, RestartState

    envs = SatoriMathVectorEnv(num_envs=6, curriculum="uniform")
    envs.reset(seed=0)
    _, info = envs.reset_groups(3)
    ids = list(info["problem_id"])
    assert ids[:3] == [ids[0]] * 3 and ids[3:] == [ids[3]] * 3 and ids[0] != ids[3]
    arms = list(info["curriculum_arm"])
    assert arms[:3] == [arms[0]] * 3  # the whole group counts for the arm its first copy drew
    assert [t.tolist() for t in envs.tokens[:3]] == [envs.tokens[0].tolist()] * 3

    problem = satori_env.Problem("pinned", "What is 2+3?", "5", "demo")
    state = RestartState(problem, (envs.tokenizer.convert_tokens_to_ids("<|reflect|>"),), -1)
    _, info = envs.reset_groups(2, starts=[{"problem": problem}, {"restart_state": state}, None])
    assert list(info["problem_id"][:4]) == ["pinned"] * 4
    assert list(info["restart"]["from_restart"][:4]) == [False, False, True, True]
    with pytest.raises(ValueError, match="group_size must divide the number of environments"):
        envs.reset_groups(4)
    with pytest.raises(ValueError, match="got 2 starts for 3 groups"):
        envs.reset_groups(2, starts=[None, None])
    assert isinstance(envs.restart_buffer, type(None)) and len(envs.rng_states()) == 6
    envs.restart_buffer = RestartBuffer()
    assert all(env.restart_buffer is envs.restart_buffer for env in envs.envs)
