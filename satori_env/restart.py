"""Restart-and-Explore (RAE): restart states derived from past trajectories, as Satori does.

A finished trajectory (the tokens a policy wrote after a problem's prompt, and whether its
answer was right) yields restart states: its prefixes cut at COAT step boundaries (before a
meta-action token, and at the very end), the last ``max_backtrack + 1`` of them, each with
``<|reflect|>`` appended. A state is labelled ``reflect_status`` -1 if the trajectory was wrong
and +1 if it was right; the reflection bonus (:class:`satori_env.rewards.ReflectionBonus`) then
rewards fixing a wrong prefix and penalises breaking a right one.

Token ids mean something only with the tokenizer that wrote them: a buffer records its
tokenizer's fingerprint (:func:`satori_env.tokenizer.tokenizer_fingerprint`), its states carry
it, and an environment with another tokenizer refuses them.

File format of :meth:`RestartBuffer.save` (gzip-compressed JSON, written atomically)::

    {"format": "satori-env/restart-buffer", "version": 2, "sha256": <hex of the payload JSON>,
     "payload": {"config": {...}, "problems": [Problem.to_dict(), ...],
                 "states": [[problem_index, [prefix token ids], reflect_status], ...],
                 "pass_counts": {problem_id: [correct, total]}, "rng": <numpy PCG64 state>}}

:meth:`RestartBuffer.load` checks every field (a checksum only proves the file is whole, not
that it makes sense) and reads version 1 files too (written without a tokenizer fingerprint).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from satori_env._checks import brief
from satori_env.atomic import atomic_write
from satori_env.coat import META_ACTIONS
from satori_env.tasks.problem import Problem

__all__ = ["STRATEGIES", "RestartBuffer", "RestartState", "Trajectory"]

FORMAT = "satori-env/restart-buffer"
VERSION = 2
_READABLE_VERSIONS = (1, 2)
_CONFIG_KEYS = {"meta_token_ids", "capacity", "strategy", "max_backtrack", "max_prefix_tokens", "tokenizer_fingerprint"}
_PAYLOAD_KEYS = {"config", "problems", "states", "pass_counts", "rng"}


@dataclass(frozen=True)
class Trajectory:
    """A finished episode as the restart buffer takes it (the environment puts one in the final
    ``info["trajectory"]``).

    Attributes:
        problem: the problem it answered.
        response: token ids after the problem's prompt (a restart prefix included), without the
            final stop token.
        correct: whether its final answer was right.
        finished: it ended with a stop token (truncated trajectories give no restart states).
    """

    problem: Problem
    response: tuple[int, ...]
    correct: bool
    finished: bool = True


@dataclass(frozen=True)
class RestartState:
    """Where a restarted episode begins: the problem's prompt followed by ``prefix``.

    Attributes:
        problem: the problem.
        prefix: response tokens to continue from, ending with ``<|reflect|>``.
        reflect_status: -1 if the prefix came from a wrong trajectory, +1 from a right one.
        tokenizer_fingerprint: the fingerprint of the tokenizer that wrote ``prefix``
            (:func:`~satori_env.tokenizer.tokenizer_fingerprint`); an environment with another
            tokenizer refuses the state. None (a state built by hand): not checked.
    """

    problem: Problem
    prefix: tuple[int, ...]
    reflect_status: int
    tokenizer_fingerprint: str | None = None

    @property
    def id(self) -> str:
        """A stable id: the problem's id and a digest of the prefix and its status (a server
        names states by it)."""
        digest = hashlib.sha256(json.dumps([list(self.prefix), self.reflect_status]).encode()).hexdigest()[:12]
        return f"{self.problem.id}#{digest}"


class RestartBuffer:
    """Restart states from past trajectories, with sampling strategies and exact save/load.

    Args:
        tokenizer: the environment's tokenizer (None: the shipped one), for the ids of the
            meta-action tokens. A buffer only serves environments with the same ids.
        capacity: most restart states kept; the oldest go first.
        strategy: "uniform" over states; "balanced": a problem uniformly, then one of its
            states; "frontier": problems weighted by p(1-p) of their pass rate p, so that those
            neither always solved nor never solved come up most (falls back to "balanced" while
            no problem has a pass rate strictly between 0 and 1).
        max_backtrack: how many step boundaries before the end also give states (0: only the
            whole response followed by ``<|reflect|>``).
        seed: seed of the buffer's own generator (used when ``sample`` gets no ``rng``).
        max_prefix_tokens: longest prefix kept (``<|reflect|>`` included); longer states are
            not derived. An environment's prompt window has room for ``max_new_tokens + 1``, so
            this keeps restarts of restarted episodes from growing past it. None: no limit.
    """

    def __init__(
        self,
        tokenizer: Any = None,
        capacity: int = 10_000,
        strategy: str = "uniform",
        max_backtrack: int = 2,
        seed: int | None = 0,
        max_prefix_tokens: int | None = None,
    ) -> None:
        from satori_env.tokenizer import default_tokenizer, tokenizer_fingerprint

        if tokenizer is None:
            tokenizer = default_tokenizer()
        ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in META_ACTIONS.items()}
        if any(i is None or i == tokenizer.unk_token_id for i in ids.values()):
            raise ValueError(
                f"the tokenizer lacks COAT tokens ({ids}); run satori_env.tokenizer.add_coat_tokens on it first"
            )
        self._configure(
            {
                "meta_token_ids": ids,
                "capacity": capacity,
                "strategy": strategy,
                "max_backtrack": max_backtrack,
                "max_prefix_tokens": max_prefix_tokens,
                "tokenizer_fingerprint": tokenizer_fingerprint(tokenizer),
            }
        )
        self.rng = np.random.default_rng(seed)
        self._states: list[RestartState] = []
        self._pass_counts: dict[str, list[int]] = {}
        self._index: dict[str, list[int]] | None = None  # problem id -> positions, rebuilt lazily

    def _configure(self, config: Mapping[str, Any]) -> None:
        """Check and apply the settings (a constructor's arguments, or a loaded file's config)."""
        if (
            not isinstance(config, Mapping)
            or not {"meta_token_ids", "capacity", "strategy", "max_backtrack"} <= set(config) <= _CONFIG_KEYS
        ):
            got = sorted(map(str, config)) if isinstance(config, Mapping) else config
            raise ValueError(f"a restart buffer's config has the keys {sorted(_CONFIG_KEYS)}; got {brief(got)}")
        if config["strategy"] not in STRATEGIES:
            raise ValueError(
                f"unknown restart strategy {brief(config['strategy'])}; valid strategies: {list(STRATEGIES)}"
            )
        for name in ("capacity", "max_backtrack"):
            value = config[name]
            if not _is_int(value) or value < (1 if name == "capacity" else 0):
                raise ValueError(f"{name} must be an int >= {1 if name == 'capacity' else 0}, got {brief(value)}")
        limit = config.get("max_prefix_tokens")
        if limit is not None and (not _is_int(limit) or limit < 1):
            raise ValueError(f"max_prefix_tokens must be None or an int >= 1, got {brief(limit)}")
        ids = config["meta_token_ids"]
        if (
            not isinstance(ids, Mapping)
            or set(ids) != set(META_ACTIONS)
            or not all(_is_int(i) and i >= 0 for i in ids.values())
            or len(set(ids.values())) != len(ids)
        ):
            raise ValueError(
                f"meta_token_ids must map {sorted(META_ACTIONS)} to distinct token ids >= 0, got {brief(ids)}"
            )
        fingerprint = config.get("tokenizer_fingerprint")
        if fingerprint is not None and not (isinstance(fingerprint, str) and len(fingerprint) <= 64):
            raise ValueError(f"tokenizer_fingerprint must be a short str or None, got {brief(fingerprint)}")
        self.meta_token_ids: dict[str, int] = {name: int(i) for name, i in ids.items()}
        self.capacity, self.strategy, self.max_backtrack = (
            config["capacity"],
            config["strategy"],
            config["max_backtrack"],
        )
        self.max_prefix_tokens = limit
        self.tokenizer_fingerprint: str | None = fingerprint

    @property
    def config(self) -> dict[str, Any]:
        return {
            "meta_token_ids": dict(self.meta_token_ids),
            "capacity": self.capacity,
            "strategy": self.strategy,
            "max_backtrack": self.max_backtrack,
            "max_prefix_tokens": self.max_prefix_tokens,
            "tokenizer_fingerprint": self.tokenizer_fingerprint,
        }

    # -- filling -----------------------------------------------------------------------------------

    def derive(self, trajectory: Trajectory) -> list[RestartState]:
        """The restart states of one trajectory (none for an unfinished one), earliest first."""
        if not trajectory.finished:
            return []
        tokens = tuple(int(t) for t in trajectory.response)
        meta = set(self.meta_token_ids.values())
        cuts = [i for i, token in enumerate(tokens) if token in meta and i > 0]
        if tokens:
            cuts.append(len(tokens))
        reflect = self.meta_token_ids["reflect"]
        status = 1 if trajectory.correct else -1
        states = [
            RestartState(trajectory.problem, tokens[:cut] + (reflect,), status, self.tokenizer_fingerprint)
            for cut in cuts[-(self.max_backtrack + 1) :]
        ]
        return [s for s in states if self.max_prefix_tokens is None or len(s.prefix) <= self.max_prefix_tokens]

    def add(self, trajectory: Trajectory) -> list[RestartState]:
        """Record one trajectory (its outcome counts towards its problem's pass rate) and keep
        its restart states; returns them."""
        return self.add_trajectories([trajectory])

    def add_trajectories(self, trajectories: Iterable[Trajectory | None]) -> list[RestartState]:
        """:meth:`add` for many, e.g. ``infos["final_info"]["trajectory"]`` of a vector env step
        (None entries, from copies whose episode did not end, are skipped)."""
        added: list[RestartState] = []
        for trajectory in trajectories:
            if trajectory is None:
                continue
            if not isinstance(trajectory, Trajectory):
                raise TypeError(f"expected a satori_env.restart.Trajectory, got {type(trajectory).__name__}")
            counts = self._pass_counts.setdefault(trajectory.problem.id, [0, 0])
            counts[0] += bool(trajectory.correct)
            counts[1] += 1
            added.extend(self.derive(trajectory))
        self._states.extend(added)
        if len(self._states) > self.capacity:
            del self._states[: len(self._states) - self.capacity]
        self._index = None
        return added

    # -- reading -----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._states)

    @property
    def states(self) -> tuple[RestartState, ...]:
        """The states kept, oldest first."""
        return tuple(self._states)

    def pass_rate(self, problem_id: str) -> float | None:
        """Share of recorded trajectories of ``problem_id`` that were right (None if none)."""
        counts = self._pass_counts.get(problem_id)
        return None if counts is None else counts[0] / counts[1]

    def sample(self, rng: np.random.Generator | None = None) -> RestartState:
        """Draw a restart state by the buffer's strategy, from ``rng`` (an environment passes
        its ``np_random``) or the buffer's own generator."""
        if not self._states:
            raise ValueError("the restart buffer is empty: add trajectories first")
        return STRATEGIES[self.strategy](self, self.rng if rng is None else rng)

    def sample_of(self, problem_id: str, rng: np.random.Generator | None = None) -> RestartState | None:
        """A restart state of ``problem_id`` (uniformly among its states), or None when the buffer
        holds none: for a trainer whose own sampler chooses the problem (TRL, verl) and may
        restart it mid-trajectory."""
        positions = self._problem_index().get(problem_id)
        if not positions:
            return None
        rng = self.rng if rng is None else rng
        return self._states[positions[int(rng.integers(len(positions)))]]

    def _problem_index(self) -> dict[str, list[int]]:
        if self._index is None:
            self._index = {}
            for position, state in enumerate(self._states):
                self._index.setdefault(state.problem.id, []).append(position)
        return self._index

    # -- persistence -------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Write the buffer to ``path`` atomically: a crash mid-save leaves the previous file whole."""
        problems: list[dict[str, Any]] = []
        problem_index: dict[str, int] = {}
        states = []
        for state in self._states:
            key = json.dumps(state.problem.to_dict(), sort_keys=True)
            if key not in problem_index:
                problem_index[key] = len(problems)
                problems.append(state.problem.to_dict())
            states.append([problem_index[key], list(state.prefix), state.reflect_status])
        payload = {
            "config": self.config,
            "problems": problems,
            "states": states,
            "pass_counts": self._pass_counts,
            "rng": self.rng.bit_generator.state,
        }
        body = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        document = {
            "format": FORMAT,
            "version": VERSION,
            "sha256": hashlib.sha256(body.encode()).hexdigest(),
            "payload": payload,
        }
        atomic_write(path, gzip.compress(json.dumps(document, separators=(",", ":")).encode(), mtime=0))

    @classmethod
    def load(cls, path: str | os.PathLike) -> RestartBuffer:
        """Read a buffer written by :meth:`save`; it continues exactly where the saved one stood
        (same states, pass rates and generator state).

        Raises:
            FileNotFoundError: no file at ``path``.
            ValueError: the file is not a restart buffer, is corrupted, or holds a field that
                does not make sense (each is checked; the message names it).
        """
        path = Path(path)
        try:
            document = json.loads(gzip.decompress(path.read_bytes()))
        except FileNotFoundError:
            raise FileNotFoundError(f"no restart buffer at {path}") from None
        except (OSError, EOFError, zlib.error, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(
                f"{path} is not a readable satori-env restart buffer (corrupted or another format): {error}"
            ) from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ValueError(
                f"{path} is not a satori-env restart buffer (format "
                f"{brief(document.get('format') if isinstance(document, dict) else None)})"
            )
        if document.get("version") not in _READABLE_VERSIONS:
            raise ValueError(
                f"{path} is a restart buffer of version {brief(document.get('version'))}; this satori-env reads "
                f"versions {list(_READABLE_VERSIONS)}"
            )
        payload = document.get("payload")
        body = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        if hashlib.sha256(body.encode()).hexdigest() != document.get("sha256"):
            raise ValueError(f"{path} is corrupted: its checksum does not match its contents")
        try:
            return cls._from_payload(payload)
        except (ValueError, TypeError) as error:
            raise ValueError(f"{path} holds an invalid restart buffer: {error}") from None

    @classmethod
    def _from_payload(cls, payload: Any) -> RestartBuffer:
        """A buffer from a file's payload, every field checked before the buffer exists."""
        if not isinstance(payload, dict) or set(payload) != _PAYLOAD_KEYS:
            got = sorted(map(str, payload)) if isinstance(payload, dict) else payload
            raise ValueError(f"the payload must have exactly the keys {sorted(_PAYLOAD_KEYS)}, got {brief(got)}")
        buffer = cls.__new__(cls)
        buffer._configure(payload["config"])
        if not isinstance(payload["problems"], list) or not all(isinstance(p, dict) for p in payload["problems"]):
            raise ValueError(f"problems must be a list of Problem dicts, got {brief(payload['problems'])}")
        problems = [Problem.from_dict(p) for p in payload["problems"]]
        states = payload["states"]
        if not isinstance(states, list) or len(states) > buffer.capacity:
            raise ValueError(f"states must be a list of at most capacity={buffer.capacity} states, got {brief(states)}")
        buffer._states = [buffer._check_state(index, state, problems) for index, state in enumerate(states)]
        counts = payload["pass_counts"]
        if not isinstance(counts, dict) or not all(_is_pass_count(c) for c in counts.values()):
            raise ValueError(
                f"pass_counts must map problem ids to [correct, total] with 0 <= correct <= total, total >= 1; got "
                f"{brief(counts)}"
            )
        buffer._pass_counts = {str(k): list(v) for k, v in counts.items()}
        buffer.rng = np.random.default_rng()
        try:
            buffer.rng.bit_generator.state = payload["rng"]
        except (TypeError, ValueError, KeyError) as error:
            raise ValueError(f"rng is not a NumPy PCG64 generator state ({error}): {brief(payload['rng'])}") from None
        buffer._index = None
        return buffer

    def _check_state(self, index: int, state: Any, problems: list[Problem]) -> RestartState:
        """One saved ``[problem_index, prefix, reflect_status]``, checked against this buffer."""
        if not (isinstance(state, list) and len(state) == 3):
            raise ValueError(
                f"state {index} must be [problem_index, prefix token ids, reflect_status], got {brief(state)}"
            )
        problem, prefix, status = state
        if not _is_int(problem) or not 0 <= problem < len(problems):
            raise ValueError(
                f"state {index}: problem index {brief(problem)} is not one of the {len(problems)} problems"
            )
        if not isinstance(prefix, list) or not prefix or not all(_is_int(t) and t >= 0 for t in prefix):
            raise ValueError(
                f"state {index}: the prefix must be a non-empty list of token ids >= 0, got {brief(prefix)}"
            )
        if prefix[-1] != self.meta_token_ids["reflect"]:
            raise ValueError(
                f"state {index}: the prefix must end with <|reflect|> (id {self.meta_token_ids['reflect']}), ends "
                f"with {prefix[-1]}"
            )
        if self.max_prefix_tokens is not None and len(prefix) > self.max_prefix_tokens:
            raise ValueError(
                f"state {index}: the prefix is {len(prefix)} tokens, more than "
                f"max_prefix_tokens={self.max_prefix_tokens}"
            )
        if status not in (-1, 1) or isinstance(status, bool):
            raise ValueError(f"state {index}: reflect_status must be -1 or 1, got {brief(status)}")
        return RestartState(problems[problem], tuple(prefix), status, self.tokenizer_fingerprint)


def _sample_uniform(buffer: RestartBuffer, rng: np.random.Generator) -> RestartState:
    """Every state equally likely."""
    return buffer._states[int(rng.integers(len(buffer._states)))]


def _sample_by_problem(
    buffer: RestartBuffer, rng: np.random.Generator, weights: np.ndarray | None = None
) -> RestartState:
    """A problem (uniformly, or by ``weights`` over the problems in buffer order), then one of
    its states uniformly."""
    index = buffer._problem_index()
    problems = list(index)
    positions = index[problems[int(rng.choice(len(problems), p=weights))]]
    return buffer._states[positions[int(rng.integers(len(positions)))]]


def _sample_balanced(buffer: RestartBuffer, rng: np.random.Generator) -> RestartState:
    """Every problem equally likely, whatever its number of states."""
    return _sample_by_problem(buffer, rng)


def _sample_frontier(buffer: RestartBuffer, rng: np.random.Generator) -> RestartState:
    """Problems weighted by p(1 - p) of their pass rate p: neither always nor never solved
    first; "balanced" while no problem has a pass rate strictly between 0 and 1."""
    rates = np.array([buffer.pass_rate(problem) or 0.0 for problem in buffer._problem_index()])
    weights = rates * (1.0 - rates)
    return _sample_by_problem(buffer, rng, weights / weights.sum() if weights.sum() > 0 else None)


STRATEGIES: dict[str, Callable[[RestartBuffer, np.random.Generator], RestartState]] = {
    "uniform": _sample_uniform,
    "balanced": _sample_balanced,
    "frontier": _sample_frontier,
}
"""Restart strategy name -> ``(buffer, rng) -> RestartState``."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_pass_count(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(_is_int(v) for v in value)
        and 0 <= value[0] <= value[1]
        and value[1] >= 1
    )
