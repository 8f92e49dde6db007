"""FSDP2 (``torch.distributed.fsdp.fully_shard``) for the actor-critic, and its state dicts.

Each transformer block is its own FSDP unit, then the actor, the separate critic trunk and the
whole actor-critic (for the value head): calling the actor alone (generation) gathers only the
actor. Mixed precision (bf16 compute, fp32 gradients reduction) on a GPU; optionally the
parameters, gradients and optimiser state live on the CPU (``CPUOffloadPolicy``) and the
optimiser steps there.
"""

from __future__ import annotations

from typing import Any

import torch

from agents.policy import ActorCritic

__all__ = ["full_state_dict", "load_sharded_state", "reshard", "shard_model", "sharded_state"]


def _blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The transformer blocks of a decoder (``model.model.layers`` in Llama, Qwen2, ...)."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else model
    layers = getattr(decoder, "layers", None)
    if layers is None:
        raise ValueError(f"cannot find the transformer blocks of {type(model).__name__} to shard (no .layers)")
    return list(layers)


def _fsdp_options(device: torch.device, mixed_precision: bool, offload: bool) -> dict[str, Any]:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy

    options: dict[str, Any] = {"mesh": init_device_mesh(device.type, (torch.distributed.get_world_size(),))}
    if mixed_precision:
        options["mp_policy"] = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    if offload:
        options["offload_policy"] = CPUOffloadPolicy()
    return options


def shard_model(
    module: torch.nn.Module, device: torch.device, mixed_precision: bool = False, offload: bool = False
) -> None:
    """Shard ``module`` in place over the default process group: an :class:`ActorCritic` (blocks,
    actor, critic trunk, then the whole) or a causal LM (blocks, then the whole)."""
    from torch.distributed.fsdp import fully_shard

    options = _fsdp_options(device, mixed_precision, offload)
    if isinstance(module, ActorCritic):
        parts = [module.actor] + ([module.critic_trunk] if module.critic_trunk is not None else [])
    else:
        parts = []
    for part in parts or [module]:
        for block in _blocks(part):
            fully_shard(block, **options)
        if part is not module:
            fully_shard(part, **options)
    fully_shard(module, **options)


def full_state_dict(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The whole (unsharded) state dict of a sharded ``module`` on the CPU, on rank 0; ``{}`` on
    the other ranks. Every rank must call it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    reshard(module)
    return get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def reshard(module: torch.nn.Module) -> None:
    """Put every FSDP unit of ``module`` back in its sharded state (the root keeps its parameters
    gathered after a step; state dicts must see the sharded parameters the optimiser holds)."""
    from torch.distributed.fsdp import FSDPModule

    for part in module.modules():
        if isinstance(part, FSDPModule):
            part.reshard()


def sharded_state(module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Each rank's shards of the model and optimiser state, for ``torch.distributed.checkpoint``."""
    from torch.distributed.checkpoint.state_dict import get_state_dict

    reshard(module)
    model_state, optimizer_state = get_state_dict(module, optimizer)
    return {"model": model_state, "optimizer": optimizer_state}


def load_sharded_state(module: torch.nn.Module, optimizer: torch.optim.Optimizer, directory: str) -> None:
    """Load what :func:`sharded_state` saved with ``torch.distributed.checkpoint`` into
    ``directory``, resharded for this layout."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import set_state_dict

    state = sharded_state(module, optimizer)
    dcp.load(state, checkpoint_id=directory)
    set_state_dict(module, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])
