"""Policies as plain ``transformers`` causal LMs: built offline from a config, or loaded from a
local path / hub id.

    satori build-model --preset tiny --out runs/tiny/base

``build_model`` trains the tokenizer offline (:func:`satori_env.tokenizer.train_tokenizer` on
the bundled problem text and synthetic COAT solutions; the tiny preset's is the one shipped with
the environment), builds a Llama-style model from the preset's shape and saves both with
``save_pretrained``, so that ``AutoModelForCausalLM.from_pretrained(path)`` and
``gym.make("SatoriMath-v0", tokenizer=path)`` load them. ``load_policy`` loads any checkpoint
and makes sure the COAT tokens exist (resizing the embeddings when it adds them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "LLAMA_SIZES",
    "MODEL_PRESETS",
    "POLICY_SETTINGS_FILE",
    "ModelPreset",
    "build_model",
    "llama_config",
    "load_critic_start",
    "load_policy",
    "policy_settings",
    "save_policy",
]

POLICY_SETTINGS_FILE = "satori_policy.json"
"""Written beside a tuned policy's weights: the prompt template it was tuned with."""

LLAMA_SIZES: dict[str, dict[str, int]] = {
    # about 1M parameters with a 1024-token vocabulary (benchmarks, the tiny reward model)
    "1m": {
        "hidden_size": 128,
        "intermediate_size": 384,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
    },
    # about 3.4M: what learns COAT arithmetic on a 2-core CPU in minutes
    "3m": {
        "hidden_size": 256,
        "intermediate_size": 672,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
    },
    # about 27M
    "25m": {
        "hidden_size": 512,
        "intermediate_size": 1376,
        "num_hidden_layers": 8,
        "num_attention_heads": 8,
        "num_key_value_heads": 8,
    },
}
"""Llama-style shapes by name."""


def llama_config(size: str, vocab_size: int, **overrides: Any):
    """A ``transformers.LlamaConfig`` of a named size (see :data:`LLAMA_SIZES`)."""
    from transformers import LlamaConfig

    if size not in LLAMA_SIZES:
        raise ValueError(f"unknown model size {size!r}; valid sizes: {sorted(LLAMA_SIZES)}")
    settings = {"max_position_embeddings": 1024, "tie_word_embeddings": True, **LLAMA_SIZES[size], **overrides}
    return LlamaConfig(vocab_size=vocab_size, **settings)


@dataclass(frozen=True)
class ModelPreset:
    """A model built from scratch: its shape and its tokenizer's vocabulary size."""

    size: str
    vocab_size: int


MODEL_PRESETS: dict[str, ModelPreset] = {
    "tiny": ModelPreset(size="3m", vocab_size=1024),
    "small": ModelPreset(size="25m", vocab_size=4096),
}


def build_model(preset: str, out: str | Path, seed: int = 0):
    """Train the tokenizer, build the model of ``preset`` and save both to ``out``.

    Returns ``(model, tokenizer)``. Deterministic under ``seed``.
    """
    import torch
    from transformers import LlamaForCausalLM

    from satori_env.atomic import atomic_directory
    from satori_env.tokenizer import (
        DEFAULT_VOCAB_SIZE,
        default_corpus,
        default_tokenizer,
        save_tokenizer,
        train_tokenizer,
    )

    if preset not in MODEL_PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; valid presets: {sorted(MODEL_PRESETS)}")
    spec = MODEL_PRESETS[preset]
    # the shipped tokenizer is exactly what train_tokenizer gives on the default corpus at this size
    tokenizer = (
        default_tokenizer()
        if spec.vocab_size == DEFAULT_VOCAB_SIZE
        else train_tokenizer(default_corpus(), spec.vocab_size)
    )
    torch.manual_seed(seed)
    config = llama_config(
        spec.size,
        len(tokenizer),
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    with atomic_directory(out) as tmp:
        model.save_pretrained(tmp)
        save_tokenizer(tokenizer, tmp)
    return model, tokenizer


def load_policy(path: str, device: str = "auto", dtype: Any = None):
    """``(model, tokenizer)`` from a local checkpoint or hub id, COAT tokens ensured.

    When the tokenizer lacks the COAT tokens they are added and the model's embeddings resized
    (new rows start as the mean of the old ones). Attention runs through
    :func:`agents.attention.use_fast_attention` (SDPA, except short bf16 attention on a CPU).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from agents.attention import use_fast_attention
    from agents.device import choose_device
    from satori_env.pretrained import load_pretrained
    from satori_env.tokenizer import add_coat_tokens

    tokenizer = load_pretrained(AutoTokenizer.from_pretrained, path, "model")
    options = {"dtype": dtype} if dtype is not None else {}
    model = load_pretrained(AutoModelForCausalLM.from_pretrained, path, "model", **options)
    if add_coat_tokens(tokenizer) and model.get_input_embeddings().num_embeddings < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    use_fast_attention(model)
    return model.to(choose_device(device)), tokenizer


def save_policy(
    model, tokenizer, path: str | Path, prompt_template: Any = None, state_dict: dict | None = None
) -> None:
    """``save_pretrained`` of the model and its tokenizer into ``path``, atomically (a crash
    keeps the previous save), with the prompt template the policy was tuned with, which
    ``satori eval`` and :func:`policy_settings` read back. ``state_dict``: the weights to write
    instead of the model's own (a sharded model's gathered weights)."""
    import json

    from satori_env.atomic import atomic_directory
    from satori_env.coat import PROMPT_TEMPLATES, get_template

    with atomic_directory(path) as tmp:
        model.save_pretrained(tmp, **({"state_dict": state_dict} if state_dict is not None else {}))
        tokenizer.save_pretrained(tmp)
        if prompt_template is not None:
            template = get_template(prompt_template)
            spec = template.name if PROMPT_TEMPLATES.get(template.name) == template else template.text
            (tmp / POLICY_SETTINGS_FILE).write_text(json.dumps({"prompt_template": spec}, indent=2) + "\n")


def policy_settings(path: str | Path) -> dict[str, Any]:
    """What :func:`save_policy` recorded beside a local policy (``{}`` for a hub id or a
    checkpoint saved by other tools)."""
    import json

    settings = Path(path).expanduser() / POLICY_SETTINGS_FILE
    if not settings.is_file():
        return {}
    try:
        recorded = json.loads(settings.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{settings} is not readable JSON: {error}") from None
    if not isinstance(recorded, dict):
        raise ValueError(f"{settings} must hold a JSON object, got {type(recorded).__name__}")
    return recorded


def load_critic_start(config: Any, device: str = "cpu"):
    """The sequence-classification model a run's separate critic starts from
    (``config.critic_init``: ``reward_model`` reads ``config.reward_model``), or None for a copy
    of the actor."""
    if config.critic_init == "actor":
        return None
    from transformers import AutoModelForSequenceClassification

    from satori_env.pretrained import load_pretrained

    path = config.reward_model if config.critic_init == "reward_model" else config.critic_init
    model = load_pretrained(AutoModelForSequenceClassification.from_pretrained, path, "critic", num_labels=1)
    return model.to(device)
