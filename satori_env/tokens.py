"""Token-id sequences as the environment, the vector env and the generation engines handle them."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

from satori_env._checks import brief

__all__ = ["cut_after_stop", "token_array"]


def token_array(tokens: Any, num_actions: int) -> np.ndarray:
    """``tokens`` as a NumPy array; an id that int64 cannot hold (NumPy would raise
    OverflowError, or silently turn the list into floats or wrap it negative) is the env's usual
    ``ValueError`` naming the id."""
    if isinstance(tokens, (list, tuple)):
        huge = next((t for t in tokens if isinstance(t, int) and not -(2**63) <= t < 2**63), None)
        if huge is not None:
            raise ValueError(f"token id {brief(huge)} is outside the action space Discrete({num_actions})")
    ids = np.asarray(tokens)
    if ids.dtype.kind == "u" and ids.size and int(ids.max()) >= num_actions:  # would wrap to negative as int64
        raise ValueError(f"token id {int(ids.max())} is outside the action space Discrete({num_actions})")
    return ids


def cut_after_stop(ids: Sequence[int], stop_ids: Collection[int]) -> list[int]:
    """``ids`` up to and including the first stop id (all of them when none is a stop id): what
    an engine returns and what an episode takes from a generated row."""
    stops = set(stop_ids)
    ids = [int(token) for token in ids]
    end = next((i + 1 for i, token in enumerate(ids) if token in stops), len(ids))
    return ids[:end]
