"""The record every task source yields."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


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
                raise TypeError(f"Problem.{name} must be a str, got {type(value).__name__}: {value!r:.80}")
        if self.level is not None and (isinstance(self.level, bool) or not isinstance(self.level, int)):
            raise TypeError(f"Problem.level must be an int or None, got {self.level!r}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict; :meth:`from_dict` inverts it exactly."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Problem:
        """Rebuild a problem from :meth:`to_dict` output."""
        return cls(**data)
