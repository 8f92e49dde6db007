"""SatoriMath as an OpenEnv server on the loopback: concurrent sessions play episodes whose rewards
and terms match the in-process env, restart states by id, and bad input answered with an error
that leaves every session as it was."""

from __future__ import annotations

import socket
import threading
import time

import pytest

pytest.importorskip("openenv")

from satori_env import SatoriMathEnv, load_problems  # noqa: E402
from satori_env.integrations.openenv import SatoriAction, SatoriEnvClient, background_server  # noqa: E402
from satori_env.tasks.arithmetic import write_solution  # noqa: E402
from satori_env.tokenizer import default_tokenizer  # noqa: E402

MAX_NEW_TOKENS = 300
TOKENIZER = default_tokenizer()
PROBLEMS = load_problems("arith:train", level=2, limit=6, seed=0)


@pytest.fixture(scope="module")
def server():
    with background_server(max_sessions=4, max_new_tokens=MAX_NEW_TOKENS) as url:
        yield url


def _as_dict(problem):
    return {"id": problem.id, "question": problem.question, "answer": problem.answer}


def _solution(problem, wrong: bool = False) -> list[int]:
    text = write_solution(problem)
    if wrong:
        text = text.replace(f"\\boxed{{{problem.answer}}}", f"\\boxed{{{int(problem.answer) + 1}}}")
    return TOKENIZER.encode(text, add_special_tokens=False) + [TOKENIZER.eos_token_id]


def _in_process(problem, tokens, restart_state=None, max_new_tokens=MAX_NEW_TOKENS):
    env = SatoriMathEnv(max_new_tokens=max_new_tokens, max_prompt_tokens=400)
    env.reset(options={"restart_state": restart_state} if restart_state is not None else {"problem": problem})
    _, reward, _, _, info = env.step_tokens(tokens)
    return reward, info["reward_terms"]


def _play(url: str, problems, wrong: bool, results: list, errors: list) -> None:
    try:
        with SatoriEnvClient(base_url=url).sync() as client:
            for problem in problems:
                start = client.reset(problem=_as_dict(problem))
                tokens = _solution(problem, wrong)
                half = len(tokens) // 2  # two steps: a chunk, then the rest
                client.step(SatoriAction(tokens=tokens[:half]))
                end = client.step(SatoriAction(tokens=tokens[half:]))
                results.append((problem, tokens, start.observation, end))
    except Exception as error:  # noqa: BLE001 - reported to the test thread
        errors.append(error)


def test_two_concurrent_clients_get_the_in_process_rewards(server):
    results: list = []
    errors: list = []
    threads = [
        threading.Thread(target=_play, args=(server, PROBLEMS[:3], False, results, errors)),
        threading.Thread(target=_play, args=(server, PROBLEMS[3:], True, results, errors)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors and len(results) == 6
    for problem, tokens, start, end in results:
        expected_reward, expected_terms = _in_process(problem, tokens)
        assert start.tokens == TOKENIZER.encode(f"Problem: {problem.question}\nSolution:") and not start.done
        assert end.done and end.reward == expected_reward
        assert end.observation.result["reward_terms"] == expected_terms
        assert end.observation.tokens == start.tokens + tokens
    assert sorted(r[3].observation.result["correct"] for r in results) == [False] * 3 + [True] * 3


def test_a_restart_state_by_id_starts_its_prefix_and_earns_the_bonus(server):
    problem = PROBLEMS[0]
    with SatoriEnvClient(base_url=server).sync() as client:
        client.reset(problem=_as_dict(problem))
        client.step(SatoriAction(tokens=_solution(problem, wrong=True)))  # feeds the shared buffer
        again = client.reset(problem=_as_dict(problem))
        assert again.observation.restart_states  # its states, by id
        state_id = again.observation.restart_states[-1]
        start = client.reset(restart_state=state_id)
        reflect = TOKENIZER.convert_tokens_to_ids("<|reflect|>")
        assert (
            start.observation.tokens[-1] == reflect and len(start.observation.tokens) > start.observation.prompt_length
        )
        fix = _solution(problem)[-12:]  # a right boxed answer after the reflection
        end = client.step(SatoriAction(tokens=fix))
    from satori_env import RestartState

    prefix = tuple(start.observation.tokens[start.observation.prompt_length :])
    expected_reward, expected_terms = _in_process(problem, fix, RestartState(problem, prefix, -1))
    assert end.reward == expected_reward and end.observation.result["reward_terms"] == expected_terms
    assert end.observation.result["from_restart"] and end.observation.result["reflect_status"] == -1


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"tokens": [5000]}, "outside the action space"),
        ({"tokens": "not ids"}, "Invalid message"),
        ({"tokens": [1], "extra": 2}, "Invalid message"),
    ],
)
def test_bad_input_is_an_error_and_leaves_the_sessions_as_they_were(server, bad, message):
    problem = PROBLEMS[1]
    with SatoriEnvClient(base_url=server).sync() as client, SatoriEnvClient(base_url=server).sync() as other:
        client.reset(problem=_as_dict(problem))
        other.reset(problem=_as_dict(PROBLEMS[2]))
        tokens = _solution(problem)
        client.step(SatoriAction(tokens=tokens[:5]))
        with pytest.raises(RuntimeError, match=message):  # a raw message: the typed client cannot send these
            client._run(client.async_client._send_and_receive({"type": "step", "data": bad}))
        with pytest.raises(RuntimeError, match="no restart state 'nope'"):
            client.reset(restart_state="nope")
        state = client.state()
        assert state.tokens_written == 5 and not state.done  # unchanged by the bad messages
        end = client.step(SatoriAction(tokens=tokens[5:]))
        assert end.done and end.observation.result["correct"]
        other_end = other.step(SatoriAction(tokens=_solution(PROBLEMS[2])))
        assert other_end.done and other_end.observation.result["correct"]


def test_a_step_before_any_reset_is_an_error(server):
    with SatoriEnvClient(base_url=server).sync() as client:
        with pytest.raises(RuntimeError, match="call reset\\(\\) first"):
            client.step(SatoriAction(tokens=[5]))


def test_the_serve_openenv_command_serves_episodes(tmp_path):
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "agents.cli",
        "serve-openenv",
        "--port",
        str(port),
        "--max-new-tokens",
        "64",
        "--no-restart",
    ]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as attempt:
                if attempt.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert server.poll() is None, server.stdout.read()
            time.sleep(0.2)
        with SatoriEnvClient(base_url=f"http://127.0.0.1:{port}").sync() as client:
            start = client.reset(seed=3)
            assert start.observation.tokens and start.observation.restart_states == []
            end = client.step(SatoriAction(tokens=[TOKENIZER.eos_token_id]))
            assert end.done and end.reward == -1.0 and end.observation.result["correct"] is False
    finally:
        server.terminate()
        server.wait(10)


@pytest.mark.slow
def test_grpo_steps_through_the_server_keep_the_env_semantics(tiny_checkpoint, tmp_path):
    pytest.importorskip("trl")
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from satori_env import RestartState
    from satori_env.integrations.trl import SatoriRemoteRollout

    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    with background_server(max_new_tokens=24) as url:
        rollout = SatoriRemoteRollout(url, tokenizer=tokenizer, restart_prob=1.0)
        dataset = rollout.dataset(16)
        with SatoriEnvClient(base_url=url).sync() as client:  # a wrong start of every problem feeds the buffer
            for problem in rollout._problems.values():
                client.reset(problem=problem.to_dict())
                client.step(SatoriAction(tokens=_solution(problem)[:12] + [TOKENIZER.eos_token_id]))
        outputs = []

        def recorded(prompts, trainer):
            outputs.append(rollout(prompts, trainer))
            return outputs[-1]

        args = GRPOConfig(
            output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=8, gradient_accumulation_steps=1,
            num_generations=4, max_completion_length=24, temperature=1.0, learning_rate=1e-4, beta=0.0, use_cpu=True,
            bf16=False, logging_steps=1, save_strategy="no", report_to="none", seed=0, disable_tqdm=True,
            generation_kwargs=rollout.generation_kwargs(),
        )  # fmt: skip
        trainer = GRPOTrainer(
            model=AutoModelForCausalLM.from_pretrained(tiny_checkpoint), args=args, processing_class=tokenizer,
            train_dataset=dataset, rollout_func=recorded, reward_funcs=rollout.reward_funcs(),
        )  # fmt: skip
        trainer.train()
        rollout.close()
    assert len(outputs) == 2
    reflect = tokenizer.convert_tokens_to_ids("<|reflect|>")
    by_prompt = {tuple(TOKENIZER.encode(f"Problem: {p.question}\nSolution:")): p for p in rollout._problems.values()}
    for output in outputs:
        assert sum(output["satori_from_restart"]) == 8  # every group restarted
        for i, (prompt, completion) in enumerate(zip(output["prompt_ids"], output["completion_ids"])):
            assert prompt[-1] == reflect  # the restart prefix is in the prompt: TRL never trains on it
            head = next(h for h in by_prompt if tuple(prompt[: len(h)]) == h)
            state = RestartState(by_prompt[head], tuple(prompt[len(head) :]), -1)
            _, terms = _in_process(state.problem, completion, state, max_new_tokens=24)
            assert {name: output[f"satori_{name}"][i] for name in terms} == terms  # what the env computes
    logged = [log for log in trainer.state.log_history if "rewards/satori_rule/mean" in log]
    assert [log["reward"] for log in logged] == pytest.approx(
        [sum(sum(output[f"satori_{name}"]) for name in ("rule", "reflection")) / 8 for output in outputs], abs=1e-6
    )


def test_a_server_with_another_tokenizer_is_refused(tmp_path):
    pytest.importorskip("datasets")
    from satori_env.integrations.trl import SatoriRemoteRollout
    from satori_env.tokenizer import train_tokenizer

    other = train_tokenizer(["1 + 2 = 3", "Problem: what is 4 * 5?"], vocab_size=300)
    with background_server(max_new_tokens=8, tokenizer=other, restart=False) as url:
        rollout = SatoriRemoteRollout(url)
        prompts = list(rollout.dataset(1)["prompt"]) * 2

        class Trainer:
            num_generations, processing_class = 2, rollout.tokenizer
            model = type("Model", (), {"training": True})()

        with pytest.raises(ValueError, match="uses another tokenizer"):
            rollout(prompts, Trainer())
        rollout.close()


@pytest.mark.parametrize(
    "path, body, code, message",
    [
        ("/step", {"action": {"tokens": [5]}}, 409, "call reset\\(\\) first \\(episodes are sessions: use /ws\\)"),
        ("/reset", {"restart_state": "nope"}, 400, "no restart state 'nope'"),
    ],
)
def test_http_requests_without_a_session_get_a_clear_refusal(server, path, body, code, message):
    import json
    import re
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        server + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as refusal:
        urllib.request.urlopen(request, timeout=30)
    assert refusal.value.code == code
    assert re.search(message, json.loads(refusal.value.read())["detail"])
