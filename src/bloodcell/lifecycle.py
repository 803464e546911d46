"""Children of ``bloodcell serve`` that die with it, however it dies.

``serve`` starts each child in a session of its own (so a stuck gunicorn worker
can be reaped with its master), which also means nothing ends the children when
``serve`` itself is SIGKILLed. Each child therefore asks the kernel for a signal
when its parent dies (Linux ``PR_SET_PDEATHSIG``); where that is unavailable a
watchdog thread polls the parent's pid. SIGTERM, not SIGKILL: gunicorn and
uvicorn then stop their own workers on the way out.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading

log = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1


def _prctl_pdeathsig(signum: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent_pid: int, interval: float) -> None:
    while os.getppid() == parent_pid:
        threading.Event().wait(interval)
    log.warning("parent %d is gone: stopping", parent_pid)
    os.kill(os.getpid(), signal.SIGTERM)


def die_with_parent(parent_pid: int, interval: float = 1.0) -> None:
    """End this process (SIGTERM) when ``parent_pid``, its parent, exits."""
    if not _prctl_pdeathsig(signal.SIGTERM):
        threading.Thread(target=_watch, args=(parent_pid, interval), name="parent-watch", daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        log.warning("parent %d exited before this process started: stopping", parent_pid)
        raise SystemExit(1)
