"""SatoriMath in TRL's GRPOTrainer: real trainer steps on the tiny model through the rollout_func,
rewards equal to what the env computes, restart prefixes in the prompt (never trained on), every
reward term in TRL's logged metrics; and the plain reward functions on TRL's own generation."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("trl")

from satori_env import RestartState, SatoriMathEnv, Trajectory  # noqa: E402
from satori_env.integrations.trl import SatoriRollout, reward_funcs  # noqa: E402
from satori_env.tasks.arithmetic import write_solution  # noqa: E402

pytestmark = pytest.mark.slow
os.environ["TRL_EXPERIMENTAL_SILENCE"] = "1"


def _trainer(tiny_checkpoint, out, reward, dataset, rollout_func=None, generation_kwargs=None):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    args = GRPOConfig(
        output_dir=str(out), max_steps=2, per_device_train_batch_size=8, gradient_accumulation_steps=1,
        num_generations=4, max_completion_length=24, temperature=1.0, learning_rate=1e-4, beta=0.0, use_cpu=True,
        bf16=False, logging_steps=1, save_strategy="no", report_to="none", seed=0, disable_tqdm=True,
        generation_kwargs=generation_kwargs,
    )  # fmt: skip
    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    return GRPOTrainer(
        model=model, reward_funcs=reward, args=args, train_dataset=dataset, processing_class=tokenizer,
        rollout_func=rollout_func,
    )  # fmt: skip


def test_grpo_steps_through_the_rollout_func_keep_the_env_semantics(tiny_checkpoint, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    rollout = SatoriRollout(tasks="arith:train", tokenizer=tokenizer, restart_prob=1.0, max_new_tokens=24)
    dataset = rollout.dataset(32)
    # a right and a wrong finished trajectory of every problem (the first steps of its solution,
    # short enough for the window), so that every group restarts
    for problem in rollout._problems.values():
        steps = tuple(tokenizer.encode(write_solution(problem), add_special_tokens=False)[:12])
        rollout.restart_buffer.add_trajectories(
            [Trajectory(problem, steps, True), Trajectory(problem, steps[:8], False)]
        )
    outputs = []

    def recorded(prompts, trainer):
        outputs.append(rollout(prompts, trainer))
        return outputs[-1]

    trainer = _trainer(
        tiny_checkpoint, tmp_path, rollout.reward_funcs(), dataset, recorded, rollout.generation_kwargs()
    )
    trainer.train()
    assert len(outputs) == 2
    reflect = tokenizer.convert_tokens_to_ids("<|reflect|>")
    fresh = SatoriMathEnv(tokenizer=tokenizer, max_new_tokens=24, max_prompt_tokens=400)
    for output in outputs:
        assert sum(output["satori_from_restart"]) == len(output["prompt_ids"])  # every group restarted
        for i, (prompt, completion) in enumerate(zip(output["prompt_ids"], output["completion_ids"])):
            assert prompt[-1] == reflect  # the restart prefix is in the prompt: TRL never trains on it
            state = _state_of(rollout, tokenizer, prompt)
            fresh.reset(options={"restart_state": state})
            *_, info = fresh.step_tokens(completion)
            for name, value in info["reward_terms"].items():
                assert output[f"satori_{name}"][i] == value  # what the env computes for the same tokens
    logged = [log for log in trainer.state.log_history if "rewards/satori_rule/mean" in log]
    assert len(logged) == 2
    for log, output in zip(logged, outputs):
        assert log["rewards/satori_reflection/mean"] == pytest.approx(np.mean(output["satori_reflection"]), abs=1e-6)
        assert log["reward"] == pytest.approx(
            np.mean(output["satori_rule"]) + np.mean(output["satori_reflection"]), abs=1e-6
        )
    assert any(value != 0 for output in outputs for value in output["satori_reflection"])  # the bonus reached TRL


def _state_of(rollout, tokenizer, prompt_ids) -> RestartState:
    """The restart state whose prompt and prefix are ``prompt_ids``."""
    for state in rollout.restart_buffer.states:
        head = tokenizer.encode(rollout.template.format(state.problem.question))
        if list(prompt_ids) == head + list(state.prefix):
            return state
    raise AssertionError("no restart state gives these prompt ids")


def test_plain_reward_functions_on_trls_own_generation(tiny_checkpoint, tmp_path):
    from datasets import Dataset

    from satori_env import load_problems
    from satori_env.coat import get_template

    problems = load_problems("arith:train", limit=16, seed=0)
    template = get_template("compact")
    dataset = Dataset.from_list([{"prompt": template.format(p.question), "answer": p.answer} for p in problems])
    functions = reward_funcs("satori")
    assert [f.__name__ for f in functions] == ["satori_rule", "satori_reflection"]
    right = [write_solution(p) for p in problems[:2]]
    assert functions[0](completions=right, answer=[p.answer for p in problems[:2]]) == [0.0, 0.0]
    assert functions[0](completions=["\\boxed{-7}"], answer=["3"]) == [-1.0]
    trainer = _trainer(tiny_checkpoint, tmp_path, functions, dataset)
    trainer.train()
    logged = [log for log in trainer.state.log_history if "rewards/satori_rule/mean" in log]
    assert len(logged) == 2 and all(log["rewards/satori_reflection/mean"] == 0 for log in logged)


def test_a_prompt_from_elsewhere_is_refused(tiny_checkpoint):
    from transformers import AutoTokenizer

    rollout = SatoriRollout(tokenizer=AutoTokenizer.from_pretrained(tiny_checkpoint))

    class Trainer:
        num_generations, processing_class = 2, rollout.tokenizer
        model = type("Model", (), {"training": True})()

    with pytest.raises(ValueError, match="is not one of this rollout's problems"):
        rollout(["What is 1+1?", "What is 1+1?"], Trainer())


def test_generated_padding_is_refused_with_the_fix(tiny_checkpoint):
    from transformers import AutoTokenizer

    rollout = SatoriRollout(tokenizer=AutoTokenizer.from_pretrained(tiny_checkpoint), max_new_tokens=8)
    prompts = list(rollout.dataset(1)["prompt"]) * 2
    pad = rollout.tokenizer.pad_token_id
    assert rollout.generation_kwargs() == {"suppress_tokens": [pad]}
    allowed = rollout.generation_kwargs(vllm=True)["allowed_token_ids"]
    assert pad not in allowed and len(allowed) == len(rollout.tokenizer) - 1

    class Trainer:
        num_generations, processing_class = 2, rollout.tokenizer
        model = type("Model", (), {"training": True})()

        def _generate_single_turn(self, prompt_ids, *args):
            eos = rollout.tokenizer.eos_token_id
            return [[5, eos, pad], [5, pad, eos]], None  # padding after the end is fine, before it is not

    with pytest.raises(ValueError, match=f"generated token id {pad} \\(padding\\).*generation_kwargs"):
        rollout(prompts, Trainer())
