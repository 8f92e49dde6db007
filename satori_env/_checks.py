"""Small helpers for error messages about bad input."""

from __future__ import annotations

import reprlib

__all__ = ["brief"]

_SHORT = reprlib.Repr()
for _name, _limit in {
    "maxlevel": 2,
    "maxdict": 4,
    "maxlist": 6,
    "maxtuple": 6,
    "maxset": 4,
    "maxstring": 60,
    "maxlong": 40,
    "maxother": 60,
}.items():
    setattr(_SHORT, _name, _limit)  # Repr() takes them as arguments only from Python 3.12


_LIMIT = 120


def brief(value: object) -> str:
    """``repr(value)`` cut short (at most 120 characters, whatever the size of ``value``): an
    error message names the bad value without echoing a 400 MB field."""
    text = _SHORT.repr(value)
    return text if len(text) <= _LIMIT else text[: _LIMIT - 3] + "..."
