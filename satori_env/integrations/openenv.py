"""SatoriMath as an OpenEnv environment (``pip install -e ".[openenv]"``): a server any OpenEnv
client (TRL, SkyRL, torchforge, ...) can train against, and a typed client.

    satori serve-openenv --host 127.0.0.1 --port 8000        # or: serve(host, port, tasks=...)

Each WebSocket connection is a session with an environment of its own
(``SUPPORTS_CONCURRENT_SESSIONS``); the sessions share one restart buffer, which every finished
episode feeds. The protocol is token ids both ways:

* ``reset(seed=..., problem={"id", "question", "answer", "source"}, restart_state="<id>")``: a
  problem drawn from the tasks (seeded), a given problem, or a restart state of the shared buffer
  by its id (:attr:`satori_env.RestartState.id`); the observation's ``tokens`` are the state
  (prompt and restart prefix) the policy continues, ``prompt_length`` where the problem's prompt
  ends, ``restart_states`` the ids now in the buffer for this problem.
* ``step({"tokens": [...], "clip": false})``: token ids the policy wrote (one or many,
  ``step_tokens``; with ``clip`` only what the episode takes, as for a generated row); at the
  end ``done`` is true, ``reward`` is the episode's reward and ``result`` holds every reward term,
  the verdict, the COAT actions and the length. A bad action (a token outside the action space,
  tokens after the end, a step before a reset) is an error response; the session is unchanged.

OpenEnv's stateless HTTP endpoints build a fresh environment per request, so a ``/step`` over
HTTP has no session: it is answered 409 (use the WebSocket).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from openenv.core import Action, EnvClient, Environment, Observation, State
from openenv.core.client_types import StepResult
from pydantic import Field

from satori_env.env import SatoriMathEnv
from satori_env.integrations.episodes import outcome
from satori_env.restart import RestartBuffer
from satori_env.tasks import Problem

__all__ = [
    "SatoriAction",
    "SatoriEnvClient",
    "SatoriObservation",
    "SatoriOpenEnv",
    "SatoriState",
    "background_server",
    "make_app",
    "serve",
]


class SatoriAction(Action):
    """Token ids the policy wrote (applied with ``step_tokens``)."""

    tokens: list[int] = Field(description="token ids to append, in order")
    clip: bool = Field(
        default=False,
        description="apply only what the episode takes (through the first stop token, within its limit) and drop "
        "the rest, as generated text needs; False: tokens past the episode's end are an error",
    )


class SatoriObservation(Observation):
    """The episode's token ids so far and, at its end, the result."""

    tokens: list[int] = Field(default_factory=list, description="the state: prompt, restart prefix, tokens written")
    prompt_length: int = Field(default=0, description="tokens of the problem's prompt (a restart prefix follows)")
    problem_id: str = Field(default="", description="the problem of the episode")
    restart_states: list[str] = Field(default_factory=list, description="ids of the buffer's states of this problem")
    result: dict[str, Any] = Field(default_factory=dict, description="at the end: reward terms, verdict, actions")
    tokenizer_fingerprint: str = Field(default="", description="the server's tokenizer (ids mean text only with it)")


class SatoriState(State):
    """Where a session stands."""

    problem_id: str = ""
    tokens_written: int = 0
    done: bool = True


class SatoriOpenEnv(Environment[SatoriAction, SatoriObservation, SatoriState]):
    """One session: a :class:`~satori_env.SatoriMathEnv` (token observations) and the shared
    restart buffer (see the module docstring)."""

    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(
        self, buffer: RestartBuffer | None = None, lock: threading.Lock | None = None, **env_kwargs: Any
    ) -> None:
        super().__init__()
        self.env = SatoriMathEnv(observation_mode="tokens", **env_kwargs)
        self.buffer = buffer
        self.lock = lock or threading.Lock()
        self._episode_id: str | None = None
        self._steps = self._start_length = 0

    def reset(
        self,
        seed: int | None = None,
        episode_id: str | None = None,
        problem: dict[str, Any] | None = None,
        restart_state: str | None = None,
        **kwargs: Any,
    ) -> SatoriObservation:
        if kwargs:
            raise ValueError(
                f"unknown reset argument(s) {sorted(kwargs)}; valid: seed, episode_id, problem, restart_state"
            )
        options: dict[str, Any] = {}
        if problem is not None:
            options["problem"] = Problem.from_dict({"source": "openenv", **problem})
        if restart_state is not None:
            options["restart_state"] = self._restart_state(restart_state)
        tokens, _ = self.env.reset(seed=seed, options=options or None)
        self._episode_id, self._steps = episode_id, 0
        return self._observation(tokens)

    def step(self, action: SatoriAction, timeout_s: float | None = None, **kwargs: Any) -> SatoriObservation:
        ids = self.env.clip_to_episode(action.tokens) if action.clip else action.tokens
        tokens, reward, terminated, truncated, info = self.env.step_tokens(ids)
        self._steps += 1
        if not (terminated or truncated):
            return self._observation(tokens)
        if self.buffer is not None:
            with self.lock:
                self.buffer.add(info["trajectory"])
        return self._observation(tokens, done=True, reward=float(reward), result=outcome(reward, info))

    @property
    def state(self) -> SatoriState:
        problem = self.env.problem
        return SatoriState(
            episode_id=self._episode_id,
            step_count=self._steps,
            problem_id=problem.id if problem is not None else "",
            tokens_written=self.env.length - self._start_length if problem is not None else 0,
            done=not self.env.running,
        )

    def _observation(
        self, tokens, done: bool = False, reward: float | None = None, result: dict | None = None
    ) -> SatoriObservation:
        problem = self.env.problem
        if not self._steps:
            self._start_length = len(tokens)
        states = []
        if self.buffer is not None:
            with self.lock:
                states = [s.id for s in self.buffer.states if s.problem.id == problem.id]
        return SatoriObservation(
            done=done,
            reward=reward,
            tokens=[int(t) for t in tokens],
            prompt_length=len(self.env.prompt_cache.get(problem.question, ())),
            problem_id=problem.id,
            restart_states=states,
            result=result or {},
            tokenizer_fingerprint=self.env.tokenizer_fingerprint,
        )

    def _restart_state(self, state_id: str):
        if self.buffer is None:
            raise ValueError("this server keeps no restart buffer: start it with restart states on")
        with self.lock:
            found = next((s for s in self.buffer.states if s.id == state_id), None)
        if found is None:
            raise ValueError(
                f"no restart state {state_id!r} in the buffer (ids come in an observation's restart_states)"
            )
        return found


def make_app(max_sessions: int = 64, restart: bool = True, **env_kwargs: Any):
    """The FastAPI app of an OpenEnv server of SatoriMath (``env_kwargs`` go to every session's
    :class:`~satori_env.SatoriMathEnv`: tasks, tokenizer, max_new_tokens, reward, ...)."""
    from openenv.core import create_fastapi_app

    probe = SatoriMathEnv(**env_kwargs)
    max_prefix = probe.max_new_tokens + 1
    buffer = RestartBuffer(probe.tokenizer, max_prefix_tokens=max_prefix) if restart else None
    lock = threading.Lock()
    window = probe.max_prompt_tokens + (max_prefix if restart else 0)
    settings = {"tokenizer": probe.tokenizer, "max_prompt_tokens": window, **env_kwargs}

    def session() -> SatoriOpenEnv:
        return SatoriOpenEnv(buffer=buffer, lock=lock, **settings)

    app = create_fastapi_app(session, SatoriAction, SatoriObservation, max_concurrent_envs=max_sessions)

    async def refused(request, error: Exception):  # bad input over HTTP: a clear 4xx, not a server error
        from fastapi.responses import JSONResponse

        code = 409 if isinstance(error, RuntimeError) else 400
        return JSONResponse(status_code=code, content={"detail": f"{error} (episodes are sessions: use /ws)"})

    app.add_exception_handler(ValueError, refused)
    app.add_exception_handler(RuntimeError, refused)
    return app


def serve(
    host: str = "127.0.0.1", port: int = 8000, max_sessions: int = 64, restart: bool = True, **env_kwargs: Any
) -> None:
    """Run the server (blocks) with uvicorn."""
    import uvicorn

    uvicorn.run(make_app(max_sessions, restart, **env_kwargs), host=host, port=port, log_level="warning")


@contextmanager
def background_server(max_sessions: int = 64, restart: bool = True, **env_kwargs: Any) -> Iterator[str]:
    """A server on a free loopback port in a thread of this process, for as long as the block
    runs; yields its URL (``with background_server(max_new_tokens=96) as url: ...``)."""
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = make_app(max_sessions, restart, **env_kwargs)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="satori-openenv-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the OpenEnv server did not start on 127.0.0.1:{port}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


class SatoriEnvClient(EnvClient[SatoriAction, SatoriObservation, SatoriState]):
    """A typed OpenEnv client of the server: ``reset(...)`` and ``step(SatoriAction(tokens=...))``
    give :class:`SatoriObservation` results (``.sync()`` for a blocking client)."""

    async def disconnect(self) -> None:
        """Say goodbye and wait for the server to close the connection (closing it first races
        the server's own close, which then logs an error)."""
        if self._ws is not None:
            with suppress(Exception):  # best effort, as the base client's
                await self._send({"type": "close"})
                await asyncio.wait_for(self._ws.wait_closed(), timeout=5)
        await super().disconnect()

    def _step_payload(self, action: SatoriAction) -> dict[str, Any]:
        return action.model_dump(exclude={"metadata"})

    def _parse_result(self, payload: dict[str, Any]) -> StepResult[SatoriObservation]:
        observation = SatoriObservation(
            **payload.get("observation", {}), done=payload.get("done", False), reward=payload.get("reward")
        )
        return StepResult(observation=observation, reward=payload.get("reward"), done=payload.get("done", False))

    def _parse_state(self, payload: dict[str, Any]) -> SatoriState:
        return SatoriState(**payload)
