"""Killed processes: a function server SIGKILLed mid-batch, the whole stack SIGKILLed and restarted.

`bloodcell serve` in a subprocess (tests/support/stack.py); every test ends on ``check_end_state``:
exactly one result per upload, one archive copy per upload version, nothing half-written.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.stack import (
    BATCH,
    Stack,
    alive,
    check_end_state,
    count_entries,
    descendants,
    drop,
    kill_all,
    parent,
    smear_batch,
    wait_for,
    wait_results,
)

# ---- a function server SIGKILLed mid-batch, kept down 10 s, brought back by the supervisor ----


def _kill_server_for(stack: Stack, name: str, seconds: float) -> tuple[set[int], int]:
    """SIGKILL the function's server (master and workers), then every instance the supervisor
    starts again within ``seconds``; returns the killed pids and how many instances that was."""
    killed: set[int] = set()
    instances = 0
    deadline = time.monotonic() + seconds
    while True:
        if any(p not in killed for p in stack.function_pids(name)):
            # frozen before killed, as above: a restarted master cannot fork a worker that escapes
            pids = [p for p in _freeze(stack, name) if p not in killed]
            instances += len(set(pids) & _direct_children(stack.pid))
            kill_all(pids)
            killed.update(pids)
        if time.monotonic() > deadline:
            return killed, instances
        time.sleep(0.02)


def _state(pid: int) -> str:
    """The process's state letter ("" once it is gone): T is stopped, Z a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def _freeze(stack: Stack, name: str, timeout: float = 30.0) -> list[int]:
    """SIGSTOP the function's server, master and workers, until every one of them is stopped
    and no new one appeared: the count taken then is final, however loaded the machine.

    A stopped master forks no worker, and a process stops only on its way back from a system
    call, so a rename under way is finished (and counted) before the state reads T; a worker
    forked meanwhile is found by the next scan, since the stopped master is its parent.
    """
    stopped: set[int] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = set(stack.function_pids(name)) - stopped
        kill_all(new, signal.SIGSTOP)
        stopped |= new
        if not new and all(_state(p) in ("T", "t", "Z", "X", "") for p in stopped):
            return sorted(stopped)
        time.sleep(0.01)  # polling the kernel's process states, not waiting for a race to settle
    raise AssertionError(f"{name} did not stop within {timeout}s: {[(p, _state(p)) for p in stopped]}")


def _direct_children(pid: int) -> set[int]:
    return {p for p in descendants(pid) if parent(p) == pid}


@pytest.mark.slow
@pytest.mark.parametrize("function", ["predict", "preprocess"])
def test_function_server_killed_mid_batch_loses_nothing(
    make_stack: Any, tmp_path: Path, datasets: Path, function: str
) -> None:
    stack = make_stack()
    data = stack.data_dir
    watched = data / ("results" if function == "predict" else "tensors")
    files = smear_batch(datasets)
    started = time.monotonic()
    drop(data, files, tmp_path / "staging")

    # the bounds below are for a machine under heavy load (CI with stress-ng): never reached otherwise
    wait_for("the batch to be under way", lambda: count_entries(watched) >= 20, 180, 0.005)
    # frozen first, counted, then killed: a SIGKILL lands asynchronously, and a worker may
    # finish a write between kill() and the count (CI once saw `21 == 20` under load)
    first = _freeze(stack, function)
    at_kill = count_entries(watched)
    kill_all(first)
    assert at_kill < BATCH, "the batch finished before the kill: make it bigger"
    killed, instances = _kill_server_for(stack, function, seconds=10.0)
    killed |= set(first)
    # while it was down, its stage wrote nothing: the events waited for it
    assert count_entries(watched) == at_kill
    new = stack.wait_function(function, timeout=180, exclude=killed)
    assert not any(alive(p) for p in killed)
    wait_results(data, files, timeout=300, log=stack.log_tail)
    elapsed = time.monotonic() - started

    check_end_state(data, files)
    log = stack.log_path.read_text()
    restarts = re.findall(rf"{function} exited \(code -9\); restarting it", log)
    assert len(restarts) >= 1, "the supervisor never restarted the server"
    assert set(new).isdisjoint(killed)
    print(
        f"\n{function}: killed at {at_kill}/{BATCH} {watched.name}, and {instances} restarted instance(s) "
        f"within 10 s; all {BATCH} results after {elapsed:.1f}s"
    )


def test_kill_helper_finds_master_and_worker(make_stack: Any) -> None:
    """The real-process tests kill what they think they kill: gunicorn master + worker per function."""
    stack = make_stack()
    for name in ("preprocess", "predict"):
        pids = stack.function_pids(name)
        assert len(pids) == 2, pids
        assert len(set(pids) & _direct_children(stack.pid)) == 1


# ---- the whole stack SIGKILLed mid-batch, then started again ----


@pytest.mark.slow
def test_whole_stack_killed_mid_batch_is_finished_by_reconciliation(
    make_stack: Any, tmp_path: Path, datasets: Path
) -> None:
    stack = make_stack()
    data = stack.data_dir
    files = smear_batch(datasets)
    drop(data, files, tmp_path / "staging")
    wait_for("the batch to be under way", lambda: count_entries(data / "results") >= 20, 60, 0.01)

    pids = stack.kill()
    at_kill = count_entries(data / "results")
    assert at_kill < BATCH, "the batch finished before the kill: make it bigger"
    assert not any(alive(p) for p in pids)
    # more uploads arrive while nothing runs
    late = smear_batch(datasets, 20, prefix="late")
    drop(data, late, tmp_path / "staging")
    assert count_entries(data / "results") == at_kill

    again = make_stack(data)
    wait_results(data, files | late, timeout=120, log=again.log_tail)
    check_end_state(data, files | late)
    reconciled = re.findall(r"event source reconciled: (\d+) object", again.log_path.read_text())
    assert reconciled and int(reconciled[-1]) >= len(late)
    print(f"\nwhole stack killed at {at_kill}/{BATCH}; reconciliation re-emitted {reconciled[-1]} object(s)")
