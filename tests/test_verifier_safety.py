"""Hostile inputs: every check comes back wrong within the time limit and nothing is executed."""

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time

import pytest

from benchmarks.verifier_cases import CANARY, HOSTILE
from satori_env import Verifier

TIMEOUT = 1.0


def _dead(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return any(line.startswith("State:") and "Z" in line for line in status)  # a zombie
    except FileNotFoundError:
        return True


@pytest.fixture(autouse=True)
def no_canary():
    if os.path.exists(CANARY):
        os.remove(CANARY)
    yield
    assert not os.path.exists(CANARY), "an answer was executed as code"


def test_hostile_batch_is_bounded_and_wrong():
    with Verifier(timeout=TIMEOUT, workers=2) as verifier:
        start = time.monotonic()
        verdicts = verifier.check_batch([(c.completion, c.gold) for c in HOSTILE])
        elapsed = time.monotonic() - start
    assert [v.correct for v in verdicts] == [False] * len(HOSTILE)
    assert max(v.seconds for v in verdicts) <= TIMEOUT + 0.5
    timeouts = sum(v.status == "timeout" for v in verdicts)
    assert timeouts >= 4  # the huge powers, the factorial and the deep nesting cannot finish
    assert verifier.stats.timeouts == timeouts
    # 2 workers share the timeouts; fixed costs (server start, extraction of megabyte inputs) on top
    assert elapsed <= timeouts * TIMEOUT / 2 + 4.0


def test_sequential_hostile_calls_each_return_in_time():
    with Verifier(timeout=TIMEOUT, workers=2).start() as verifier:
        for case in HOSTILE[:4]:
            start = time.monotonic()
            verdict = verifier.check(case.completion, case.gold)
            assert time.monotonic() - start <= 1.5
            assert verdict.status == "timeout" and not verdict.correct
        assert verifier.verify("\\boxed{2(x+1)}", "2x+2")  # the pool still works


def test_a_configurable_timeout_holds():
    with Verifier(timeout=0.3, workers=1).start() as verifier:
        start = time.monotonic()
        verdict = verifier.check("\\boxed{9^{9^{9^{9}}}}", "1")
        assert verdict.status == "timeout" and time.monotonic() - start < 0.8


def test_a_dead_worker_is_replaced(verifier):
    for worker in verifier._pool:  # kill the idle workers behind the pool's back
        os.kill(worker.pid, signal.SIGKILL)
    time.sleep(0.1)
    assert verifier.verify_batch([("\\boxed{2x+2}", "2(x+1)")] * 4) == [True] * 4


@pytest.mark.skipif(not os.path.exists("/proc/self/limits"), reason="reads Linux /proc")
def test_workers_run_under_the_memory_cap():
    """A pathological expression must fail with MemoryError, not swap the machine."""
    with Verifier(workers=1, worker_memory_mb=1536).start() as verifier:
        with open(f"/proc/{verifier._pool[0].pid}/limits") as limits:
            line = next(line for line in limits if line.startswith("Max address space"))
    assert line.split()[3] == str(1536 * 1024 * 1024)


def _verify_in_child(queue):
    from satori_env import verify

    queue.put(verify("\\boxed{2(x+1)}", "2x+2"))


def test_works_inside_a_daemonic_process():
    """Gymnasium's AsyncVectorEnv runs envs in daemonic processes, which cannot fork children
    with multiprocessing; the verifier's subprocess-started server still works there."""
    context = mp.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_verify_in_child, args=(queue,), daemon=True)
    child.start()
    assert queue.get(timeout=60) is True
    child.join(10)


def test_a_forked_child_gets_its_own_pool(verifier):
    verifier.check("\\boxed{2(x+1)}", "2x+2")  # the parent's pool exists
    pid = os.fork()
    if pid == 0:
        ok = verifier.verify("\\boxed{2(x+1)}", "2x+2")
        verifier.close()
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert verifier.verify("\\boxed{4(x+1)}", "4x+4")  # the parent's pool is untouched


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads Linux /proc")
def test_close_stops_every_process():
    verifier = Verifier(workers=2)
    verifier.check("\\boxed{2(x+1)}", "y")
    pids = [w.pid for w in verifier._pool] + [verifier._server.proc.pid]
    verifier.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not all(_dead(pid) for pid in pids):
        time.sleep(0.05)
    assert all(_dead(pid) for pid in pids)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads Linux /proc")
def test_no_worker_outlives_a_killed_parent():
    """A training run killed with SIGKILL mid-check must not leave a worker spinning forever."""
    script = (
        "import sys; from satori_env import Verifier; v = Verifier(workers=2).start(); "
        "print(v._server.proc.pid, *[w.pid for w in v._pool], flush=True); "
        "v.check(r'\\boxed{2^{10^{10^{10}}}}', '5', timeout=1000)"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    pids = [int(pid) for pid in parent.stdout.readline().split()]
    time.sleep(0.5)  # the check is running
    assert len(pids) == 3 and not any(_dead(pid) for pid in pids)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not all(_dead(pid) for pid in pids):
        time.sleep(0.05)
    assert all(_dead(pid) for pid in pids)


def test_a_broken_install_is_a_clear_error(tmp_path, monkeypatch):
    (tmp_path / "math_verify.py").write_text("raise ImportError('math_verify is broken here')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="(?s)verifier server failed to start.*math_verify is broken here"):
        Verifier(workers=1).start()
