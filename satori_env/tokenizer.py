"""Tokenizers for the environment: the small one shipped with the package, and any HF tokenizer.

* :func:`default_tokenizer` loads the byte-level BPE tokenizer shipped in
  ``satori_env/assets/tokenizer`` (1024 ids; digits are always single tokens, as in Llama and
  Qwen, because arithmetic needs them; the COAT meta-actions are special tokens; padding is
  the last id, so that an environment's action space can leave it out). It was built offline
  by :func:`build_default_tokenizer`; nothing is downloaded.
* :func:`train_tokenizer` trains such a tokenizer on any texts (``satori build-model`` uses it).
* :func:`load_tokenizer` accepts a tokenizer object, a local path or a hub id, and
  :func:`add_coat_tokens` makes sure the COAT tokens (and a padding token) are single special
  tokens of it.

``build_default_tokenizer()`` rebuilds the shipped tokenizer; a test checks that the rebuild
is identical to it.
"""

from __future__ import annotations

import hashlib
import json
import os
import weakref
from collections.abc import Iterable, Iterator
from pathlib import Path

from satori_env.coat import META_ACTIONS, PROMPT_TEMPLATES

__all__ = [
    "COAT_TOKENS",
    "DEFAULT_TOKENIZER_DIR",
    "EOS_TOKEN",
    "PAD_TOKEN",
    "add_coat_tokens",
    "build_default_tokenizer",
    "default_corpus",
    "default_tokenizer",
    "load_tokenizer",
    "save_tokenizer",
    "tokenizer_fingerprint",
    "train_tokenizer",
]

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
COAT_TOKENS = tuple(META_ACTIONS.values())
_CHAT_TOKENS = ("<|im_start|>", "<|im_end|>")  # so that the "satori" prompt template tokenizes well
DEFAULT_TOKENIZER_DIR = Path(__file__).with_name("assets") / "tokenizer"
DEFAULT_VOCAB_SIZE = 1024


def train_tokenizer(texts: Iterable[str], vocab_size: int = DEFAULT_VOCAB_SIZE):
    """Train a byte-level BPE tokenizer offline (any text encodes; digits stay single tokens).

    Returns a ``transformers.PreTrainedTokenizerFast`` of ``vocab_size`` ids with EOS
    ``<|endoftext|>``, the COAT meta-actions as special tokens, and padding ``<|pad|>`` as the
    last id.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = [EOS_TOKEN, *COAT_TOKENS, *_CHAT_TOKENS]
    if vocab_size < 257 + len(specials):
        raise ValueError(
            f"vocab_size must be at least {257 + len(specials)} (all bytes, the specials and padding), got {vocab_size}"
        )
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1,  # padding comes last
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=EOS_TOKEN,
        additional_special_tokens=[*COAT_TOKENS, *_CHAT_TOKENS],
        clean_up_tokenization_spaces=False,
        model_max_length=1 << 20,
    )
    tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
    return tokenizer


def default_corpus(arithmetic_problems: int = 20_000) -> Iterator[str]:
    """What the shipped tokenizer is trained on: procedural problems with their COAT solutions
    and the GSM8K training set (no test data)."""
    from satori_env.tasks import ArithmeticTasks, load_problems
    from satori_env.tasks.arithmetic import write_solution

    for problem in ArithmeticTasks(levels=range(1, 7), split="train", seed=0).take(arithmetic_problems):
        yield PROMPT_TEMPLATES["compact"].format(problem.question)
        yield write_solution(problem)
    for problem in load_problems("gsm8k:train"):
        yield problem.question
        yield problem.meta["solution"]


def save_tokenizer(tokenizer, out_dir: str | os.PathLike) -> None:
    """``save_pretrained`` with a ``tokenizer_config.json`` that transformers 4.x and 5.x both
    read the same way (5.x writes a format 4.x cannot load)."""
    tokenizer.save_pretrained(out_dir)
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": tokenizer.eos_token,
        "pad_token": tokenizer.pad_token,
        "additional_special_tokens": [t for t in (*COAT_TOKENS, *_CHAT_TOKENS) if t in tokenizer.get_vocab()],
        "clean_up_tokenization_spaces": False,
        "model_max_length": tokenizer.model_max_length,
    }
    Path(out_dir, "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    Path(out_dir, "special_tokens_map.json").unlink(missing_ok=True)


def build_default_tokenizer(out_dir: str | os.PathLike = DEFAULT_TOKENIZER_DIR):
    """Train the shipped tokenizer from its corpus and save it to ``out_dir`` (deterministic)."""
    tokenizer = train_tokenizer(default_corpus(), DEFAULT_VOCAB_SIZE)
    save_tokenizer(tokenizer, out_dir)
    return tokenizer


def default_tokenizer():
    """A fresh copy of the tokenizer shipped with the package (offline)."""
    from transformers import PreTrainedTokenizerFast

    if not (DEFAULT_TOKENIZER_DIR / "tokenizer.json").exists():
        raise FileNotFoundError(f"the shipped tokenizer is missing from {DEFAULT_TOKENIZER_DIR}; reinstall satori-env")
    return PreTrainedTokenizerFast.from_pretrained(str(DEFAULT_TOKENIZER_DIR), local_files_only=True)


def load_tokenizer(tokenizer=None):
    """The tokenizer for ``tokenizer``: None -> :func:`default_tokenizer`; a str or path -> a
    local directory or hub id for ``AutoTokenizer.from_pretrained``; a tokenizer object -> itself.
    """
    if tokenizer is None:
        return default_tokenizer()
    if isinstance(tokenizer, (str, os.PathLike)):
        from transformers import AutoTokenizer

        from satori_env.pretrained import load_pretrained

        return load_pretrained(AutoTokenizer.from_pretrained, tokenizer, "tokenizer")
    if hasattr(tokenizer, "convert_tokens_to_ids") and hasattr(tokenizer, "decode"):
        return tokenizer
    raise TypeError(
        "tokenizer must be None (the shipped tokenizer), a local path or hub id, or a "
        f"transformers tokenizer object; got {type(tokenizer).__name__}"
    )


def add_coat_tokens(tokenizer) -> list[str]:
    """Make the COAT meta-actions (and a padding token, if there is none) special tokens of
    ``tokenizer``, in place. Returns the tokens it added: if any, resize your model's embeddings
    (``model.resize_token_embeddings(len(tokenizer))``).

    Raises:
        ValueError: the tokenizer cannot take them (each must end up a single token id).
    """
    vocabulary = tokenizer.get_vocab()
    missing = [token for token in COAT_TOKENS if token not in vocabulary]
    added = list(missing)
    try:
        if missing:
            tokenizer.add_tokens(missing, special_tokens=True)
        if tokenizer.pad_token is None:
            tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
            added.append(PAD_TOKEN)
    except (TypeError, ValueError, AttributeError, NotImplementedError) as error:
        raise ValueError(f"cannot add the COAT tokens {COAT_TOKENS} to {type(tokenizer).__name__}: {error}") from error
    for token in (*COAT_TOKENS, tokenizer.pad_token):
        ids = tokenizer.encode(token, add_special_tokens=False)
        if len(ids) != 1:
            raise ValueError(
                f"{type(tokenizer).__name__} encodes {token!r} as {len(ids)} tokens {ids}; the "
                "environment needs every COAT meta-action (and padding) to be one special token"
            )
    if tokenizer.eos_token_id is None:
        raise ValueError(f"{type(tokenizer).__name__} has no EOS token; set tokenizer.eos_token first")
    return added


_FINGERPRINTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # tokenizer -> (size, fingerprint)


def tokenizer_fingerprint(tokenizer) -> str:
    """A short hash of the tokenizer's vocabulary (every token and its id): token ids written
    with one tokenizer mean the same text with another only when their fingerprints match.
    Cached per tokenizer object (recomputed when tokens are added)."""
    size = len(tokenizer)
    cached = _FINGERPRINTS.get(tokenizer)
    if cached is not None and cached[0] == size:
        return cached[1]
    vocabulary = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    fingerprint = hashlib.sha256(json.dumps(vocabulary, ensure_ascii=False).encode()).hexdigest()[:16]
    _FINGERPRINTS[tokenizer] = (size, fingerprint)
    return fingerprint
