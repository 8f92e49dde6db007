"""Model configurations built locally from a config (nothing downloaded)."""

from __future__ import annotations

from typing import Any

__all__ = ["LLAMA_SIZES", "llama_config"]

LLAMA_SIZES: dict[str, dict[str, int]] = {
    # about 1M parameters with a 1024-token vocabulary (tied embeddings)
    "1m": {"hidden_size": 128, "intermediate_size": 384, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 4},
}
"""Llama-style shapes by name."""


def llama_config(size: str, vocab_size: int, **overrides: Any):
    """A ``transformers.LlamaConfig`` of a named size (see :data:`LLAMA_SIZES`)."""
    from transformers import LlamaConfig

    if size not in LLAMA_SIZES:
        raise ValueError(f"unknown model size {size!r}; valid sizes: {sorted(LLAMA_SIZES)}")
    settings = {"max_position_embeddings": 1024, "tie_word_embeddings": True, **LLAMA_SIZES[size], **overrides}
    return LlamaConfig(vocab_size=vocab_size, **settings)
