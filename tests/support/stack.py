"""Helpers for real-process tests: run `bloodcell serve` (or single function servers), break
things with real signals, wait for results, and check the end state of the folder buckets.

Everything here has a timeout; nothing waits forever. Process trees are found by reading
/proc (no psutil needed): `bloodcell serve` -> one functions-framework (gunicorn) master per
function -> its worker process.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bloodcell import names
from bloodcell import settings as settings_module
from bloodcell.storage import LocalStorage
from tests.support.common import REPO, free_port

BUCKETS = ("uploads", "tensors", "results", "archive")


def clean_env(model_dir: Path, **overrides: str) -> dict[str, str]:
    """The test process's environment minus every bloodcell setting, plus the given ones.

    pytest's and NiceGUI's own variables are dropped too: a child web app that sees
    PYTEST_CURRENT_TEST takes itself for NiceGUI's in-process test harness.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in settings_module.ENV_VARS and not k.startswith(("PYTEST_", "NICEGUI_"))
    }
    env.update(MODEL_DIR=str(model_dir), LOG_LEVEL="INFO", PYTHONUNBUFFERED="1")
    env.update(overrides)
    return env


# ---- /proc ----


def parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name may hold spaces and parentheses: fields start after the last ')'
    return int(stat.rsplit(")", 1)[1].split()[1])


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            parent_pid = parent(int(entry))
            if parent_pid is not None:
                children.setdefault(parent_pid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def kill_all(pids: Iterable[int], sig: int = signal.SIGKILL) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def wait_gone(pids: Iterable[int], timeout: float = 10.0) -> None:
    pids = list(pids)
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids):
        if time.monotonic() > deadline:
            raise AssertionError(f"processes still alive after {timeout}s: {[p for p in pids if alive(p)]}")
        time.sleep(0.05)


# ---- the local stack ----


@dataclass
class Stack:
    """`bloodcell serve --no-web` in its own session, logging to a file."""

    data_dir: Path
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[str] | None = None
    ready_line: str = ""
    _log: Any = field(default=None, repr=False)

    def start(self, timeout: float = 90.0) -> Stack:
        self._log = self.log_path.open("a")
        argv = [sys.executable, "-m", "bloodcell.cli", "serve", "--data-dir", str(self.data_dir), "--no-web"]
        self.process = subprocess.Popen(
            argv, env=self.env, stdout=subprocess.PIPE, stderr=self._log, text=True, start_new_session=True
        )
        lines: list[str] = []
        stdout = self.process.stdout
        assert stdout is not None
        reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not lines or not lines[0].startswith("bloodcell ready"):
            self.kill()
            raise AssertionError(f"bloodcell serve not ready within {timeout}s; log:\n{self.log_tail()}")
        self.ready_line = lines[0]
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def tree(self) -> list[int]:
        return [self.pid, *descendants(self.pid)] if self.process else []

    def function_pids(self, name: str) -> list[int]:
        """The function server's master and workers (gunicorn forks keep the master's argv)."""
        return [p for p in descendants(self.pid) if f"--target={name} " in cmdline(p) + " "]

    def wait_function(self, name: str, timeout: float = 60.0, exclude: Iterable[int] = ()) -> list[int]:
        """Wait until a (new) server for the function runs master + worker and is listening."""
        exclude = set(exclude)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = [p for p in self.function_pids(name) if p not in exclude]
            if len(pids) >= 2 and self._listening(pids):
                return pids
            time.sleep(0.05)
        raise AssertionError(f"no new {name} server within {timeout}s; log:\n{self.log_tail()}")

    @staticmethod
    def _listening(pids: list[int]) -> bool:
        for pid in pids:
            match = re.search(r"--port=(\d+)", cmdline(pid))
            if match:
                try:
                    with socket.create_connection(("127.0.0.1", int(match.group(1))), timeout=0.5):
                        return True
                except OSError:
                    return False
        return False

    def kill(self) -> list[int]:
        """SIGKILL the whole tree at once: serve, function masters, workers."""
        if self.process is None:
            return []
        pids = self.tree()
        kill_all(pids)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        wait_gone(pids)
        self._close()
        return pids

    def stop(self, timeout: float = 20.0) -> int | None:
        """Ctrl-C-like stop (SIGTERM); whatever is left after the timeout is killed."""
        if self.process is None:
            return None
        pids = self.tree()
        code = None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self.process.wait(timeout=timeout)
        kill_all([p for p in pids if alive(p)])
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(timeout=10)
        self._close()
        return code

    def _close(self) -> None:
        if self.process and self.process.stdout:
            self.process.stdout.close()
        if self._log:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def function_server(name: str, port: int, env: Mapping[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """One function as a real functions-framework server, as `bloodcell serve` starts it."""
    argv = [
        sys.executable,
        "-m",
        "bloodcell.cli",
        "function",
        f"--target={name}",
        f"--source={REPO / 'functions' / name / 'main.py'}",
        "--host=127.0.0.1",
        f"--port={port}",
    ]
    with log_path.open("a") as log:
        return subprocess.Popen(
            argv, env=dict(env) | {"PORT": str(port)}, stdout=log, stderr=log, start_new_session=True
        )


def wait_listening(port: int, process: subprocess.Popen[Any] | None = None, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"server for port {port} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listening on {port} after {timeout}s")


def stop_process_group(process: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=timeout)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    if process.poll() is None:
        process.wait(timeout=timeout)


def answers(url: str) -> bool:
    """True once ``url`` answers 200 (a health route); connection errors count as not yet."""
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


@contextlib.contextmanager
def webapp_process(
    tmp_path: Path, model_dir: Path, host: str, **env: str
) -> Iterator[tuple[str, subprocess.Popen[Any]]]:
    """`bloodcell webapp` alone on folder buckets under tmp_path/data, once its /healthz answers."""
    port = free_port()
    values = clean_env(
        model_dir,
        BLOODCELL_STORAGE="local",
        BLOODCELL_DATA_DIR=str(tmp_path / "data"),
        HOST=host,
        PORT=str(port),
        **env,
    )
    with (tmp_path / "webapp.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bloodcell.cli", "webapp"],
            env=values,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    try:
        wait_listening(port, process, timeout=90)
        base = f"http://127.0.0.1:{port}"
        wait_for("the web app's health route", lambda: answers(base + "/healthz"), timeout=60)
        yield base, process
    finally:
        stop_process_group(process)


# ---- input ----


def image_pool(datasets: Path, count: int, kind: str = "bccd") -> list[Path]:
    """Real smears: BCCD (640x480) or the Kaggle test set (320x240), reused in a cycle."""
    if kind == "bccd":
        pool = sorted((datasets / "bccd" / "JPEGImages").glob("*.jpg"))
    else:
        pool = sorted((datasets / "kaggle-blood-cells" / "TEST").glob("*/*.jpeg"))
    assert pool, f"no {kind} images under {datasets}"
    return [pool[i % len(pool)] for i in range(count)]


def drop(data_dir: Path, files: Mapping[str, bytes | Path], staging: Path) -> None:
    """Drop files into uploads/ all at once: written beside, then renamed into place."""
    staging.mkdir(parents=True, exist_ok=True)
    staged = []
    for name, content in files.items():
        path = staging / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copyfile(content, path)
        else:
            path.write_bytes(content)
        staged.append((path, data_dir / "uploads" / name))
    for src, dst in staged:
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)


# ---- waiting and end state ----


def read_results(data_dir: Path) -> dict[str, dict[str, Any]]:
    """Every result JSON by upload name; a file that does not parse fails the test (half-written).

    A name that could not be processed is answered under ``_rejected/<sha256>.json``: its
    upload name is the one the result names (``names.result_name`` is checked to match).
    """
    found = {}
    root = data_dir / "results"
    for path in root.rglob("*.json"):
        rel = path.relative_to(root).as_posix()
        try:
            result = json.loads(path.read_bytes())
        except FileNotFoundError:
            continue  # replaced between listing and reading
        except ValueError as exc:
            raise AssertionError(f"half-written result under its final name: {path}") from exc
        name = rel[: -len(".json")]
        if rel.startswith(names.REJECTED_FOLDER + "/"):
            name = result["source"]["name"]
            assert names.result_name(name) == rel or "\ufffd" in name, f"{rel} does not belong to {name!r}"
        found[name] = result
    return found


def wait_for(
    what: str,
    check: Callable[[], Any],
    timeout: float,
    interval: float = 0.2,
    log: Callable[[], str] | None = None,
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = f"\nlog tail:\n{log()}" if log else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{tail}")
        time.sleep(interval)


def wait_results(
    data_dir: Path,
    names: Iterable[str],
    timeout: float,
    final: Callable[[str, dict[str, Any]], bool] | None = None,
    log: Callable[[], str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Wait until every upload has a final result (default: archive settled and current generation)."""
    names = set(names)
    storage = LocalStorage(data_dir)

    def is_final(name: str, result: dict[str, Any]) -> bool:
        if final is not None:
            return final(name, result)
        info = storage.stat("uploads", name)
        return (
            info is not None
            and result["source"]["generation"] == info.generation
            and result["archive"]["status"] != "pending"
        )

    def done() -> dict[str, dict[str, Any]] | None:
        found = read_results(data_dir)
        if names <= found.keys() and all(is_final(n, found[n]) for n in names):
            return found
        return None

    def progress() -> str:
        found = read_results(data_dir)
        return f"{len(names & found.keys())}/{len(names)} results" + (f"\n{log()}" if log else "")

    found: dict[str, dict[str, Any]] = wait_for(f"{len(names)} final results", done, timeout, log=progress)
    return found


def archive_objects(data_dir: Path) -> list[str]:
    root = data_dir / "archive"
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@dataclass
class EndState:
    results: dict[str, dict[str, Any]]
    archive: list[str]


def check_end_state(
    data_dir: Path,
    uploads: Iterable[str],
    *,
    archive_keys: list[str] | None = None,
    extra_archive: Iterable[str] = (),
    extra_results: Iterable[str] = (),
    extra_tensors: Iterable[str] = (),
) -> EndState:
    """The guarantees every fault test ends on.

    - the set of result names is exactly the set of uploads (plus ``extra_results``);
    - each result speaks of the upload's current generation and is final (not pending);
    - one archive image and one archive JSON per classified upload, at the location the
      result names, and nothing else in the archive (``extra_archive``: older generations);
    - nothing half-written or stray: every result parses, every bucket holds only the
      objects the pipeline names, and temporary files exist only under .tmp/.
    ``archive_keys`` replaces the folder listing when the archive is an S3 bucket.
    """
    uploads = set(uploads)
    storage = LocalStorage(data_dir)
    listed_uploads = {info.name for info in storage.list("uploads")}
    assert listed_uploads == uploads, f"uploads differ: {sorted(listed_uploads ^ uploads)[:10]}"

    found = read_results(data_dir)
    expected_results = uploads | set(extra_results)
    assert set(found) == expected_results, (
        f"missing results: {sorted(expected_results - set(found))[:10]}; "
        f"unexpected: {sorted(set(found) - expected_results)[:10]}"
    )

    expected_archive: list[str] = []
    for name in uploads:
        result = found[name]
        info = storage.stat("uploads", name)
        assert info is not None
        assert result["source"]["name"] == name
        assert result["source"]["generation"] == info.generation, f"{name}: result is for an old version"
        assert result["status"] in ("classified", "rejected"), result
        if result["status"] == "rejected":
            assert result["reason"], f"{name}: rejected without a reason"
            assert result["archive"]["status"] == "none"
            continue
        assert result["label"] in ("EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL")
        assert result["archive"]["status"] == "stored", f"{name}: archive {result['archive']}"
        location = result["archive"]["location"]
        assert location.endswith(f"/{result['label']}/{info.generation}/{name}"), location
        expected_archive += [location, location + ".json"]

    archive = sorted(archive_keys) if archive_keys is not None else archive_objects(data_dir)
    counts = Counter(archive)
    assert not [k for k, c in counts.items() if c > 1], "duplicate archive keys"
    expected = sorted([*expected_archive, *extra_archive])
    assert archive == expected, (
        f"archive differs: missing {sorted(set(expected) - set(archive))[:6]}, "
        f"unexpected {sorted(set(archive) - set(expected))[:6]}"
    )
    # one copy per upload version: no (name, generation) archived under two dates or labels
    versions = Counter("/".join(k.split("/")[2:]) for k in archive if not k.endswith(".json"))
    assert not [v for v, c in versions.items() if c > 1], "an upload version was archived twice"

    _check_no_strays(data_dir, uploads, found, set(extra_tensors))
    return EndState(found, archive)


def _check_no_strays(
    data_dir: Path, uploads: set[str], results: Mapping[str, dict[str, Any]], extra_tensors: set[str]
) -> None:
    allowed_top = {*BUCKETS, "dead-letters", "models", ".meta", ".tmp"}  # models: the registry
    top = {p.name for p in data_dir.iterdir()}
    assert top <= allowed_top, f"unexpected entries in the data dir: {top - allowed_top}"
    tensors_root = data_dir / "tensors"
    tensors = {p.relative_to(tensors_root).as_posix() for p in tensors_root.rglob("*") if p.is_file()}
    tensor_sources = {t[: -len(".npy")] for t in tensors - extra_tensors}
    assert all(t.endswith(".npy") for t in tensors), f"stray files among tensors: {tensors}"
    orphans = sorted(tensor_sources - set(results))
    assert not orphans, f"tensors without a result: {orphans[:5]}"
    for path in tensors_root.rglob("*.npy"):
        assert path.read_bytes()[:6] == b"\x93NUMPY", f"half-written tensor {path}"
    results_root = data_dir / "results"
    result_files = {p.relative_to(results_root).as_posix() for p in results_root.rglob("*") if p.is_file()}
    assert result_files == {names.result_name(n) for n in results}, "stray files among results"
    for bucket in BUCKETS[1:]:  # uploads hold what people dropped, hidden files included
        for path in (data_dir / bucket).rglob("*"):
            assert not path.name.startswith("."), f"hidden or temporary file inside a bucket: {path}"
    for path in (data_dir / ".meta").rglob("*"):
        if path.is_file() and ".locks" not in path.relative_to(data_dir).parts:  # writer locks
            assert path.suffix == ".json", f"stray file among sidecars: {path}"
            json.loads(path.read_bytes())  # sidecars are written atomically too


BATCH = 200  # big enough that a kill always lands mid-batch


def count_entries(folder: Path) -> int:
    """Entries in a folder; 0 while it does not exist yet."""
    try:
        return sum(1 for _ in folder.iterdir())
    except FileNotFoundError:
        return 0


def smear_batch(datasets: Path, count: int = BATCH, prefix: str = "slide") -> dict[str, Path]:
    """Real BCCD smears (640x480) under distinct names."""
    return {f"{prefix}-{i:04d}.jpg": path for i, path in enumerate(image_pool(datasets, count))}
