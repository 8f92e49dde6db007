"""Checks of the option dataclasses (``satori`` sub-commands and their Python API), run when a
dataclass is built: a bad count or value fails at once, naming its flag and what is allowed,
instead of running and producing nothing (``--steps -1``) or failing deep inside."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["check_fields", "flag"]


def flag(name: str) -> str:
    """The command-line flag of a field: ``max_new_tokens`` -> ``--max-new-tokens``."""
    return "--" + name.replace("_", "-")


def check_fields(
    config: Any,
    *,
    at_least: Mapping[str, float] | None = None,
    above: Mapping[str, float] | None = None,
    at_most: Mapping[str, float] | None = None,
    choices: Mapping[str, Iterable[Any]] | None = None,
    subsets: Mapping[str, Iterable[Any]] | None = None,
) -> None:
    """Raise ``ValueError`` naming the first field of ``config`` that breaks a rule.

    ``at_least`` / ``above`` / ``at_most``: numeric bounds (a field that is None is skipped);
    ``choices``: the values a field may take; ``subsets``: a non-empty tuple field whose items
    must all be among the given values (None skipped).
    """
    for name, bound in (at_least or {}).items():
        value = getattr(config, name)
        if value is not None and (_not_number(value) or value < bound):
            raise ValueError(f"{flag(name)} must be >= {bound}, got {value!r}")
    for name, bound in (above or {}).items():
        value = getattr(config, name)
        if value is not None and (_not_number(value) or not value > bound):
            raise ValueError(f"{flag(name)} must be > {bound}, got {value!r}")
    for name, bound in (at_most or {}).items():
        value = getattr(config, name)
        if value is not None and (_not_number(value) or value > bound):
            raise ValueError(f"{flag(name)} must be <= {bound}, got {value!r}")
    for name, allowed in (choices or {}).items():
        allowed = list(allowed)
        if getattr(config, name) not in allowed:
            raise ValueError(f"{flag(name)} must be one of {allowed}, got {getattr(config, name)!r}")
    for name, allowed in (subsets or {}).items():
        allowed, value = list(allowed), getattr(config, name)
        if value is not None and (not value or any(item not in allowed for item in value)):
            raise ValueError(f"{flag(name)} takes one or more of {allowed}, got {value!r}")


def _not_number(value: Any) -> bool:
    return isinstance(value, bool) or not isinstance(value, (int, float)) or value != value  # nan
