"""Attention for short bf16 sequences on a CPU: the faster of two torch formulations by shape.

On a CPU, torch's fused attention kernel (``scaled_dot_product_attention``) is slow in bf16 for
the short sequences RL on small models runs: for the tiny preset under bf16 autocast (2 cores),
a learner micro-batch's forward and backward (32 x 144 tokens) took 309 ms with it and 227 ms
with attention as two matmuls and a softmax (1.36x; 1.2x at 256 tokens, 1.13x at 320, and
0.89x at 448, where the fused kernel wins); a one-token decoding step over 112 cached positions
took 2.7 ms against 0.4 ms. :data:`NAME` is an attention implementation for ``transformers``
models that takes the matmul form exactly there (a CPU, a 16-bit query, at most
:data:`MATMUL_MAX_KEYS` key positions or a single query position) and ``transformers``' own
SDPA everywhere else, so a GPU runs what it ran before. :func:`use_fast_attention` switches a
model to it; nothing of it is saved with the model.
"""

from __future__ import annotations

from typing import Any

import torch

try:  # imported here, not in the call: a compiled (CUDA-graph) decoding step traces attention_forward
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
except ImportError:  # a transformers without attention registries: use_fast_attention leaves models alone
    sdpa_attention_forward = None

__all__ = ["MATMUL_MAX_KEYS", "NAME", "use_fast_attention"]

NAME = "satori_sdpa"
MATMUL_MAX_KEYS = 320
"""The longest key length that runs as matmuls when there are several query positions
(measured faster up to 320 tokens, slower at 448)."""


def _as_matmuls(query: torch.Tensor, key: torch.Tensor) -> bool:
    """Whether attention of this shape is faster as matmuls than as the fused kernel (see the
    module): on a CPU, in 16 bits (the query's own dtype, or autocast's), and short."""
    device = query.device.type
    if device != "cpu":
        return False
    half = (torch.bfloat16, torch.float16)
    autocast_half = torch.is_autocast_enabled(device) and torch.get_autocast_dtype(device) in half
    short = query.shape[2] == 1 or key.shape[2] <= MATMUL_MAX_KEYS
    return (query.dtype in half or autocast_half) and short


def attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """``transformers``' attention-function interface: ``(B, heads, q, d)`` query, ``(B,
    kv_heads, k, d)`` key and value, SDPA's mask (True: attend; None: causal, or everything for
    one query position); returns ``((B, q, heads, d), None)``."""
    if dropout or not _as_matmuls(query, key):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout, scaling, **kwargs)
    groups = query.shape[1] // key.shape[1]
    if groups > 1:  # grouped-query attention: each key/value head serves `groups` query heads
        key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    if query.shape[2] == 1:  # a decoding step: key @ query^T reads the KV cache in its own layout, no copy
        scores = torch.matmul(key, query.transpose(2, 3)).transpose(2, 3).float() * scaling
    else:
        scores = torch.matmul(query, key.transpose(2, 3)).float() * scaling
    queries, keys = query.shape[2], key.shape[2]
    if attention_mask is None and queries > 1 and getattr(module, "is_causal", True):  # causal, as SDPA's is_causal
        attention_mask = torch.ones(queries, keys, dtype=torch.bool, device=query.device).tril(keys - queries)
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:  # the finite minimum: a row with no key is uniform, not NaN
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask
    weights = torch.softmax(scores, dim=-1).to(value.dtype)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), None


def use_fast_attention(model: torch.nn.Module) -> bool:
    """Run ``model``'s attention through :func:`attention_forward` where it uses ``transformers``'
    SDPA (other implementations, e.g. flash attention, are left alone). Returns whether it
    switched; a ``transformers`` without attention registries is left as it is."""
    config = getattr(model, "config", None)
    switchable = hasattr(model, "set_attn_implementation") and sdpa_attention_forward is not None
    if getattr(config, "_attn_implementation", None) != "sdpa" or not switchable:
        return False
    AttentionInterface.register(NAME, attention_forward)
    AttentionMaskInterface.register(NAME, sdpa_mask)  # the same masks SDPA gets
    model.set_attn_implementation(NAME)
    return True
