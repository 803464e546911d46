"""The local stack: both functions as real servers, the event source, and the web app.

``bloodcell serve`` supervises its children: a function server that dies is
started again (events wait in the source's retry queue meanwhile), and Ctrl-C
stops everything cleanly.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from bloodcell.errors import ConfigurationError
from bloodcell.eventsource import EventSource
from bloodcell.retention import start_sweeper
from bloodcell.settings import Settings
from bloodcell.storage import LocalStorage, open_archive
from bloodcell.watch import folder_watcher

log = logging.getLogger(__name__)
_PACKAGE = Path(__file__).resolve().parent


def function_source(name: str) -> Path:
    """The function's main.py: inside the wheel, or in the source checkout."""
    for candidate in (
        _PACKAGE / "_functions" / name / "main.py",
        _PACKAGE.parents[1] / "functions" / name / "main.py",
    ):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"cannot find functions/{name}/main.py")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class StackError(RuntimeError):
    """The stack cannot start (port taken, a child exited or never answered): said once, exit non-zero."""


def check_port_free(host: str, port: int) -> None:
    """Fail at once, naming the port, rather than start a web app that can never bind it."""
    with socket.socket() as sock:
        # as uvicorn binds: a closed connection lingering in TIME_WAIT does not count
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise StackError(
                f"port {port} on {host} is already in use ({exc.strerror}); stop what holds it "
                "or choose another with --port"
            ) from exc


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    url: str
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started: float = field(default=0.0)
    # expected body of GET url: any answer would do for a port only we know, but the
    # web app's port may be held by another program that answers HTTP too
    token: str | None = None

    def start(self) -> None:
        # its own process group: a gunicorn worker orphaned by a killed master can be
        # reaped with it, instead of holding the port while the replacement starts
        self.process = subprocess.Popen(self.argv, env=self.env, start_new_session=True)
        self.started = time.monotonic()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def answering(self) -> bool:
        try:
            response = requests.get(self.url, timeout=1)
        except requests.RequestException:
            return False
        return self.token is None or (response.status_code == 200 and response.text == self.token)

    def _signal_group(self, signum: int) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signum)

    def reap_group(self) -> None:
        """After the leader died: end whatever it left behind in its group."""
        self._signal_group(signal.SIGKILL)

    def stop(self, grace: float = 5.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is not None:
            self.reap_group()
            return
        self._signal_group(signal.SIGTERM)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self.process.wait()


def _function_child(name: str, port: int, env: dict[str, str]) -> Child:
    argv = [
        sys.executable,
        "-m",
        "bloodcell.cli",
        "function",
        f"--target={name}",
        f"--source={function_source(name)}",
        "--host=127.0.0.1",
        f"--port={port}",
        f"--parent-pid={os.getpid()}",
    ]
    return Child(name, argv, env | {"PORT": str(port)}, f"http://127.0.0.1:{port}/")


class LocalStack:
    def __init__(self, data_dir: Path, port: int = 8080, web: bool = True, host: str = "127.0.0.1") -> None:
        self.data_dir = data_dir.resolve()
        env = dict(os.environ)
        env.update(BLOODCELL_STORAGE="local", BLOODCELL_DATA_DIR=str(self.data_dir))
        env.setdefault("ARCHIVE_STORAGE", "local")
        self.settings = Settings.from_env(env)
        self.env = env
        self.children = [
            _function_child("preprocess", free_port(), env),
            _function_child("predict", free_port(), env),
        ]
        if web:
            if importlib.util.find_spec("nicegui") is None:
                raise ConfigurationError(
                    "the web app needs the 'web' extra: pip install 'bloodcell[web]', "
                    "or run the pipeline alone with --no-web"
                )
            web_env = env | {"PORT": str(port), "HOST": host}
            token = secrets.token_urlsafe(16)
            argv = [sys.executable, "-m", "bloodcell.cli", "webapp", f"--parent-pid={os.getpid()}"]
            argv.append(f"--health-token={token}")
            self.children.append(Child("webapp", argv, web_env, f"http://{host}:{port}/healthz", token=token))
        self.web_url = f"http://{host}:{port}/" if web else None
        self.host, self.port = host, port
        self.stop_event = threading.Event()
        storage = LocalStorage(self.data_dir)
        self.storage = storage
        s = self.settings
        routes = {s.upload_bucket: self.children[0].url, s.tensor_bucket: self.children[1].url}
        self.source = EventSource.for_settings(s, storage, routes)
        # inotify announces a file once its writer closed it: no listing, no settle poll
        self.announcer = folder_watcher(
            storage, {b: self.data_dir / b for b in (s.upload_bucket, s.tensor_bucket)}
        )
        local_archive = (s.archive_bucket,) if s.archive_storage == "local" else ()  # else it is in S3
        # the dead-letter bucket is made by its first record: an empty one would say nothing
        for bucket in (s.upload_bucket, s.tensor_bucket, s.result_bucket, *local_archive):
            (self.data_dir / bucket).mkdir(parents=True, exist_ok=True)

    def start(self, timeout: float = 120.0) -> None:
        if self.web_url is not None:
            check_port_free(self.host, self.port)
        if removed := self.storage.sweep_temporary():  # before any writer starts
            log.info("removed %d temporary file(s) left by an earlier run", removed)
        for child in self.children:
            child.start()
        deadline = time.monotonic() + timeout
        for child in self.children:
            while not child.answering():
                if not child.alive():
                    raise StackError(
                        f"{child.name} exited with code {child.process and child.process.poll()}"
                        + (
                            f" (is port {self.port} on {self.host} in use? its log above says)"
                            if child.token
                            else ""
                        )
                    )
                if time.monotonic() > deadline:
                    raise StackError(f"{child.name} did not answer within {timeout:.0f}s")
                time.sleep(0.1)
        ready = threading.Event()
        threading.Thread(
            target=self.source.run, args=(self.stop_event, ready, self.announcer), name="eventsource"
        ).start()
        threading.Thread(target=self._supervise, name="supervisor", daemon=True).start()
        archive = self.storage if self.settings.archive_storage == "local" else open_archive(self.settings)
        start_sweeper(self.settings, self.storage, archive, self.stop_event)  # *_RETENTION_DAYS
        from bloodcell.calibration.qcdaily import start_daily_qc

        start_daily_qc(self.settings, self.storage, self.stop_event)  # QC_INTERVAL_HOURS
        ready.wait()

    def _supervise(self) -> None:
        while not self.stop_event.wait(0.5):
            for child in self.children:
                if child.alive():
                    continue
                code = child.process.poll() if child.process else None
                # back off a crash loop, but bring a killed server back within seconds
                if time.monotonic() - child.started < min(30.0, 2.0**child.restarts):
                    continue
                child.reap_group()
                child.restarts += 1
                log.warning(
                    "%s exited (code %s); restarting it (restart %d)", child.name, code, child.restarts
                )
                child.start()

    def stop(self) -> None:
        self.stop_event.set()
        for child in self.children:
            child.stop()
