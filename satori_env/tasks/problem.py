"""The record every task source yields."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from satori_env._checks import brief


@dataclass(frozen=True)
class Problem:
    """One math problem with its gold answer.

    Attributes:
        id: unique within its source, stable across releases (e.g. ``"gsm8k:test/17"``).
        question: the problem statement shown to the policy.
        answer: the gold final answer as a string (LaTeX allowed), e.g. ``"18"``,
            ``"\\frac{1}{2}"``; checked with :func:`satori_env.verify`.
        source: the source name it came from, e.g. ``"gsm8k:test"``, ``"math500"``, ``"arith:train"``.
        level: difficulty level where the source has one (MATH levels 1-5, arithmetic levels
            1-6), else None.
        meta: everything else the source provides (reference solution, subject, the
            arithmetic steps ...). JSON-serialisable; not part of the hash.
    """

    id: str
    question: str
    answer: str
    source: str
    level: int | None = None
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)

    def __post_init__(self) -> None:
        for name in ("id", "question", "answer", "source"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise TypeError(f"Problem.{name} must be a str, got {type(value).__name__}: {brief(value)}")
        if self.level is not None and (isinstance(self.level, bool) or not isinstance(self.level, int)):
            raise TypeError(f"Problem.level must be an int or None, got {brief(self.level)}")
        if not isinstance(self.meta, dict):
            raise TypeError(f"Problem.meta must be a dict, got {type(self.meta).__name__}: {brief(self.meta)}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict; :meth:`from_dict` inverts it exactly."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Problem:
        """Rebuild a problem from :meth:`to_dict` output."""
        names = {f.name for f in fields(cls)}
        if not isinstance(data, Mapping) or not {"id", "question", "answer", "source"} <= set(data) <= names:
            raise TypeError(
                f"a Problem dict has the keys id, question, answer, source (and optionally level, meta); got "
                f"{brief(data)}"
            )
        return cls(**data)
