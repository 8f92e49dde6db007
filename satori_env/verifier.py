"""Equivalence checking, safe to run on anything a policy writes.

* :func:`verify` / :func:`verify_batch` / :class:`Verifier` decide whether the final answer of
  a completion (:func:`satori_env.answers.extract_answer`) is equivalent to a gold answer:
  plain numbers, fractions and closed forms with radicals and pi are compared exactly in-process
  (:func:`satori_env.answers.fast_verdict`);
  everything else goes to `math-verify`_ in a
  pool of worker processes with a hard wall-clock timeout per answer (the worker is killed and
  replaced when it runs over). A timeout or a crash counts as *wrong* and is reported in the
  :class:`Verdict` and in :attr:`Verifier.stats`; it is never raised into a training loop.
* ``Verifier(rule="satori-release")`` judges as Satori's release does instead (its 128-character
  window, its GSM8K and MATH checkers; :mod:`satori_env.release_rule`), to compare with the paper.
* Nothing from a completion is ever passed to ``eval``/``exec``.

.. _math-verify: https://github.com/huggingface/Math-Verify
"""

from __future__ import annotations

import atexit
import itertools
import json
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from satori_env import release_rule
from satori_env.answers import extract_answer, fast_verdict

__all__ = [
    "RULES",
    "Verdict",
    "Verifier",
    "VerifierStats",
    "default_verifier",
    "rule_verifier",
    "verify",
    "verify_batch",
]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 1.0
RULES = ("math-verify", "satori-release")
"""Answer rules: math-verify on the last answer of the whole completion (the default), or Satori's
release's own (:mod:`satori_env.release_rule`)."""
MAX_TIMEOUT_S = 1e6  # about 11 days; the selectors' wait overflows past about 2.1e6 s (a C int of milliseconds)

# ----------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------

Status = Literal["ok", "no_answer", "timeout", "error"]


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one completion against one gold answer.

    Attributes:
        correct: the completion's final answer is equivalent to the gold answer.
        predicted: the extracted final answer (None when the completion has none).
        status: "ok"; "no_answer" (nothing to extract); "timeout" (the check ran past the
            time limit and was killed); "error" (the checker failed). Only "ok" can be correct.
        seconds: wall-clock time the check took.
    """

    correct: bool
    predicted: str | None
    status: Status
    seconds: float


@dataclass
class VerifierStats:
    """Running counters of a :class:`Verifier` (read them to report timeouts in a log)."""

    checks: int = 0  # answers asked about
    fast_path: int = 0  # decided in-process (numbers, fractions, radicals and pi, identical strings)
    cache_hits: int = 0  # settled earlier
    math_verify: int = 0  # sent to a math-verify worker
    timeouts: int = 0
    errors: int = 0
    worker_restarts: int = 0


# ----------------------------------------------------------------------------------------------
# Worker pool
# ----------------------------------------------------------------------------------------------

_CACHE_ENTRIES = 65536
_CACHE_MAX_CHARS = 4096  # longer pairs are not worth the memory
_SERVER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_verifier_worker.py")


class _Server:
    """The warm math-verify process that forks workers (see ``_verifier_worker.py``)."""

    def __init__(self, memory_mb: int, rule: str) -> None:
        if not hasattr(socket, "send_fds") or not hasattr(os, "fork"):
            raise RuntimeError("the verifier's worker pool needs a POSIX system (Linux or macOS)")
        self.control, server_end = socket.socketpair()
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, _SERVER_SCRIPT, str(server_end.fileno()), str(memory_mb), rule],
            pass_fds=[server_end.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.stderr,
        )
        server_end.close()
        self.broken = False
        try:
            ready = self.control.recv(5)
        except BaseException:  # interrupted while it warms up: stop it now, not 1.5 s of CPU later
            self.proc.kill()
            self.close()
            raise
        if ready != b"ready":
            error = self._stderr_tail()
            self.close()
            raise RuntimeError(f"the verifier server failed to start:\n{error}")

    def fork_worker(self) -> _Worker:
        """A new worker. An exception part-way (an interrupt between the request and the reply)
        leaves the control channel out of step, so the server is marked ``broken``: the pool
        then restarts it rather than read another request's reply."""
        self.broken = True
        self.control.sendall(b"s")
        message, fds, _, _ = socket.recv_fds(self.control, 8, 1)
        if len(message) != 8 or len(fds) != 1:
            raise RuntimeError(f"the verifier server stopped:\n{self._stderr_tail()}")
        self.broken = False
        return _Worker(int.from_bytes(message, "little"), socket.socket(fileno=fds[0]))

    def _stderr_tail(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")[-2000:]

    def close(self) -> None:
        self.control.close()  # the server exits when it reads end-of-file
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()


class _Worker:
    """One forked math-verify worker and the job it is running."""

    def __init__(self, pid: int, conn: socket.socket) -> None:
        self.pid = pid
        self.conn = conn
        self.buffer = b""
        self.job: int | None = None  # id of the job it is running (unique for the pool's life)
        self.deadline = 0.0

    @property
    def alive(self) -> bool:
        """Not killed by us (a worker that died by itself shows as end of file on read)."""
        return self.conn.fileno() != -1

    def send(self, job: int, gold: str, predicted: str, deadline: float) -> bool:
        """Hand the worker a job; False if the worker is gone. The worker counts as busy from
        before the first byte is sent, so an interrupt mid-send leaves it marked busy."""
        self.job, self.deadline = job, deadline
        try:
            self.conn.sendall((json.dumps([job, gold, predicted]) + "\n").encode())
        except OSError:
            return False
        return True

    def read_messages(self) -> list | None:
        """Decoded replies now available, or None at end of file (the worker died)."""
        try:
            chunk = self.conn.recv(1 << 16)
        except OSError:  # reset by a worker that died with our data unread
            return None
        if not chunk:
            return None
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        return [json.loads(line) for line in lines if line]

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.conn.close()


class Verifier:
    """Checks completions against gold answers with a hard per-answer time limit.

    Args:
        timeout: seconds one answer may take in math-verify before its worker is killed and the
            answer counted wrong (``status="timeout"``). The clock starts when a worker takes
            the answer. Default 1.0.
        workers: number of math-verify worker processes, forked from one warm server process
            (started lazily, about 1.5 s, once); a killed worker is replaced in milliseconds.
            Default ``min(4, cpu_count)``, at least 2.
        worker_memory_mb: address-space cap of the worker processes (POSIX), so that a
            pathological expression fails fast instead of swapping. 0 disables the cap.
        rule: one of :data:`RULES`. ``"satori-release"`` reads the answer as the release does
            (the last ``\\boxed{}`` in the last 128 characters) and compares with its checkers:
            GSM8K's float equality for problems from ``gsm8k`` sources (:meth:`check_problems`),
            its MATH checker for the rest, under the same time limit.

    Thread-safe; a forked child process gets its own fresh pool. Use as a context manager or
    call :meth:`close` to stop the workers (they also stop when the interpreter exits).
    """

    def __init__(
        self,
        timeout: float = DEFAULT_TIMEOUT_S,
        workers: int | None = None,
        worker_memory_mb: int = 4096,
        rule: str = "math-verify",
    ) -> None:
        if rule not in RULES:
            raise ValueError(f"unknown answer rule {rule!r}; valid rules: {list(RULES)}")
        self.rule = rule
        self.timeout = _check_timeout(timeout)
        self.workers = _check_workers(workers) if workers is not None else _default_workers()
        self.worker_memory_mb = int(worker_memory_mb)
        self.stats = VerifierStats()
        self._server: _Server | None = None
        self._pool: list[_Worker] = []
        self._pool_pid = os.getpid()
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, str], bool] = OrderedDict()  # settled (gold, answer) pairs
        self._job_ids = itertools.count()  # every job sent gets its own id: replies match the job that asked

    # -- public API ----------------------------------------------------------------------------

    def check(self, completion: str, gold: str, timeout: float | None = None) -> Verdict:
        """Check one completion; see :class:`Verdict`."""
        return self.check_batch([(completion, gold)], timeout=timeout)[0]

    def check_batch(self, pairs: Iterable[tuple[str, str]], timeout: float | None = None) -> list[Verdict]:
        """Check ``(completion, gold)`` pairs in parallel; results keep the input order."""
        timeout = self.timeout if timeout is None else _check_timeout(timeout)
        pairs = list(pairs)
        verdicts: list[Verdict | None] = [None] * len(pairs)
        jobs: list[tuple[int, tuple[str, str]]] = []  # (index, (gold, predicted)) for math-verify
        fast = 0
        for index, pair in enumerate(pairs):
            started = time.monotonic()
            completion, gold = _check_pair(index, pair)
            predicted = extract_answer(completion) if self.rule == "math-verify" else release_rule.extract(completion)
            if predicted is None:
                verdicts[index] = Verdict(False, None, "no_answer", time.monotonic() - started)
                continue
            decided = (
                fast_verdict(gold, predicted)
                if self.rule == "math-verify"
                else release_rule.fast_equal(predicted, gold)
            )
            if decided is None:
                jobs.append((index, (gold, predicted)))
            else:
                fast += 1
                verdicts[index] = Verdict(decided, predicted, "ok", time.monotonic() - started)
        with self._lock:
            # Samples of one problem often agree: each distinct (gold, answer) is checked once,
            # and settled ones are remembered across calls.
            known = {key: (self._cache[key], "ok", 0.0) for _, key in jobs if key in self._cache}
            self.stats.cache_hits += sum(key in known for _, key in jobs)
            todo = list(dict.fromkeys(key for _, key in jobs if key not in known))
            known.update(zip(todo, self._run(todo, timeout) if todo else []))
            for key in todo:
                if known[key][1] == "ok":
                    self._remember(key, known[key][0])
            self.stats.checks += len(pairs)
            self.stats.fast_path += fast
        for index, key in jobs:
            correct, status, seconds = known[key]
            verdicts[index] = Verdict(correct, key[1], status, seconds)
        return verdicts  # type: ignore[return-value]

    def check_problems(self, completions: Sequence[str], problems: Sequence) -> list[Verdict]:
        """:meth:`check_batch` against each problem's gold answer; with the ``satori-release``
        rule, problems from ``gsm8k`` sources get the release's GSM8K checker."""
        if self.rule == "math-verify":
            return self.check_batch([(c, p.answer) for c, p in zip(completions, problems)])
        gsm8k = [i for i, p in enumerate(problems) if p.source.startswith("gsm8k")]
        verdicts: list[Verdict | None] = [None] * len(problems)
        for i in gsm8k:
            started = time.monotonic()
            predicted = release_rule.extract(completions[i])
            correct = predicted is not None and release_rule.gsm8k_equal(predicted, problems[i].answer)
            verdicts[i] = Verdict(
                correct, predicted, "ok" if predicted is not None else "no_answer", time.monotonic() - started
            )
        rest = [i for i in range(len(problems)) if verdicts[i] is None]
        for i, verdict in zip(rest, self.check_batch([(completions[i], problems[i].answer) for i in rest])):
            verdicts[i] = verdict
        return verdicts  # type: ignore[return-value]

    def verify(self, completion: str, gold: str, timeout: float | None = None) -> bool:
        """True when the final answer of ``completion`` is equivalent to ``gold``."""
        return self.check(completion, gold, timeout).correct

    def verify_batch(self, pairs: Iterable[tuple[str, str]], timeout: float | None = None) -> list[bool]:
        """:meth:`verify` for many ``(completion, gold)`` pairs, order preserved."""
        return [v.correct for v in self.check_batch(pairs, timeout)]

    def start(self) -> Verifier:
        """Start the worker pool now; otherwise the first check that needs math-verify starts
        it (about 1.5 s). Returns self."""
        with self._lock:
            self._fill_pool()
        return self

    def close(self) -> None:
        """Stop the worker processes (a later check starts new ones)."""
        with self._lock:
            if self._pool_pid == os.getpid():
                for worker in self._pool:
                    worker.kill()
                if self._server is not None:
                    self._server.close()
            self._pool, self._server = [], None

    def __enter__(self) -> Verifier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- pool mechanics ------------------------------------------------------------------------

    def _fill_pool(self) -> None:
        if self._pool_pid != os.getpid():  # forked: the parent's sockets are not ours to use
            self._pool, self._server, self._pool_pid = [], None, os.getpid()
        while len(self._pool) < self.workers:
            self._pool.append(self._fork_worker())

    def _fork_worker(self) -> _Worker:
        """A new worker from the server; a server that died (say, to the OOM killer) is restarted."""
        if self._server is not None and not self._server.broken:
            try:
                return self._server.fork_worker()
            except (OSError, RuntimeError):
                logger.warning("the verifier server stopped; restarting it")
        if self._server is not None:
            self._server.close()
        self._server = _Server(self.worker_memory_mb, self.rule)
        return self._server.fork_worker()

    def _replace(self, selector: selectors.BaseSelector, worker: _Worker) -> None:
        """Kill ``worker`` and fork a warm replacement."""
        selector.unregister(worker.conn)
        worker.kill()
        fresh = self._fork_worker()
        self._pool[self._pool.index(worker)] = fresh
        selector.register(fresh.conn, selectors.EVENT_READ, fresh)
        self.stats.worker_restarts += 1

    def _remember(self, key: tuple[str, str], correct: bool) -> None:
        if len(key[0]) + len(key[1]) <= _CACHE_MAX_CHARS:
            self._cache[key] = correct
            if len(self._cache) > _CACHE_ENTRIES:
                self._cache.popitem(last=False)  # the oldest

    def _run(self, jobs: list[tuple[str, str]], timeout: float) -> list[tuple[bool, Status, float]]:
        """Run (gold, predicted) jobs on the pool; (correct, status, seconds) per job, in order.

        When anything escapes (an interrupt, an error), every worker that holds a job is killed
        before the exception goes on, so no late reply can ever be read as a later job's.
        """
        self._fill_pool()
        self.stats.math_verify += len(jobs)
        try:
            return self._dispatch(jobs, timeout)
        except BaseException:
            self._drop_busy_workers()
            raise

    def _drop_busy_workers(self) -> None:
        """Kill the workers that hold a job or may be half-replaced; the next call forks new ones."""
        keep = []
        for worker in self._pool:
            if worker.job is None and worker.alive and not worker.buffer:
                keep.append(worker)
            else:
                worker.kill()
        self._pool = keep

    def _dispatch(self, jobs: list[tuple[str, str]], timeout: float) -> list[tuple[bool, Status, float]]:
        results: dict[int, tuple[bool, Status, float]] = {}
        pending = deque(range(len(jobs)))
        started: dict[int, float] = {}  # first dispatch of each job: its deadline counts from there
        retried: set[int] = set()
        index_of: dict[int, int] = {}  # job id -> index in ``jobs``

        def finish(job_id: int, correct: bool, status: Status) -> None:
            index = index_of.pop(job_id)
            results[index] = (bool(correct) and status == "ok", status, time.monotonic() - started[index])

        with selectors.DefaultSelector() as selector:
            for worker in self._pool:
                selector.register(worker.conn, selectors.EVENT_READ, worker)
            while len(results) < len(jobs):
                for worker in list(self._pool):
                    if pending and worker.job is None:
                        index = pending.popleft()
                        started.setdefault(index, time.monotonic())
                        job_id = next(self._job_ids)
                        index_of[job_id] = index
                        gold, predicted = jobs[index]
                        if not worker.send(job_id, gold, predicted, started[index] + timeout):
                            del index_of[job_id]
                            pending.appendleft(index)
                            worker.job = None
                            self._replace(selector, worker)
                deadlines = [w.deadline for w in self._pool if w.job is not None]
                wait = max(0.0, min(deadlines) - time.monotonic()) if deadlines else 0.0
                for key, _ in selector.select(wait):
                    worker = key.data
                    messages = worker.read_messages()
                    if messages is None:  # the worker died: killed from outside, crashed, out of memory
                        if worker.job is not None:
                            self._worker_died(worker.job, index_of, pending, retried, finish)
                            worker.job = None
                        self._replace(selector, worker)
                        continue
                    for job_id, correct, error in messages:
                        if job_id != worker.job:  # not the job it holds: never credit it to another
                            logger.warning(
                                "discarded a verifier reply for job %s, not the job %s it holds", job_id, worker.job
                            )
                            continue
                        finish(job_id, correct, "ok" if error is None else "error")
                        self.stats.errors += error is not None
                        worker.job = None
                now = time.monotonic()
                for worker in list(self._pool):
                    if worker.job is not None and now >= worker.deadline:
                        index = index_of[worker.job]
                        finish(worker.job, False, "timeout")
                        worker.job = None
                        self.stats.timeouts += 1
                        logger.warning(
                            "answer check timed out after %.2fs and counts as wrong: %.80r", timeout, jobs[index][1]
                        )
                        self._replace(selector, worker)
        return [results[i] for i in range(len(jobs))]

    def _worker_died(self, job_id: int, index_of: dict[int, int], pending: deque, retried: set[int], finish) -> None:
        """A worker died holding a job. It may have died before it read the job (killed while
        idle, just before the job was sent), so the job runs once more on a fresh worker, within
        its original deadline; a second death counts as an error."""
        index = index_of[job_id]
        if index in retried:
            finish(job_id, False, "error")
            self.stats.errors += 1
            return
        retried.add(index)
        del index_of[job_id]
        pending.appendleft(index)


def _check_timeout(timeout: float) -> float:
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 < timeout <= MAX_TIMEOUT_S:
        raise ValueError(
            f"timeout must be a positive number of seconds, at most {MAX_TIMEOUT_S:g}; got {timeout!r:.40}"
        )
    return float(timeout)


def _check_workers(workers: int) -> int:
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    return workers


def _default_workers() -> int:
    return max(2, min(4, os.cpu_count() or 1))


def _check_pair(index: int, pair: object) -> tuple[str, str]:
    if not (isinstance(pair, Sequence) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
        raise TypeError(f"pair {index} must be a (completion: str, gold: str) tuple, got {pair!r:.120}")
    return pair[0], pair[1]


# ----------------------------------------------------------------------------------------------
# Module-level convenience API (one shared pool)
# ----------------------------------------------------------------------------------------------

_shared: Verifier | None = None
_shared_lock = threading.Lock()


def _shared_verifier(workers: int | None) -> Verifier:
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Verifier(workers=workers)
            atexit.register(_shared.close)
        elif workers is not None and _check_workers(workers) > _shared.workers:
            _shared.workers = workers  # the pool grows on the next batch
        return _shared


def default_verifier() -> Verifier:
    """The process-wide :class:`Verifier` behind :func:`verify`, :func:`verify_batch` and the
    environments (its pool starts on first use and stops at exit)."""
    return _shared_verifier(None)


_rule_verifiers: dict[str, Verifier] = {}


def rule_verifier(rule: str) -> Verifier:
    """The process-wide :class:`Verifier` of an answer rule (one of :data:`RULES`):
    :func:`default_verifier` for ``math-verify``."""
    if rule == "math-verify":
        return default_verifier()
    if rule not in RULES:
        raise ValueError(f"unknown answer rule {rule!r}; valid rules: {list(RULES)}")
    with _shared_lock:
        if rule not in _rule_verifiers:
            _rule_verifiers[rule] = Verifier(rule=rule)
            atexit.register(_rule_verifiers[rule].close)
        return _rule_verifiers[rule]


def verify(completion: str, gold: str, timeout: float = DEFAULT_TIMEOUT_S) -> bool:
    """True when the final answer in ``completion`` is equivalent to ``gold``.

    ``completion`` is model output (the answer is found with :func:`extract_answer`); ``gold``
    is the reference answer itself (e.g. ``"\\frac{1}{2}"``, ``"18"``, ``"(1, 2]"``). A check
    that runs past ``timeout`` seconds counts as wrong; it never raises for any completion.

    >>> verify(r"First 2+3=5, so the answer is $\\boxed{5}$.", "5")
    True
    """
    return default_verifier().verify(completion, gold, timeout)


def verify_batch(
    pairs: Iterable[tuple[str, str]],
    workers: int | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> list[bool]:
    """:func:`verify` for many ``(completion, gold)`` pairs, in parallel, order preserved.

    ``workers`` grows the shared worker pool to at least that many processes.
    """
    return _shared_verifier(workers).verify_batch(pairs, timeout)
