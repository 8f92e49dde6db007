"""Small shared helpers for the environment tests."""

from __future__ import annotations

from pathlib import Path

from satori_env import Problem
from satori_env.tasks.arithmetic import write_solution


def solution_tokens(env, problem: Problem, wrong: bool = False) -> list[int]:
    """Token ids of a COAT solution of an arithmetic ``problem``, ending with EOS; ``wrong``
    boxes an answer off by one."""
    text = write_solution(problem)
    if wrong:
        text = text.replace(f"\\boxed{{{problem.answer}}}", f"\\boxed{{{int(problem.answer) + 1}}}")
    tokenizer = env.unwrapped.tokenizer
    return tokenizer.encode(text, add_special_tokens=False) + [tokenizer.eos_token_id]


def gloo_threads() -> list[str]:
    """The names of this process's gloo threads (Linux names each thread under /proc): none once
    its process group is released, else they can abort the process at exit."""
    names = []
    for comm in Path("/proc/self/task").glob("*/comm"):
        try:
            names.append(comm.read_text().strip())
        except OSError:  # that thread ended while the others were read
            continue
    return [name for name in names if "gloo" in name]


def mid_vocab_pad_tokenizer(tmp_path):
    """A tokenizer without COAT tokens whose padding token sits in the middle of the vocabulary."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(["Ann has 3 apples. 3+4=7. The answer is \\boxed{7}."] * 10, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>", pad_token="<pad>")
    tokenizer.save_pretrained(tmp_path)
    return tmp_path


TOY_WORDS = ["<|endoftext|>", "<|continue|>", "<|reflect|>", "<|explore|>", "q", "a", "b", "c", "d", "e", "<|pad|>"]


def toy_policy(path, seed: int = 0):
    """A word-level tokenizer of 11 ids and a one-layer Llama over it, saved to ``path``: a
    policy small enough to learn a toy task in seconds."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(TOY_WORDS)}, unk_token="q"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|endoftext|>",
        pad_token="<|pad|>",
        additional_special_tokens=TOY_WORDS[1:4],
    )
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(TOY_WORDS),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        eos_token_id=0,
        pad_token_id=len(TOY_WORDS) - 1,
        bos_token_id=None,
    )
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def learn_toy_task(tmp_path, algo: str, seed: int = 0, iterations: int = 25) -> tuple[float, float]:
    """Train ``algo`` from a random :func:`toy_policy` to answer "a b c" (reward: the share of
    the sequence written right, from the start; random play gets about 0.05). ``seed`` seeds the
    policy's weights and the run (its sampling). Returns the mean reward of the first iteration
    and of the last five."""
    import numpy as np
    import torch

    from agents.config import TrainConfig
    from agents.train import train_rl
    from satori_env import RewardSpec

    target = ["a", "b", "c"]

    def prefix_matched(episode) -> float:
        matched = 0
        for word, want in zip(episode.completion.split(), target):
            if word != want:
                break
            matched += 1
        return matched / len(target)

    config = TrainConfig(
        out=str(tmp_path / "run"),
        algo=algo,
        iterations=iterations,
        episodes_per_iteration=64,
        max_new_tokens=3,
        prompt_template="{question}",
        actor_lr=1e-2,
        critic_lr=1e-2,
        minibatch_size=64,
        micro_batch_size=64,
        restart_prob=0.0,
        eval_per_level=0,
        checkpoint_every=1000,
        bf16=False,
        progress=False,
        seed=seed,
    )
    torch.set_num_threads(2)
    result = train_rl(
        config,
        str(toy_policy(tmp_path / "toy", seed)),
        tasks=[Problem("toy", "q", "a b c", "toy")],
        reward=RewardSpec({"matched": (prefix_matched, 1.0)}),
    )
    history = [h["reward/total"] for h in result["history"]]
    return history[0], float(np.mean(history[-5:]))


def stub_policy():
    """The least an :class:`~agents.algorithms.Algorithm` needs of a policy to be built (for
    tests of its math on hand-made rollouts)."""
    import torch

    policy = torch.nn.Linear(1, 1)
    policy.actor_parameters = policy.parameters
    policy.critic_parameters = lambda: []
    return policy


class OracleEngine:
    """A scripted engine for tests of what is done with sampled trajectories: for each prompt it
    finds the problem whose question the prompt holds and writes, drawn by the seed, a clean
    COAT solution, one that boxes a wrong answer and repairs it (``explore``), or a wrong one."""

    def __init__(self, tokenizer, problems) -> None:
        self.tokenizer, self.problems = tokenizer, {p.question: p for p in problems}

    def generate(self, prompts, params):
        import random

        from agents.data.synth import arithmetic_demo

        written = []
        for index, ids in enumerate(prompts):
            text = self.tokenizer.decode(ids)
            problem = next(p for question, p in self.problems.items() if question in text)
            rng = random.Random((params.seed or 0) + 7919 * index)
            kind = rng.choice(["clean", "explore", "wrong"])
            demo = arithmetic_demo(problem, "clean" if kind == "wrong" else kind, rng).text
            if kind == "wrong":
                demo = demo.replace(f"{{{problem.answer}}}", f"{{{int(problem.answer) + 1}}}")
            ids = self.tokenizer.encode(demo, add_special_tokens=False) + [self.tokenizer.eos_token_id]
            written.append(ids[: params.max_new_tokens])
        return written

    def sync_weights(self) -> None:
        """Nothing to take: the script is fixed."""


def sample_with_oracle(monkeypatch_setattr, config) -> None:
    """Make round sampling (:mod:`agents.rounds`) write with :class:`OracleEngine` on the
    training problems of every round of ``config`` (``monkeypatch_setattr``: pytest's
    ``monkeypatch.setattr`` or plain ``setattr``)."""
    import agents.rounds as rounds
    from agents.models import load_policy

    problems = [p for k in range(2, config.rounds + 1) for p in rounds.training_problems(config, k)]

    def load_engine(model_path, name="hf", device="auto", prompt_template="compact"):
        _, tokenizer = load_policy(model_path, device="cpu")
        return OracleEngine(tokenizer, problems), tokenizer

    monkeypatch_setattr(rounds, "load_engine", load_engine)
