"""SatoriMath in verl (its own environment; CI's verl step): the rows of `satori verl-data` load
with verl's RLHFDataset; verl's own AgentLoopWorker runs the satori_agent loop with a scripted
token server in place of vLLM, and every reward, term and mask it returns is what the env
computes for the same tokens, restart prefixes in the prompt; the Satori config composes with
verl's Hydra defaults; the curriculum sampler follows the outcomes and resumes exactly."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("verl.experimental.agent_loop.agent_loop")

from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import open_dict  # noqa: E402
from verl import DataProto  # noqa: E402
from verl.experimental.agent_loop.agent_loop import AgentLoopWorker  # noqa: E402
from verl.trainer.ppo.reward import extract_reward  # noqa: E402
from verl.trainer.ppo.utils import create_rl_dataset  # noqa: E402
from verl.utils.dataset.rl_dataset import collate_fn  # noqa: E402
from verl.workers.rollout.replica import TokenOutput  # noqa: E402

from satori_env import RestartState, SatoriMathEnv  # noqa: E402
from satori_env.integrations.verl_data import problem_of, write_verl_parquet  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "verl"
RESPONSE_LENGTH = 32


def _config(tiny_checkpoint, data, agent_yaml, *overrides):
    with initialize_config_dir(config_dir=str(EXAMPLES), version_base=None):
        return compose(
            config_name="satori_ppo",
            overrides=[
                f"actor_rollout_ref.model.path={tiny_checkpoint}",
                f"data.train_files={data}",
                f"data.val_files={data}",
                "data.max_prompt_length=256",
                f"data.max_response_length={RESPONSE_LENGTH}",
                "data.filter_overlong_prompts=false",  # the tiny tokenizer has no chat template
                f"actor_rollout_ref.rollout.agent.agent_loop_config_path={agent_yaml}",
                *overrides,
            ],
        )


class ScriptedServer:
    """verl's LLM server client, answering from the prompt: the right answer for the problems in
    ``right``, a wrong one otherwise; records what it was asked."""

    def __init__(self, tokenizer, problems, right):
        self.tokenizer, self.problems, self.right, self.requests = tokenizer, problems, right, []

    async def generate(self, request_id, *, prompt_ids, sampling_params, **kwargs):
        self.requests.append((list(prompt_ids), dict(sampling_params)))
        text = self.tokenizer.decode(prompt_ids)
        problem = next(p for p in self.problems if f"Problem: {p.question}" in text)
        answer = problem.answer if problem.id in self.right else str(int(problem.answer) + 1)
        ids = self.tokenizer.encode(f" so \\boxed{{{answer}}}", add_special_tokens=False)
        ids += [self.tokenizer.eos_token_id, 7, 7]  # what follows the end is not the episode's
        return TokenOutput(
            token_ids=ids, log_probs=[-0.25 - 0.01 * i for i in range(len(ids))], stop_reason="completed"
        )


def _reference(tokenizer, problem, response, restart=None):
    env = SatoriMathEnv(
        tokenizer=tokenizer, prompt_template="satori", max_prompt_tokens=256, max_new_tokens=RESPONSE_LENGTH
    )
    env.reset(options={"restart_state": restart} if restart is not None else {"problem": problem})
    prompt = env.tokens.tolist()
    _, reward, _, _, info = env.step_tokens(response)
    return prompt, reward, info


def test_the_agent_loop_in_verls_worker_keeps_the_env_semantics(tiny_checkpoint, tmp_path):
    from transformers import AutoTokenizer

    data = write_verl_parquet(["arith:train@1"], tmp_path / "train.parquet", limit=4)
    agent_yaml = tmp_path / "agent.yaml"
    agent_yaml.write_text(
        (EXAMPLES / "satori_agent.yaml").read_text().replace("restart_prob: 0.5", "restart_prob: 1.0")
    )
    config = _config(tiny_checkpoint, data, agent_yaml)
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    dataset = create_rl_dataset(config.data.train_files, config.data, tokenizer, None)
    problems = [problem_of(dataset.dataframe[i]["extra_info"]) for i in range(len(dataset))]
    server = ScriptedServer(tokenizer, problems, right={problems[0].id, problems[2].id})
    worker = AgentLoopWorker(config, server)
    reflect = tokenizer.convert_tokens_to_ids("<|reflect|>")

    first_right = set(server.right)
    for round_ in range(2):  # the first round feeds the restart buffer, the second starts from it
        if round_:  # now the wrong ones are answered right and the right ones wrong
            server.right = {p.id for p in problems} - first_right
        batch = DataProto.from_single_dict(collate_fn([dataset[i] for i in range(len(dataset))]))
        output = asyncio.run(worker.generate_sequences(batch))
        rewards, extra = extract_reward(output)
        requests, server.requests = server.requests, []
        for i, problem in enumerate(problems):
            prompt_ids, params = requests[i]
            response = output.batch["responses"][i][output.batch["response_mask"][i].bool()].tolist()
            assert response[-1] == tokenizer.eos_token_id and 7 not in response  # cut after the stop token
            assert params["max_tokens"] <= RESPONSE_LENGTH and tokenizer.pad_token_id not in params["allowed_token_ids"]
            restart = None
            if round_:
                assert prompt_ids[-1] == reflect and extra["satori_from_restart"][i] == 1.0
                head = _reference(tokenizer, problem, [tokenizer.eos_token_id])[0]
                status = 1 if problem.id in first_right else -1
                restart = RestartState(problem, tuple(prompt_ids[len(head) :]), status)
            prompt, reward, info = _reference(tokenizer, problem, response, restart)
            assert prompt == prompt_ids  # the env's prompt, token for token
            assert output.batch["prompts"][i][-len(prompt) :].tolist() == prompt
            assert float(rewards[i].sum()) == pytest.approx(reward)
            for name, value in info["reward_terms"].items():
                assert extra[f"satori_{name}"][i] == pytest.approx(value)
            assert extra["satori_correct"][i] == float(problem.id in server.right)
            assert extra["satori_arm"][i] == "arith:train@1"
            logprobs = output.batch["rollout_log_probs"][i][: len(response)].tolist()
            assert logprobs == pytest.approx([-0.25 - 0.01 * k for k in range(len(response))])
    # fixing a wrong start earned the bonus, breaking a right one the penalty
    assert sorted(extra["satori_reflection"]) == pytest.approx([-0.5, -0.5, 0.5, 0.5])


def test_the_satori_config_composes_with_verls_defaults(tiny_checkpoint, tmp_path):
    config = _config(tiny_checkpoint, tmp_path / "train.parquet", EXAMPLES / "satori_agent.yaml")
    satori = {  # the release's train.sh
        "actor_rollout_ref.actor.optim.lr": 2e-7,
        "critic.optim.lr": 5e-6,
        "data.train_batch_size": 1024,
        "actor_rollout_ref.actor.ppo_mini_batch_size": 128,
        "actor_rollout_ref.rollout.temperature": 0.6,
        "algorithm.adv_estimator": "gae",
        "algorithm.gamma": 1.0,
        "algorithm.lam": 0.95,
        "algorithm.kl_ctrl.kl_coef": 0.0,
        "algorithm.use_kl_in_reward": False,
        "actor_rollout_ref.actor.use_kl_loss": False,
        "trainer.n_gpus_per_node": 8,
        "actor_rollout_ref.rollout.agent.default_agent_loop": "satori_agent",
    }
    for key, value in satori.items():
        node = config
        for part in key.split("."):
            node = node[part]
        assert node == value, key
    assert config.critic.model.path == str(tiny_checkpoint)
    script = (EXAMPLES.parent / "verl_satori_ppo.sh").read_text()
    assert "--config-name satori_ppo" in script and re.search(r"satori verl-data --tasks \S+ --out", script)


def _outcomes(arms, correct, restarted):
    return DataProto.from_single_dict(
        {
            "satori_arm": np.array(arms, dtype=object),
            "satori_correct": np.array(correct, dtype=float),
            "satori_from_restart": np.array(restarted, dtype=float),
        }
    )


def test_the_curriculum_sampler_follows_the_outcomes_and_resumes(tiny_checkpoint, tmp_path):
    from transformers import AutoTokenizer

    from satori_env.integrations.verl import SatoriCurriculumSampler

    data = write_verl_parquet(["arith:train@1", "arith:train@2"], tmp_path / "train.parquet", limit=6)
    config = _config(tiny_checkpoint, data, EXAMPLES / "satori_agent.yaml")
    dataset = create_rl_dataset(
        config.data.train_files, config.data, AutoTokenizer.from_pretrained(tiny_checkpoint), None
    )
    with open_dict(config):
        config.data.sampler = {"curriculum": "adaptive", "options": {"window": 8, "min_episodes": 8}, "seed": 1}
    sampler = SatoriCurriculumSampler(dataset, config.data)
    arm_of = [row["arm"] for row in dataset.dataframe["extra_info"]]
    assert len(sampler) == 12 and {arm_of[i] for i in sampler} == {"arith:train@1"}  # the easiest arm first
    sampler.update(_outcomes(["arith:train@1"] * 8, [1.0] * 8, [1.0] * 8))  # restarts: not the curriculum's
    assert {arm_of[i] for i in sampler} == {"arith:train@1"}
    sampler.update(_outcomes(["arith:train@1"] * 8, [1.0] * 8, [0.0] * 8))  # mastered: promoted
    draws = [arm_of[i] for i in sampler]
    assert draws.count("arith:train@2") >= 6  # the frontier (80%), the rest review the easier arm
    state = sampler.state_dict()
    ahead = list(sampler)
    again = SatoriCurriculumSampler(dataset, config.data)
    again.load_state_dict(state)
    assert list(again) == ahead
    with pytest.raises(KeyError, match="satori_agent loop"):
        sampler.update(DataProto.from_single_dict({"acc": np.array([1.0])}))
