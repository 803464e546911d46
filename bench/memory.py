"""5. Memory of each function server, read from /proc while the end-to-end run goes on.

The function servers are the children of the ``bloodcell serve`` process (each a
functions-framework/gunicorn arbiter, with its worker as a grandchild). For each
we keep VmHWM, the kernel's own peak resident set, of every process in its tree,
and sample PSS (proportional set size: shared pages split between the processes
that map them) so the tree's real footprint is not double-counted after the fork.
"""

from __future__ import annotations

import threading
from pathlib import Path


def _status(pid: int) -> dict[str, int]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "PPid"):
                out[key] = int(value.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return out


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _status(int(entry.name)).get("PPid") == pid:
            found.append(int(entry.name))
    return found


def tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children(current))
    return out


def _function_of(pid: int) -> str | None:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    for arg in argv:
        if arg.startswith(b"--target="):
            return arg.split(b"=", 1)[1].decode()
    return None


class Sampler:
    """Samples the function servers under ``serve_pid`` until stopped."""

    def __init__(self, serve_pid: int, interval: float = 0.25) -> None:
        self.serve_pid = serve_pid
        self.interval = interval
        self.hwm_kb: dict[str, dict[int, int]] = {}
        self.peak_pss_kb: dict[str, int] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="memory-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def sample(self) -> None:
        pss: dict[str, int] = {}
        for child in children(self.serve_pid):
            function = _function_of(child)
            if function is None:
                continue
            for pid in tree(child):
                hwm = _status(pid).get("VmHWM", 0)
                per = self.hwm_kb.setdefault(function, {})
                per[pid] = max(per.get(pid, 0), hwm)
                pss[function] = pss.get(function, 0) + _pss_kb(pid)
        for function, kb in pss.items():
            self.peak_pss_kb[function] = max(self.peak_pss_kb.get(function, 0), kb)
        self.samples += 1

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> dict[str, object]:
        self._stop.set()
        self._thread.join()
        self.sample()  # VmHWM only grows: one last read catches the peak
        out: dict[str, object] = {}
        for function, per in sorted(self.hwm_kb.items()):
            values = sorted(per.values(), reverse=True)
            out[function] = {
                "peak_rss_mb": round(values[0] / 1024, 1),  # the largest process (the serving worker)
                "processes": len(values),
                "per_process_peak_rss_mb": [round(v / 1024, 1) for v in values],
                "sum_of_peaks_mb": round(sum(values) / 1024, 1),
                "peak_pss_mb": round(self.peak_pss_kb.get(function, 0) / 1024, 1),
            }
        out["samples"] = self.samples
        out["method"] = (
            "VmHWM from /proc/<pid>/status of each function server's process tree "
            f"(children of bloodcell serve); PSS sampled every {self.interval:.2f}s"
        )
        return out


def cpu_seconds(serve_pid: int) -> dict[str, float]:
    """CPU time (user + system) used so far by the serve process and each function server's tree."""
    import os

    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for pid in tree(serve_pid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        who = _function_of(pid) or "serve (event source)"
        out[who] = out.get(who, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out
