"""SatoriMath-v0: the token-level COAT MDP behaves as its docstring says."""

import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

import satori_env
from satori_env import ArithmeticTasks, Problem, SatoriMathEnv, load_problems
from tests.helpers import mid_vocab_pad_tokenizer, solution_tokens


@pytest.fixture(scope="module")
def env():
    environment = gym.make("SatoriMath-v0", render_mode="ansi")
    yield environment
    environment.close()


@pytest.mark.parametrize("env_id", list(satori_env.ENV_IDS))
@pytest.mark.parametrize("mode", ["box", "tokens"])
def test_gymnasium_checker_passes_on_every_registered_id(env_id, mode):
    environment = gym.make(env_id, observation_mode=mode, render_mode="ansi")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the checker's warnings count as failures
        check_env(environment.unwrapped)


@pytest.mark.parametrize("env_id", list(satori_env.ENV_IDS))
def test_stable_baselines3_checker_passes(env_id):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3_check_env(gym.make(env_id).unwrapped)


def test_make_with_no_arguments_works_offline():
    code = (
        "import gymnasium as gym, satori_env; env = gym.make('SatoriMath-v0'); obs, info = env.reset(seed=0); "
        "obs, r, term, trunc, info = env.step(env.action_space.sample()); print(info == {}, obs['length'][0] > 0)"
    )
    env_vars = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env_vars)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True"]


def test_correct_solution_gets_the_top_reward_and_a_full_info(env):
    _, info = env.reset(seed=3)
    problem = env.unwrapped._problem
    for token in solution_tokens(env, problem):
        _, reward, terminated, truncated, info = env.step(token)
    assert (reward, terminated, truncated) == (0.0, True, False)
    assert info["correct"] and info["answer"] == problem.answer == info["gold"]
    assert info["reward_terms"] == {"rule": 0.0, "reflection": 0.0} and info["verifier_status"] == "ok"
    assert info["actions"] == {"continue": len(problem.meta["steps"]) + 1, "reflect": 0, "explore": 0}
    assert info["completion"].startswith("<|continue|>") and info["completion"].endswith(
        f"\\boxed{{{problem.answer}}}."
    )
    assert info["problem_id"] == problem.id and info["num_new_tokens"] == len(solution_tokens(env, problem))


def test_wrong_solution_gets_the_bottom_reward(env):
    env.reset(seed=3)
    _, reward, terminated, _, info = env.unwrapped.step_tokens(solution_tokens(env, env.unwrapped._problem, wrong=True))
    assert (reward, terminated, info["correct"]) == (-1.0, True, False)


def test_binary_reward_preset():
    environment = gym.make("SatoriMath-v0", reward="binary")
    environment.reset(seed=1)
    _, reward, _, _, info = environment.unwrapped.step_tokens(
        solution_tokens(environment, environment.unwrapped._problem)
    )
    assert reward == 1.0 and info["reward_terms"] == {"correct": 1.0}


def test_rewards_are_zero_until_the_end(env):
    env.reset(seed=4)
    tokens = solution_tokens(env, env.unwrapped._problem)
    rewards = [env.step(token)[1] for token in tokens]
    assert rewards[:-1] == [0.0] * (len(tokens) - 1)


def test_truncation_at_max_new_tokens_is_not_termination():
    environment = gym.make("SatoriMath-v0", max_new_tokens=5)
    environment.reset(seed=0)
    digit = environment.unwrapped.tokenizer.convert_tokens_to_ids("7")
    results = [environment.step(digit) for _ in range(5)]
    assert [r[3] for r in results] == [False] * 4 + [True]
    assert not any(r[2] for r in results)
    assert results[-1][1] == -1.0 and results[-1][4]["completion"] == "77777"
    with pytest.raises(RuntimeError, match="call reset"):
        environment.step(digit)


def test_truncation_at_the_context_limit():
    environment = gym.make("SatoriMath-v0", context_limit=40, max_prompt_tokens=32)
    _, info = environment.reset(seed=0)
    room = 40 - info["prompt_length"]
    digit = environment.unwrapped.tokenizer.convert_tokens_to_ids("7")
    truncations = [environment.step(digit)[3] for _ in range(room)]
    assert truncations == [False] * (room - 1) + [True]
    assert environment.observation_space["tokens"].shape == (40,)


def test_a_template_stop_token_terminates():
    environment = gym.make("SatoriMath-v0", prompt_template="satori")
    environment.reset(seed=0)
    tokenizer = environment.unwrapped.tokenizer
    _, _, terminated, _, info = environment.unwrapped.step_tokens(
        tokenizer.encode("\\boxed{3}<|im_end|>", add_special_tokens=False)
    )
    assert terminated and info["completion"] == "\\boxed{3}"


def test_reset_is_reproducible_under_a_seed():
    first, second = gym.make("SatoriMath-v0"), gym.make("SatoriMath-v0")
    obs_a, info_a = first.reset(seed=123)
    obs_b, info_b = second.reset(seed=123)
    assert info_a == info_b and np.array_equal(obs_a["tokens"], obs_b["tokens"])
    ids = {first.reset(seed=seed)[1]["problem_id"] for seed in range(20)}
    assert len(ids) > 15  # different seeds, different problems


def test_seeded_random_play_is_reproducible():
    def play(seed):
        environment = gym.make("SatoriMath-v0", max_new_tokens=20)
        environment.reset(seed=seed)
        environment.action_space.seed(seed)
        trace = []
        for _ in range(60):
            obs, reward, terminated, truncated, _ = environment.step(environment.action_space.sample())
            trace.append((obs["length"][0], reward))
            if terminated or truncated:
                environment.reset()
        return trace

    assert play(5) == play(5)


def test_reset_options_pin_a_problem(env):
    problem = Problem("pinned", "What is 2+3?", "5", "demo")
    _, info = env.reset(options={"problem": problem})
    assert info["problem_id"] == "pinned" and env.unwrapped._problem is problem
    with pytest.raises(
        ValueError,
        match=r"unknown reset option\(s\) \['restart'\]; "
        r"valid options: \['problem', 'restart_state', 'curriculum_arm'\]",
    ):
        env.reset(options={"restart": 1})
    with pytest.raises(TypeError, match="must be a satori_env.Problem"):
        env.reset(options={"problem": "What is 2+3?"})


def test_observations_box_and_tokens(env):
    obs, info = env.reset(seed=0)
    length = info["prompt_length"]
    assert obs["length"][0] == length and obs["tokens"].shape == env.observation_space["tokens"].shape
    assert (obs["tokens"][length:] == env.unwrapped.pad_id).all()
    token_env = gym.make("SatoriMath-v0", observation_mode="tokens")
    tokens, info = token_env.reset(seed=0)
    assert np.array_equal(tokens, obs["tokens"][:length])
    grown, *_ = token_env.step(7)
    assert len(grown) == length + 1 and grown[-1] == 7 and len(tokens) == length


def test_the_shipped_tokenizer_leaves_padding_out_of_the_action_space(env):
    base = env.unwrapped
    assert base.pad_id == len(base.tokenizer) - 1 and env.action_space.n == base.pad_id
    assert base.action_masks().all() and base.action_masks().shape == (env.action_space.n,)


def test_padding_inside_the_vocabulary_is_masked_and_refused(tmp_path):
    environment = gym.make("SatoriMath-v0", tokenizer=str(mid_vocab_pad_tokenizer(tmp_path)))
    base = environment.unwrapped
    assert base.pad_id < environment.action_space.n and not base.action_masks()[base.pad_id]
    assert base.action_masks().sum() == environment.action_space.n - 1
    environment.reset(seed=0)
    with pytest.raises(ValueError, match=f"token id {base.pad_id} is the padding token"):
        environment.step(base.pad_id)


@pytest.mark.parametrize(
    "action, error, message",
    [
        (-1, ValueError, r"token id -1 is outside the action space Discrete\(1023\)"),
        (1023, ValueError, r"token id 1023 \(the padding token\) is outside the action space"),
        (5000, ValueError, "outside the action space"),
        (1.5, TypeError, "an action is one token id"),
        ("7", TypeError, "an action is one token id"),
        (True, TypeError, "an action is one token id"),
        (2**63, ValueError, r"token id 9223372036854775808 is outside the action space"),
        (np.uint64(2**63), ValueError, r"token id 9223372036854775808 is outside the action space"),
        (-(2**70), ValueError, "outside the action space"),
    ],
)
def test_invalid_actions_raise_clear_errors(env, action, error, message):
    env.reset(seed=0)
    with pytest.raises(error, match=message):
        env.unwrapped.step(action)


def test_numpy_integer_actions_are_accepted(env):
    env.reset(seed=0)
    assert env.step(np.int64(7))[0]["tokens"][env.unwrapped._prompt_length] == 7
    assert env.step(np.array(8))[0]["tokens"][env.unwrapped._prompt_length + 1] == 8


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"max_new_token": 5}, TypeError, r"unknown argument\(s\) 'max_new_token' \(did you mean 'max_new_tokens'\?\)"),
        ({"observation_mode": "text"}, ValueError, r"observation_mode must be one of \('box', 'tokens'\)"),
        ({"render_mode": "human"}, ValueError, r"render_mode must be None or one of \['ansi'\]"),
        ({"max_new_tokens": 0}, ValueError, "max_new_tokens must be a positive int"),
        (
            {"prompt_template": "chatml"},
            ValueError,
            r"unknown prompt template 'chatml': use one of \['compact', 'satori'\]",
        ),
        ({"reward": "dense"}, ValueError, r"unknown reward 'dense'; valid presets: \['binary', 'satori'\]"),
        ({"tasks": "gsm8k"}, ValueError, "several splits"),
        ({"tasks": 42}, TypeError, "tasks must be None, a source name"),
        ({"tasks": []}, ValueError, "at least one Problem"),
        ({"tokenizer": 3.0}, TypeError, "tokenizer must be None"),
        (
            {"verifier": "exact"},
            ValueError,
            "unknown answer rule 'exact'; valid rules: \\['math-verify', 'satori-release'\\]",
        ),
        ({"verifier": 3}, TypeError, "verifier must be None .* an answer rule's name .* or a satori_env.Verifier"),
        ({"verifier": satori_env.verify}, TypeError, "verifier must be None"),
    ],
)
def test_invalid_arguments_raise_clear_errors(kwargs, error, message):
    with pytest.raises(error, match=message), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gym.make's own warning about an unknown render mode
        gym.make("SatoriMath-v0", **kwargs)


def test_a_prompt_longer_than_the_window_is_explained():
    environment = gym.make("SatoriMath-v0", max_prompt_tokens=8)
    with pytest.raises(ValueError, match="pass a larger max_prompt_tokens"):
        environment.reset(seed=0)


def test_prompt_window_is_sized_from_the_tasks():
    problems = load_problems("gsm8k:test", limit=50)
    environment = SatoriMathEnv(tasks=problems)
    longest = max(len(environment.tokenizer.encode(environment.template.format(p.question))) for p in problems)
    assert environment.max_prompt_tokens == longest
    for problem in problems:
        environment.reset(options={"problem": problem})  # every problem fits


def test_tasks_as_a_list_a_name_and_a_source():
    problems = load_problems("arith:test", level=2, limit=5)
    ids = {SatoriMathEnv(tasks=problems).reset(seed=s)[1]["problem_id"] for s in range(30)}
    assert ids <= {p.id for p in problems}
    assert SatoriMathEnv(tasks="math500").reset(seed=0)[1]["source"] == "math500"
    _, info = SatoriMathEnv(tasks=ArithmeticTasks(levels=[5], split="test")).reset(seed=0)
    assert (info["level"], info["source"]) == (5, "arith:test")


def test_render_shows_the_coat_structure(env):
    env.reset(seed=3)
    env.unwrapped.step_tokens(solution_tokens(env, env.unwrapped._problem)[:-1])
    text = env.render()
    assert text.startswith("Problem: ") and text.count("[continue]") == len(env.unwrapped._problem.meta["steps"]) + 1
    assert "correct" not in text  # running: no verdict yet
    env.unwrapped.step_tokens([env.unwrapped.eos_id])
    last = env.render().rstrip("\n").splitlines()[-1]
    answer = env.unwrapped._problem.answer
    assert (
        last
        == f"terminated: answer {answer!r}, gold {answer!r}, correct (ok); reward +0.00 = rule +0.00 reflection +0.00"
    )
    with pytest.warns(UserWarning, match="render_mode='ansi'"):
        assert gym.make("SatoriMath-v0").unwrapped.render() is None  # no render_mode


def test_per_token_work_does_not_decode(env, monkeypatch):
    """O(1) per token: the text is decoded once, when the episode ends, not on every step."""
    env.reset(seed=3)
    calls = []
    original = env.unwrapped.tokenizer.decode
    monkeypatch.setattr(env.unwrapped.tokenizer, "decode", lambda *a, **k: calls.append(1) or original(*a, **k))
    tokens = solution_tokens(env, env.unwrapped._problem)
    for token in tokens[:-1]:
        env.step(token)
    assert calls == []
    env.step(tokens[-1])
    assert calls == [1]


# -- step_tokens: exactly what stepping one by one gives ------------------------------------------

EQUIVALENCE_ENV = SatoriMathEnv(max_new_tokens=12, prompt_template="satori")
ALPHABET = [0, 1, 2, 3, 4, 5, 30, 31, 200, 700, 1022]  # EOS, COAT, <|im_start|>, <|im_end|> (a stop), text


def _state(environment):
    return environment._tokens[: environment._length].tolist(), dict(environment._actions), environment._done


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 1000), tokens=st.lists(st.sampled_from(ALPHABET), min_size=0, max_size=14))
def test_step_tokens_equals_stepping_one_by_one(seed, tokens):
    environment = EQUIVALENCE_ENV
    environment.reset(seed=seed)
    one_by_one, error = None, None
    try:
        for token in tokens:
            one_by_one = environment.step(token)
    except RuntimeError:  # a token after the end of the episode
        error = True
    state_after_steps = _state(environment)

    environment.reset(seed=seed)
    if error:
        before = _state(environment)
        with pytest.raises(ValueError, match="after the episode ends"):
            environment.step_tokens(tokens)
        assert _state(environment) == before  # nothing was applied
        return
    at_once = environment.step_tokens(tokens)
    assert _state(environment) == state_after_steps
    if tokens:
        obs_a, *rest_a = one_by_one
        obs_b, *rest_b = at_once
        assert np.array_equal(obs_a["tokens"], obs_b["tokens"]) and rest_a == rest_b


@pytest.mark.parametrize("tokens", [[5, 2**63], [5, 2**64], np.array([5, 2**63], dtype=np.uint64), [5, -(2**70)]])
def test_step_tokens_refuses_ids_past_int64_with_the_envs_error(env, tokens):
    env.reset(seed=0)
    with pytest.raises(ValueError, match="outside the action space Discrete"):
        env.unwrapped.step_tokens(tokens)
    vector = gym.make_vec("SatoriMath-v0", num_envs=2)
    vector.reset(seed=0)
    with pytest.raises(ValueError, match="outside the action space Discrete"):
        vector.step_tokens([tokens, [5]])


def test_step_tokens_checks_every_token_before_applying_any(env):
    env.reset(seed=0)
    before = _state(env.unwrapped)
    with pytest.raises(ValueError, match="outside the action space"):
        env.unwrapped.step_tokens([7, 8, 5000])
    assert _state(env.unwrapped) == before
    with pytest.raises(TypeError, match="1-D sequence of token ids"):
        env.unwrapped.step_tokens([[7, 8]])
