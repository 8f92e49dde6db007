"""Faults around the verifier's worker pool: interrupted calls, killed workers, absurd timeouts.

The promise under test: a verdict is always the verdict of the job that asked for it, whatever
happened to an earlier call or to a worker.
"""

import math
import os
import random
import signal
import subprocess
import threading
import time

import pytest

from satori_env import Verifier


def _fraction_cases(tag: int, count: int) -> list[tuple[str, str, bool]]:
    """``count`` (completion, gold, truth) triples that go to math-verify (multiples of x + 1), half right,
    distinct for every ``tag`` so that no verdict comes from the cache."""
    cases = []
    for i in range(count):
        a, b = 1000 * tag + i + 1, 7 * (1000 * tag + i) + 3
        right = i % 2 == 0
        predicted = f"\\frac{{{2 * a}(x+1)}}{{{2 * b}}}" if right else f"\\frac{{{a + 1}(x+1)}}{{{b}}}"
        cases.append((f"so \\boxed{{{predicted}}}", f"\\frac{{{a}(x+1)}}{{{b}}}", right))
    return cases


@pytest.fixture
def ctrl_c():
    """``ctrl_c(delay)`` sends SIGINT to the main thread after ``delay`` seconds; it raises
    KeyboardInterrupt only while armed (``ctrl_c.disarm()`` when the call under test returned),
    so that a late signal can never land outside the code under test."""
    armed = threading.Event()

    def handler(signum, frame):
        if armed.is_set():
            armed.clear()
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    timers: list[threading.Timer] = []

    def arm(delay: float) -> None:
        armed.set()
        timer = threading.Timer(delay, signal.pthread_kill, args=(threading.main_thread().ident, signal.SIGINT))
        timers.append(timer)
        timer.start()

    arm.disarm = armed.clear
    yield arm
    armed.clear()
    for timer in timers:
        timer.join()
    signal.signal(signal.SIGINT, previous)


def test_interrupted_calls_never_shift_later_verdicts(ctrl_c):
    """Ctrl-C at random points of single and batch calls, then every verdict is checked."""
    rng = random.Random(0)
    interrupted, all_cases = 0, []
    with Verifier(workers=2).start() as verifier:
        for trial in range(40):
            cases = _fraction_cases(trial, 1 if trial % 4 == 0 else 12)
            all_cases += cases
            verifier.start()  # refill what an interrupt killed, so that the next one lands mid-check
            try:
                ctrl_c(rng.uniform(0.0, 0.03))
                verdicts = verifier.check_batch([(c, g) for c, g, _ in cases])
                ctrl_c.disarm()
            except KeyboardInterrupt:
                interrupted += 1
                continue
            finally:
                ctrl_c.disarm()  # another failure must not leave the handler armed
            assert [v.correct for v in verdicts] == [truth for _, _, truth in cases]
        assert interrupted >= 10, "too few calls were interrupted for the test to mean anything"
        # every pair again, in shuffled batches (cached verdicts included), then a fresh verifier
        rng.shuffle(all_cases)
        for start in range(0, len(all_cases), 25):
            batch = all_cases[start : start + 25]
            verdicts = verifier.check_batch([(c, g) for c, g, _ in batch])
            assert [v.correct for v in verdicts] == [truth for _, _, truth in batch]
            assert all(v.status == "ok" for v in verdicts)
    with Verifier(workers=2) as fresh:
        assert fresh.verify_batch([(c, g) for c, g, _ in all_cases]) == [truth for _, _, truth in all_cases]


def test_an_exception_inside_the_wait_loop_leaves_no_stale_job(monkeypatch):
    """Any exception escaping the pool (not only KeyboardInterrupt) kills the busy workers."""
    with Verifier(workers=2).start() as verifier:
        calls = {"n": 0}
        real_select = __import__("selectors").DefaultSelector.select

        def failing_select(self, timeout=None):
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("injected")
            return real_select(self, timeout)

        monkeypatch.setattr("selectors.DefaultSelector.select", failing_select)
        with pytest.raises(RuntimeError, match="injected"):
            verifier.check_batch([(c, g) for c, g, _ in _fraction_cases(1, 6)])
        cases = _fraction_cases(2, 6)
        assert verifier.verify_batch([(c, g) for c, g, _ in cases]) == [truth for _, _, truth in cases]


@pytest.mark.parametrize("timeout", [math.inf, 1e7, 2.2e6, math.nan, -1.0])
def test_absurd_timeouts_are_refused_up_front(timeout):
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds, at most"):
        Verifier(timeout=timeout)
    with Verifier(workers=1) as verifier:
        with pytest.raises(ValueError, match="at most"):
            verifier.check("\\boxed{2(x+1)}", "2x+2", timeout=timeout)


def test_the_largest_timeout_works():
    with Verifier(workers=1, timeout=1e6) as verifier:
        assert verifier.verify("\\boxed{2(x+1)}", "2x+2")


def test_a_job_sent_just_after_an_idle_worker_died_is_not_counted_wrong():
    with Verifier(workers=2).start() as verifier:
        for round_ in range(5):
            for worker in verifier._pool:  # no pause: the next job may reach a dying worker
                os.kill(worker.pid, signal.SIGKILL)
            cases = _fraction_cases(round_, 4)
            verdicts = verifier.check_batch([(c, g) for c, g, _ in cases])
            assert [(v.correct, v.status) for v in verdicts] == [(truth, "ok") for _, _, truth in cases]


def _kill_busy_workers(verifier: Verifier, times: int, killed: list[int]) -> None:
    deadline = time.monotonic() + 10
    while len(killed) < times and time.monotonic() < deadline:
        for worker in list(verifier._pool):
            if worker.job is not None and worker.pid not in killed:
                os.kill(worker.pid, signal.SIGKILL)
                killed.append(worker.pid)
        time.sleep(0.005)


@pytest.mark.parametrize("kills, status", [(1, "timeout"), (2, "error")])
def test_a_worker_killed_mid_job_retries_once_within_the_deadline(kills, status):
    """Killed once, the job runs again (here it then times out, within its first deadline);
    killed twice, it is an error. Either way it is wrong, and never raised."""
    killed: list[int] = []
    with Verifier(workers=1, timeout=2.0).start() as verifier:
        killer = threading.Thread(target=_kill_busy_workers, args=(verifier, kills, killed))
        killer.start()
        start = time.monotonic()
        verdict = verifier.check("\\boxed{9^{9^{9^{9}}}}", "1")
        killer.join()
        assert (verdict.correct, verdict.status) == (False, status)
        assert len(killed) == kills
        assert time.monotonic() - start <= 2.0 + 0.5  # the retry does not restart the clock
        assert verifier.verify("\\boxed{2(x+1)}", "2x+2")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads Linux /proc")
def test_an_interrupted_start_leaves_no_process_behind(ctrl_c):
    verifier = Verifier(workers=1)
    started = []
    real_popen = subprocess.Popen

    def recording_popen(*args, **kwargs):
        started.append(real_popen(*args, **kwargs))
        return started[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(subprocess, "Popen", recording_popen)
        try:
            ctrl_c(0.2)  # the server needs about 1.5 s to warm up
            with pytest.raises(KeyboardInterrupt):
                verifier.start()
        finally:
            ctrl_c.disarm()
    assert len(started) == 1 and started[0].poll() is not None  # stopped and reaped
    with verifier:
        assert verifier.verify("\\boxed{2(x+1)}", "2x+2")
