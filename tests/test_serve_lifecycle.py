"""`bloodcell serve` cleans up after itself and says at once when it cannot start."""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.common import free_port
from tests.support.stack import alive, clean_env, cmdline, descendants, kill_all, wait_gone


@pytest.fixture
def squatter() -> Iterator[int]:
    """Another program holding a port and answering HTTP 200 to anything."""

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"someone else")

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_a_taken_port_stops_serve_at_once_naming_the_port(
    tmp_path: Path, model_dir: Path, squatter: int
) -> None:
    argv = [
        sys.executable,
        "-m",
        "bloodcell.cli",
        "serve",
        "--data-dir",
        str(tmp_path),
        "--port",
        str(squatter),
    ]

    proc = subprocess.run(argv, env=clean_env(model_dir), capture_output=True, text=True, timeout=5)

    assert proc.returncode != 0
    assert f"port {squatter}" in proc.stderr
    assert "ready" not in proc.stdout


def test_sigkill_of_serve_leaves_no_child_alive(tmp_path: Path, model_dir: Path) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "bloodcell.cli", "serve", "--data-dir", str(tmp_path), "--port", str(port)]
    with (tmp_path / "serve.log").open("w") as log:
        serve = subprocess.Popen(
            argv,
            env=clean_env(model_dir),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,
        )
    children: list[int] = []
    try:
        assert serve.stdout is not None
        line = serve.stdout.readline()  # serve prints nothing before it is ready
        assert line.startswith("bloodcell ready"), (tmp_path / "serve.log").read_text()[-3000:]
        children = descendants(serve.pid)
        names = " ".join(cmdline(pid) for pid in children)
        assert "--target=preprocess" in names and "--target=predict" in names and " webapp" in names

        os.kill(serve.pid, signal.SIGKILL)
        serve.wait(timeout=10)

        wait_gone(children, timeout=30)  # walks /proc: each pid gone, or a zombie nobody runs
    finally:
        kill_all([pid for pid in children if alive(pid)])
        if serve.poll() is None:
            serve.kill()
            serve.wait(timeout=10)
        if serve.stdout:
            serve.stdout.close()


def test_ready_needs_this_starts_token_not_any_answer(squatter: int) -> None:
    from bloodcell.serve import Child

    url = f"http://127.0.0.1:{squatter}/healthz"

    assert Child("x", [], {}, url).answering()  # a function server: any answer on a port only we know
    assert not Child("webapp", [], {}, url, token="this-start").answering()


def test_serve_beyond_loopback_without_accounts_says_why(tmp_path: Path, model_dir: Path) -> None:
    argv = [sys.executable, "-m", "bloodcell.cli", "serve", "--data-dir", str(tmp_path), "--host", "0.0.0.0"]
    argv += ["--port", str(free_port())]

    proc = subprocess.run(
        argv, env=clean_env(model_dir, STORAGE_SECRET="s" * 32), capture_output=True, text=True, timeout=30
    )

    assert proc.returncode == 2
    assert "no accounts" in proc.stderr and "bloodcell user add" in proc.stderr
