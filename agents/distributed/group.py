"""The lifetime of this process's ``torch.distributed`` group: opened so that nothing in torch
keeps it past its end, released so that its backend's threads stop before the interpreter does.

Two things in torch keep a destroyed group alive, and with it gloo's threads, which then run on
into interpreter exit and abort the process now and then (SIGABRT, "terminate called without an
active exception"; measured: one rank in about one full test run out of three):

- ``torch.distributed.nn.functional`` binds ``group.WORLD`` into its functions' default
  arguments when it is first imported, and FSDP imports it (through ``torch._dynamo``): imported
  after the group exists, it holds the group for good. :func:`open_process_group` imports it
  first.
- DTensor's caches (sharding propagation, redistribute planners, mesh topology) are keyed by the
  FSDP mesh, which holds the group. :func:`release_process_group` clears them.
"""

from __future__ import annotations

import functools
import gc
from typing import Any

import torch.distributed as dist

__all__ = ["open_process_group", "release_process_group"]


def open_process_group(backend: str, **options: Any) -> None:
    """``torch.distributed.init_process_group(backend, **options)``, once nothing that would
    capture the group at import time can still be imported after it."""
    import torch.distributed.nn  # noqa: F401  (before the group: see the module docstring)

    dist.init_process_group(backend, **options)


def release_process_group() -> None:
    """Destroy the default group so that its backend's threads end here, not at exit. Call it
    once the sharded modules are dropped: DTensor's caches are cleared, then the group destroyed."""
    try:  # private torch caches: another torch may not have them, and then has nothing of them to drop
        from torch.distributed.tensor._redistribute import clear_redistribute_planner_cache
        from torch.distributed.tensor.debug import _clear_sharding_prop_cache
    except ImportError:
        pass
    else:
        _clear_sharding_prop_cache()
        clear_redistribute_planner_cache()
    lru_cache_type = type(functools.lru_cache(maxsize=None)(int))
    for cached in gc.get_objects():
        if isinstance(cached, lru_cache_type) and (cached.__module__ or "").startswith("torch.distributed"):
            cached.cache_clear()
    gc.collect()
    dist.destroy_process_group()
