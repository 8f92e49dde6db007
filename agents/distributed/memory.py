"""A memory plan before any work: what one learner device needs for a layout, from the model's
config and the run's settings, and a refusal that names the layouts that would fit.

Per learner device, with the policy's ``P`` parameters (and a separate critic's), sharded over
``N`` ranks by FSDP2 (weights, gradients and AdamW's two moments in fp32: 16 bytes per
parameter, as for any AdamW training with fp32 master weights):

* model state: ``16 * (P + P_critic) / N`` bytes, or nothing on the device with
  ``offload_optimizer`` (then it is in the host's memory), plus the reference policy's weights
  ``4 * P / N`` when ``kl_coef > 0``;
* gathered blocks: FSDP2 gathers one transformer block (and the embeddings) at a time, in the
  compute dtype, and holds the next one while the current one computes;
* activations of one micro-batch (``micro_batch_size`` sequences of ``T`` tokens, ``T`` the
  prompt window, a restart prefix and ``max_new_tokens``): ``34 * T * b * h`` bytes per layer in
  16-bit (Korthikanti et al. 2022), and ``5 * a * T * T * b`` more for the attention matrices
  where attention materialises them (on a CPU; a GPU's flash or memory-efficient attention does
  not), twice that in fp32; with ``gradient_checkpointing`` only each layer's input
  (``2 * T * b * h``) is kept and one layer's activations are recomputed at a time; plus the
  fp32 logits and their log-softmax and probabilities (``3 * 4 * b * T * V`` bytes).

These are estimates of the tensors the learner allocates; a process adds its runtime (torch,
CUDA context, allocator caches): a margin of 10 % and 1 GiB is added before comparing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

__all__ = ["MemoryPlan", "check_memory", "device_memory_bytes", "parameter_counts", "plan_memory"]

GIB = 1 << 30
_MARGIN, _RUNTIME = 1.10, 1 * GIB


def parameter_counts(model_config: Any) -> tuple[int, int]:
    """``(parameters of the causal LM, parameters of its decoder trunk)`` from a ``transformers``
    config of a Llama/Qwen2-style decoder (grouped-query attention, gated MLP)."""
    h, layers = model_config.hidden_size, model_config.num_hidden_layers
    vocabulary, inner = model_config.vocab_size, model_config.intermediate_size
    heads = model_config.num_attention_heads
    kv_heads = getattr(model_config, "num_key_value_heads", None) or heads
    head_dim = getattr(model_config, "head_dim", None) or h // heads
    bias = 1 if getattr(model_config, "attention_bias", False) or model_config.model_type == "qwen2" else 0
    attention = h * heads * head_dim * 2 + h * kv_heads * head_dim * 2 + bias * (heads + 2 * kv_heads) * head_dim
    block = attention + 3 * h * inner + 2 * h
    trunk = vocabulary * h + layers * block + h
    head = 0 if getattr(model_config, "tie_word_embeddings", False) else vocabulary * h
    return trunk + head, trunk


@dataclass(frozen=True)
class MemoryPlan:
    """Estimated bytes on one learner device, by part (see the module docstring)."""

    learner_ranks: int
    offload: bool
    parameters: int
    critic_parameters: int
    parts: dict[str, float]
    device_bytes: float

    @property
    def needed(self) -> float:
        """The estimate with the margin and the runtime."""
        return sum(self.parts.values()) * _MARGIN + _RUNTIME

    @property
    def fits(self) -> bool:
        return self.needed <= self.device_bytes

    @property
    def host_bytes(self) -> float:
        """What optimiser offload puts in each rank's host memory instead (0 without offload)."""
        return 16 * (self.parameters + self.critic_parameters) / self.learner_ranks if self.offload else 0.0

    def describe(self) -> str:
        parts = ", ".join(f"{name} {value / GIB:.1f}" for name, value in self.parts.items() if value)
        host = f" with optimiser offload ({self.host_bytes / GIB:.0f} GiB of host memory per rank)"
        offload = host if self.offload else ""
        layout = f"{self.learner_ranks} learner rank(s){offload}"
        return (
            f"{layout}: about {self.needed / GIB:.1f} GiB per device ({parts} GiB, +10 % and 1 GiB of runtime) "
            f"for {self.parameters / 1e9:.2f}B policy and {self.critic_parameters / 1e9:.2f}B critic parameters"
        )


def plan_memory(model_config: Any, config: Any, device_bytes: float, learner_ranks: int, offload: bool) -> MemoryPlan:
    """The plan of ``learner_ranks`` ranks (with or without ``offload``) for ``config``."""
    from agents.algorithms import ALGORITHMS

    parameters, trunk = parameter_counts(model_config)
    h, layers, vocabulary = model_config.hidden_size, model_config.num_hidden_layers, model_config.vocab_size
    uses_critic = ALGORITHMS[config.algo].uses_critic if config.algo in ALGORITHMS else True
    critic = 0 if not uses_critic else (h + 1 if config.critic == "shared" else trunk + h + 1)
    on_gpu = config.device != "cpu" and (config.device == "cuda" or _has_cuda())
    compute = 2 if (on_gpu and config.bf16) else 4
    sequence, batch = _sequence_tokens(config), config.micro_batch_size
    tokens = sequence * batch * h * (compute / 2)
    attention = 0 if on_gpu else 5 * model_config.num_attention_heads * sequence * sequence * batch * (compute / 2)
    per_layer = 34 * tokens + attention
    per_trunk = (2 * tokens * layers + per_layer) if config.gradient_checkpointing else per_layer * layers
    trunks = 1 if critic <= h + 1 else 2  # a separate critic runs its own trunk
    block = (trunk - vocabulary * h - h) / max(layers, 1)
    parts = {
        "model state": 0.0 if offload else 16 * (parameters + critic) / learner_ranks,
        "reference": 4 * parameters / learner_ranks if config.kl_coef > 0 else 0.0,
        "gathered blocks": compute * (2 * block + (parameters - trunk) + vocabulary * h) * trunks,
        "activations": per_trunk * trunks + 3 * 4 * batch * sequence * vocabulary,
    }
    return MemoryPlan(learner_ranks, offload, parameters, critic, parts, device_bytes)


def _sequence_tokens(config: Any) -> int:
    """Tokens of the longest learner sequence: a prompt (the release's cap, 1024, for datasets;
    about 64 for procedural problems), a restart prefix when restarts are on, the response."""
    prompt = 64 if config.tasks == "arith" else 1024
    prefix = config.max_new_tokens + 1 if config.restart_prob > 0 else 0
    return prompt + prefix + config.max_new_tokens


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def device_memory_bytes(config: Any) -> float:
    """One learner device's memory: ``config.device_memory_gb`` when set, else the GPU's, else
    the machine's RAM."""
    if config.device_memory_gb:
        return config.device_memory_gb * GIB
    if config.device != "cpu" and _has_cuda():
        import torch

        return float(torch.cuda.get_device_properties(0).total_memory)
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def check_memory(model_config: Any, config: Any) -> MemoryPlan:
    """The plan of the requested layout; ``ValueError`` when it cannot fit, with the layouts that
    would (more learner ranks, optimiser offload)."""
    device = device_memory_bytes(config)
    plan = plan_memory(model_config, config, device, config.learner_ranks, config.offload_optimizer)
    if plan.fits:
        return plan
    options = []
    for offload in (False, True):  # the fewest ranks that fit, without and with optimiser offload
        for ranks in (1, 2, 4, 8, 16, 32, 64, 128):
            candidate = plan_memory(model_config, config, device, ranks, offload)
            if candidate.fits:
                flags = f"--learner-ranks {ranks}" + (" --offload-optimizer" if offload else "")
                options.append(f"{flags} ({candidate.needed / GIB:.1f} GiB per device)")
                break
    fits = "; would fit: " + ", or ".join(options) if options else "; no layout of up to 128 ranks fits"
    more = " (or a smaller --micro-batch-size or --max-new-tokens)"
    raise ValueError(
        f"memory plan: {plan.describe()}, more than the {device / GIB:.0f} GiB of a learner device{fits}{more}"
    )
