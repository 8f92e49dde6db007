"""Verifier server: a warm math-verify process that forks answer-checking workers on demand.

Started by :class:`satori_env.verifier.Verifier` as
``python _verifier_worker.py CONTROL_FD MEMORY_MB [RULE]`` (a plain subprocess, so it also works from
daemonic processes such as Gymnasium's async vector-env workers). It imports nothing from
``satori_env``. Once it has imported and warmed up math-verify it writes ``b"ready"`` on the
control socket; then each ``b"s"`` it reads makes it fork one worker and send back the worker's
pid (8 bytes) with the parent's end of a fresh socket pair attached (SCM_RIGHTS). Forked
workers start in milliseconds with math-verify and sympy already warm, so a worker killed on a
timeout is replaced at once.

Worker protocol on its socket, JSON lines: parent -> worker ``[job_id, gold, predicted]``;
worker -> parent ``[job_id, equal: bool, error: str | null]``.

Both answers arrive already extracted; each is wrapped in ``\\boxed{}`` and parsed by
math-verify's LaTeX extractor only. That path builds sympy objects through an ANTLR parser;
math-verify's plain-expression extractor (which hands strings to sympy's ``parse_expr``, an
``eval``) is deliberately not used, so nothing from a completion is ever evaluated as code.
Timeouts are the parent's job (it kills the worker), so math-verify's signal-based timeouts are
switched off. With RULE ``satori-release`` the workers run Satori's release's checker instead
(``release_rule.py``, loaded by path).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import socket
import sys

# Pairs that walk math-verify's main code paths (numbers, intervals, sets, tuples, symbolic
# simplification, matrices, percentages, units, text) so that forked workers start warm.
_WARM_UP = [
    ("\\frac{1}{2}", "0.5"),
    ("(1,2]", "[1,2)"),
    ("\\{1,2\\}", "\\{2,3\\}"),
    ("(1,2)", "(3,\\frac{\\pi}{2})"),
    ("x^2+2x+1", "(x+1)^2"),
    ("\\begin{pmatrix}1\\\\2\\end{pmatrix}", "3"),
    ("50\\%", "0.5"),
    ("90^\\circ", "\\frac{\\pi}{2}"),
    ("\\text{Evelyn}", "\\text{Bob}"),
    ("x=2", "2"),
    ("1+2i", "\\sqrt{8}"),
    ("52_8", "225"),
]


def _limit_memory(megabytes: int) -> None:
    """Cap the address space so that a pathological expression fails with MemoryError."""
    try:
        import resource

        limit = megabytes * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):  # the limit is not allowed here
        pass


def _die_with_parent(parent_pid: int) -> None:
    """Linux: get SIGKILL when the server dies, so that a worker stuck in a huge computation
    never outlives a parent that was killed without closing the pool."""
    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux
        return
    if os.getppid() != parent_pid:  # the server died before prctl took effect
        os._exit(0)


def _make_checker(rule: str):
    if rule == "satori-release":
        return _release_checker()
    from functools import lru_cache

    from math_verify import LatexExtractionConfig, parse, verify

    logging.disable(logging.CRITICAL)  # math-verify warns that its own timeouts are off
    extraction = [LatexExtractionConfig(boxed_match_priority=0)]

    def parse_answer(answer: str) -> list:
        return parse("\\boxed{" + answer + "}", extraction_config=extraction, parsing_timeout=None)

    parse_gold = lru_cache(maxsize=4096)(parse_answer)  # golds repeat across a rollout group

    def equal(gold: str, predicted: str) -> bool:
        gold_parsed = parse_gold(gold)
        predicted_parsed = parse_answer(predicted)
        if not gold_parsed or not predicted_parsed:
            return False
        return bool(verify(gold_parsed, predicted_parsed, timeout_seconds=None))

    return equal


def _release_checker():
    """Satori's release's MATH checker (``release_rule.py`` beside this file, loaded by path)."""
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "release_rule.py")
    spec = importlib.util.spec_from_file_location("satori_release_rule", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return lambda gold, predicted: module.math_equal(predicted, gold)


def _serve_jobs(conn: socket.socket, equal) -> None:
    """Worker loop: answer jobs until the parent closes the socket."""
    reader, writer = conn.makefile("rb"), conn.makefile("wb")
    for line in reader:
        job_id, gold, predicted = json.loads(line)
        try:
            reply = [job_id, equal(gold, predicted), None]
        except Exception as error:  # noqa: BLE001 - any failure is a wrong answer, reported
            reply = [job_id, False, f"{type(error).__name__}: {str(error)[:200]}"]
        writer.write((json.dumps(reply) + "\n").encode())
        writer.flush()


def main() -> None:
    if sys.path and os.path.basename(sys.path[0].rstrip(os.sep)) == "satori_env":
        sys.path.pop(0)  # run as a script: satori_env's own modules must not shadow top-level names
    control = socket.socket(fileno=int(sys.argv[1]))
    if int(sys.argv[2]) > 0:
        _limit_memory(int(sys.argv[2]))
    equal = _make_checker(sys.argv[3] if len(sys.argv) > 3 else "math-verify")
    for gold, predicted in _WARM_UP:
        equal(gold, predicted)
    gc.freeze()  # keep the warm heap out of the workers' collections: fewer copy-on-write faults
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # forked workers are reaped automatically
    control.sendall(b"ready")
    while control.recv(1):  # one byte per worker wanted; b"" when the parent is gone
        parent_end, worker_end = socket.socketpair()
        server_pid = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker
            _die_with_parent(server_pid)
            control.close()
            parent_end.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            try:
                _serve_jobs(worker_end, equal)
            finally:
                os._exit(0)
        worker_end.close()
        socket.send_fds(control, [pid.to_bytes(8, "little")], [parent_end.fileno()])
        parent_end.close()
    os._exit(0)  # the parent is gone; skip interpreter teardown, and the workers die with us


if __name__ == "__main__":
    main()
