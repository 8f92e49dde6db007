"""SatoriMath in OpenRLHF 0.11 (installed without its GPU dependencies: `pip install --no-deps
openrlhf==0.11.2 aiohttp pylatexenc`, as CI does): the agent file loads as OpenRLHF loads it; the
executor, driven by a scripted engine in place of vLLM over the rows of `satori verl-data`,
returns what the env computes for the same tokens; OpenRLHF's own experience builder masks the
prompt and any restart prefix out of the loss; the launch script's flags parse with OpenRLHF's
own argument parser and are Satori's."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import shlex
import sys
import textwrap
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from unittest.mock import MagicMock

import pytest

pytest.importorskip("openrlhf.utils.agent")

from openrlhf.datasets.prompts_dataset import preprocess_data  # noqa: E402
from openrlhf.utils.agent import AgentExecutorBase  # noqa: E402

from satori_env import RestartState, SatoriMathEnv  # noqa: E402
from satori_env.integrations.verl_data import problem_of, write_verl_parquet  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MAX_NEW_TOKENS = 32


@dataclass
class SamplingParams:
    """The fields of vLLM's SamplingParams that OpenRLHF sets and the executor reads."""

    temperature: float = 0.6
    max_tokens: int | None = None
    logprobs: int | None = 1
    allowed_token_ids: list[int] | None = None


class ScriptedEngine:
    """OpenRLHF's engine interface (``generate(prompt_token_ids, sampling_params)``), answering
    right for the problems in ``right``; records its requests."""

    def __init__(self, tokenizer, problems, right):
        self.tokenizer, self.problems, self.right, self.requests = tokenizer, problems, set(right), []

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        self.requests.append((list(prompt_token_ids), sampling_params))
        text = self.tokenizer.decode(prompt_token_ids)
        problem = next(p for p in self.problems if f"Problem: {p.question}" in text)
        answer = problem.answer if problem.id in self.right else str(int(problem.answer) + 1)
        ids = self.tokenizer.encode(f" so \\boxed{{{answer}}}", add_special_tokens=False)
        ids += [self.tokenizer.eos_token_id, 9]
        logprobs = [{token: SimpleNamespace(logprob=-0.1 * (k + 1))} for k, token in enumerate(ids)]
        output = SimpleNamespace(token_ids=ids, text="", finish_reason="stop", logprobs=logprobs)
        return SimpleNamespace(outputs=[output])


def _agent_file_executor(max_new_tokens):
    """``AgentExecutor`` from examples/openrlhf_agent.py, loaded as OpenRLHF's vLLM actor loads it."""
    spec = importlib.util.spec_from_file_location("agent_module", EXAMPLES / "openrlhf_agent.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert issubclass(module.AgentExecutor, AgentExecutorBase)
    executor = module.AgentExecutor()
    executor.settings.update(max_new_tokens=max_new_tokens, max_prompt_tokens=256)  # the tiny model's scale
    executor.restart_prob = 1.0
    return executor


def _experience(response):
    """OpenRLHF's own conversion of an executor's result into a training Experience."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "vllm", MagicMock())
        patch.setitem(sys.modules, "openrlhf.trainer.ray.vllm_engine", MagicMock())
        from openrlhf.trainer.ppo_utils.samples_generator import SamplesGenerator
    return SamplesGenerator._process_response_into_experience(None, response, max_len=1024)


def test_the_executor_keeps_the_env_semantics_through_openrlhfs_experience(tiny_checkpoint, tmp_path):
    from datasets import load_dataset
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    data = write_verl_parquet(["arith:train@1"], tmp_path / "train.parquet", limit=4)
    rows = list(load_dataset("parquet", data_files=str(data), split="train"))
    samples = [preprocess_data(row, input_key="prompt", label_key="extra_info") for row in rows]
    problems = [problem_of(label) for _, label in samples]
    engine = ScriptedEngine(tokenizer, problems, right={problems[0].id, problems[1].id})
    executor = _agent_file_executor(MAX_NEW_TOKENS)
    reflect = tokenizer.convert_tokens_to_ids("<|reflect|>")

    async def run_all():
        return [
            await executor.execute(prompt, label, SamplingParams(), 1024, tokenizer, engine)
            for prompt, label in samples
        ]

    first = asyncio.run(run_all())  # fresh starts feed the buffer
    engine.right = {p.id for p in problems} - engine.right
    second = asyncio.run(run_all())  # restarts: the right answers are now wrong and the wrong right
    for round_, results in enumerate((first, second)):
        for problem, result in zip(problems, results):
            (start, end), tokens = result["action_ranges"][0], result["observation_tokens"]
            prompt, response = tokens[:start], tokens[start:end]
            assert end == len(tokens) and response[-1] == tokenizer.eos_token_id and 9 not in response
            env = SatoriMathEnv(tokenizer=tokenizer, prompt_template="satori", max_prompt_tokens=256, max_new_tokens=32)
            if round_:
                assert prompt[-1] == reflect and result["extra_logs"]["satori_from_restart"] == 1.0
                env.reset(options={"problem": problem})
                status = 1 if problem.id in {p.id for p in problems} - engine.right else -1
                env.reset(options={"restart_state": RestartState(problem, tuple(prompt[len(env.tokens) :]), status)})
            else:
                env.reset(options={"problem": problem})
            assert env.tokens.tolist() == prompt
            _, reward, *_, info = env.step_tokens(response)
            assert result["reward"] == result["scores"] == pytest.approx(reward)
            for name, value in info["reward_terms"].items():
                assert result["extra_logs"][f"satori_{name}"] == pytest.approx(value)
            assert result["rollout_log_probs"] == pytest.approx(
                [0.0] * start + [-0.1 * (k + 1) for k in range(end - start)]
            )
            experience = _experience(result)
            mask = experience.action_mask[0].tolist()  # shifted by one: position t predicts token t + 1
            assert mask == [0] * (start - 1) + [1] * (end - start)
            assert float(experience.rewards[0]) == pytest.approx(reward)
            assert float(experience.info["satori_reflection"][0]) == pytest.approx(info["reward_terms"]["reflection"])
    assert sorted(r["extra_logs"]["satori_reflection"] for r in second) == pytest.approx([-0.5, -0.5, 0.5, 0.5])
    _, params = engine.requests[-1]
    assert params.max_tokens == MAX_NEW_TOKENS and tokenizer.pad_token_id not in params.allowed_token_ids


def test_a_max_length_that_cuts_episodes_short_is_refused(tiny_checkpoint, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    data = write_verl_parquet(["arith:train@1"], tmp_path / "train.parquet", limit=1)
    import pyarrow.parquet as pq

    label = pq.read_table(data).to_pylist()[0]["extra_info"]
    executor = _agent_file_executor(MAX_NEW_TOKENS)
    engine = ScriptedEngine(tokenizer, [problem_of(label)], right=set())
    with pytest.raises(ValueError, match="more than the framework's max length 40: raise it"):
        asyncio.run(executor.execute("", label, SamplingParams(), 40, tokenizer, engine))
    assert not engine.requests


def test_the_launch_script_parses_with_openrlhfs_parser_and_is_satoris():
    from openrlhf.utils.config import hierarchize

    source = (
        Path(importlib.util.find_spec("openrlhf").submodule_search_locations[0]) / "cli" / "train_ppo_ray.py"
    ).read_text()
    block = source[
        source.index("    parser = argparse.ArgumentParser()") : source.index("    args = parser.parse_args()")
    ]
    namespace = {"argparse": argparse, "datetime": datetime}
    exec(textwrap.dedent(block), namespace)  # OpenRLHF's own parser, without starting Ray
    script = (EXAMPLES / "openrlhf_satori_ppo.sh").read_text()
    command = script[script.index("python3 -m openrlhf.cli.train_ppo_ray") :].split('"$@"')[0].replace("\\\n", " ")
    args = hierarchize(namespace["parser"].parse_args(shlex.split(command)[3:]))
    assert (args.actor.adam.lr, args.critic.adam.lr, args.algo.kl.init_coef) == (2e-7, 5e-6, 0.0)
    assert (args.rollout.batch_size, args.train.batch_size, args.rollout.temperature) == (1024, 128, 0.6)
    assert (args.algo.advantage.estimator, args.algo.advantage.gamma, args.algo.advantage.lambd) == ("gae", 1.0, 0.95)
    assert args.rollout.max_new_tokens == 3072 and args.data.label_key == "extra_info"
    assert args.train.agent_func_path.endswith("examples/openrlhf_agent.py")
