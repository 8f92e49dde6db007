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
        tokenizer_object=backend, eos_token="<|endoftext|>", pad_token="<|pad|>", additional_special_tokens=TOY_WORDS[1:4]
    )
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(TOY_WORDS), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                         eos_token_id=0, pad_token_id=len(TOY_WORDS) - 1, bos_token_id=None)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
