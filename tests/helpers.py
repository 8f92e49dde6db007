"""Small shared helpers for the environment tests."""

from __future__ import annotations

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


def mid_vocab_pad_tokenizer(tmp_path):
    """A tokenizer without COAT tokens whose padding token sits in the middle of the vocabulary."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["</s>", "<pad>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    backend.train_from_iterator(["Ann has 3 apples. 3+4=7. The answer is \\boxed{7}."] * 10, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>", pad_token="<pad>")
    tokenizer.save_pretrained(tmp_path)
    return tmp_path
