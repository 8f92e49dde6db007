"""The COAT meta-action env: mechanics with a real (tiny, random) LM, and SB3 learning *when to
reflect* against a scripted step writer whose slips show as low confidence."""

import re

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from agents.meta_controller import FEATURES, META_CHOICES, CoatMetaEnv, LMStepWriter, WrittenStep, play
from satori_env import load_problems
from satori_env.tokenizer import load_tokenizer

PROBLEMS = load_problems("arith:train", level=1, limit=64, seed=0)


class SlipperyWriter:
    """Writes one-step solutions of level-1 problems: on problems with an even answer the first
    step is wrong and written with low confidence; a reflect finds the slip (and the LM then
    prefers to explore), an explore redoes the step right, a continue after a step answers."""

    max_step_tokens = 32

    def __init__(self):
        self.tokenizer = load_tokenizer(None)
        self.env = None  # set by the test: the scripted LM reads the problem from it
        self.calls = 0

    def write(self, tokens):
        self.calls += 1
        text = self.tokenizer.decode(tokens)
        answer = int(self.env.env.problem.answer)
        written = re.findall(r"so x=(\d+)", text)
        current = written[-1] if written else "0"
        eos = [self.tokenizer.eos_token_id]
        if text.endswith("The answer is"):
            return self._step(f" \\boxed{{{current}}}.", 0.9, (0.1, 0.1, 0.1), eos)
        if text.endswith("<|reflect|>"):
            wrong = int(current) != answer
            return self._step(
                f"Check: {'Wrong' if wrong else 'Right'}.", 0.9, (0.1, 0.1, 0.8) if wrong else (0.8, 0.1, 0.1)
            )
        if text.endswith("<|explore|>"):
            return self._step(f"so x={answer}", 0.9, (0.8, 0.1, 0.1))
        if written:  # a continue after a step: the answer
            return self._step(f"The answer is \\boxed{{{current}}}.", 0.9, (0.1, 0.1, 0.1), eos)
        slip = answer % 2 == 0
        return self._step(f"so x={answer + 1 if slip else answer}", 0.2 if slip else 0.9, (0.8, 0.1, 0.1))

    def _step(self, text, min_prob, next_probs, end=()):
        ids = tuple(self.tokenizer.encode(text, add_special_tokens=False)) + tuple(end)
        return WrittenStep(ids, min_prob, min_prob, next_probs)


def _slippery_env(**kwargs):
    writer = SlipperyWriter()
    env = CoatMetaEnv(writer, tasks=PROBLEMS, max_steps=5, **kwargs)
    writer.env = env
    return env


def _play(env, controller, problems):
    infos = play(env, controller, problems)
    assert all(
        info["reward_terms"] == {"correct": float(info["correct"])} for info in infos
    )  # the token env's binary reward
    return float(np.mean([info["correct"] for info in infos]))


def test_meta_env_appends_the_chosen_action_and_judges_with_the_token_env():
    env = _slippery_env()
    slip = next(p for p in PROBLEMS if int(p.answer) % 2 == 0)
    obs, info = env.reset(options={"problem": slip})
    assert obs.shape == (len(FEATURES),) and info["choices"] == []
    obs, reward, terminated, _, info = env.step(META_CHOICES.index("continue"))
    assert obs[FEATURES.index("step_min_prob")] == pytest.approx(0.2) and obs[FEATURES.index("answer_changed")] == 1.0
    obs, *_ = env.step(META_CHOICES.index("reflect"))
    assert (
        obs[FEATURES.index("lm_prefers_explore")] == pytest.approx(0.8) and obs[FEATURES.index("answer_changed")] == 0.0
    )
    env.step(META_CHOICES.index("explore"))
    _, reward, terminated, _, info = env.step(META_CHOICES.index("answer"))
    assert terminated and reward == 1.0 and info["correct"]
    assert info["choices"] == ["continue", "reflect", "explore", "answer"]
    assert info["actions"] == {"continue": 2, "reflect": 1, "explore": 1}  # counted by the token env
    assert (
        info["completion"].startswith("<|continue|>so x=")
        and "<|reflect|>Check: Wrong.<|explore|>" in info["completion"]
    )


def test_the_last_step_always_answers_and_bad_actions_are_refused():
    env = _slippery_env()
    env.reset(options={"problem": PROBLEMS[0]})
    for _ in range(4):
        _, _, terminated, _, info = env.step(META_CHOICES.index("reflect"))
        assert not terminated
    _, _, terminated, _, info = env.step(META_CHOICES.index("reflect"))
    assert terminated and info["choices"][-1] == "answer"
    with pytest.raises(ValueError, match=r"continue, reflect, explore, answer"):
        env.step(7)
    with pytest.raises(ValueError, match="max_steps must be >= 1"):
        CoatMetaEnv(SlipperyWriter(), max_steps=0)


def test_sb3_ppo_learns_when_to_reflect():
    from stable_baselines3 import PPO

    env = _slippery_env()
    test = load_problems("arith:test", level=1, limit=100, seed=0)
    always_continue = _play(env, lambda obs: 0, test)
    rng = np.random.default_rng(0)
    random = _play(env, lambda obs: int(rng.integers(4)), test)
    learner = PPO("MlpPolicy", env, n_steps=256, batch_size=64, ent_coef=0.01, seed=0, device="cpu")
    learner.learn(total_timesteps=3072)
    learned = _play(env, lambda obs: int(learner.predict(obs, deterministic=True)[0]), test)
    # measured (seed 0): always-continue 0.45 (the problems without a slip), random 0.51, PPO 1.00
    assert learned >= 0.9 and learned >= always_continue + 0.4 and learned >= random + 0.3


def test_lm_step_writer_is_the_models_greedy_step_and_memoises(tmp_path):
    import torch

    from agents.models import build_model

    build_model("tiny", tmp_path / "model", seed=0)
    writer = LMStepWriter.from_pretrained(str(tmp_path / "model"), max_step_tokens=12)
    env = CoatMetaEnv(writer, tasks=PROBLEMS, max_steps=3)
    check_env(env, skip_render_check=True)
    env.reset(seed=0)
    state = env.env.tokens.tolist() + [writer.meta_ids[0]]
    step = writer.write(state)

    # the same step without a KV cache: argmax over everything but padding, until a meta-action or EOS
    expected, sequence = [], list(state)
    with torch.no_grad():
        for _ in range(12):
            logits = writer.model(torch.tensor([sequence])).logits[0, -1].float()
            logits[writer.tokenizer.pad_token_id] = -float("inf")
            logits[len(writer.tokenizer) :] = -float("inf")
            token = int(logits.argmax())
            if token in writer.meta_ids:
                break
            expected.append(token)
            sequence.append(token)
            if token == writer.eos_id:
                break
    assert list(step.tokens) == expected
    assert 0 < step.min_prob <= step.mean_prob <= 1 and all(0 <= p <= 1 for p in step.next_action_probs)
    assert writer.write(state) is step  # memoised


def test_lm_step_writer_never_writes_ids_beyond_the_tokenizer(tmp_path):
    """A model whose embedding has more rows than the tokenizer has ids (as Qwen pads it): the
    extra ids get no probability, however large their logits."""
    import torch

    from agents.models import build_model, load_policy

    build_model("tiny", tmp_path / "model", seed=0)
    model, tokenizer = load_policy(str(tmp_path / "model"))
    model.resize_token_embeddings(len(tokenizer) + 8)
    with torch.no_grad():
        model.get_output_embeddings().weight[len(tokenizer) :] = 50.0  # would win every argmax
    writer = LMStepWriter(model, tokenizer, max_step_tokens=6)
    step = writer.write(tokenizer.encode("Kim has 3 pens.", add_special_tokens=False) + [writer.meta_ids[0]])
    assert step.tokens and max(step.tokens) < len(tokenizer)
