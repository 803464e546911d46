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
from bloodcell.settings import Settings
from bloodcell.storage import LocalStorage
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


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    url: str
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started: float = field(default=0.0)

    def start(self) -> None:
        # its own process group: a gunicorn worker orphaned by a killed master can be
        # reaped with it, instead of holding the port while the replacement starts
        self.process = subprocess.Popen(self.argv, env=self.env, start_new_session=True)
        self.started = time.monotonic()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def answering(self) -> bool:
        try:
            requests.get(self.url, timeout=1)
        except requests.RequestException:
            return False
        return True

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
        "functions_framework",
        f"--target={name}",
        f"--source={function_source(name)}",
        "--signature-type=cloudevent",
        "--host=127.0.0.1",
        f"--port={port}",
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
            argv = [sys.executable, "-m", "bloodcell.cli", "webapp"]
            self.children.append(Child("webapp", argv, web_env, f"http://{host}:{port}/"))
        self.web_url = f"http://{host}:{port}/" if web else None
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
        if removed := self.storage.sweep_temporary():  # before any writer starts
            log.info("removed %d temporary file(s) left by an earlier run", removed)
        for child in self.children:
            child.start()
        deadline = time.monotonic() + timeout
        for child in self.children:
            while not child.answering():
                if not child.alive():
                    raise RuntimeError(
                        f"{child.name} exited with code {child.process and child.process.poll()}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{child.name} did not answer within {timeout:.0f}s")
                time.sleep(0.1)
        ready = threading.Event()
        threading.Thread(
            target=self.source.run, args=(self.stop_event, ready, self.announcer), name="eventsource"
        ).start()
        threading.Thread(target=self._supervise, name="supervisor", daemon=True).start()
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
