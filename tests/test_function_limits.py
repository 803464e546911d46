"""The function servers' limits, against a real `bloodcell function` server (functions-framework gunicorn)."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cloudevents.conversion import to_binary

from bloodcell.storage import LocalStorage
from tests.support.common import REPO, free_port, gcs_cloudevent, image_bytes
from tests.support.stack import clean_env, function_server, wait_listening

THREADS = 4


@pytest.fixture
def preprocess_server(tmp_path: Path, model_dir: Path) -> Iterator[tuple[str, LocalStorage]]:
    data_dir = tmp_path / "data"
    storage = LocalStorage(data_dir)
    port = free_port()
    env = clean_env(
        model_dir,
        BLOODCELL_STORAGE="local",
        BLOODCELL_DATA_DIR=str(data_dir),
        FUNCTION_THREADS=str(THREADS),
        FUNCTION_READ_TIMEOUT_SECONDS="2",
    )
    process = function_server("preprocess", port, env, tmp_path / "preprocess.log")
    try:
        wait_listening(port, process)
        yield f"http://127.0.0.1:{port}/", storage
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def _upload_event(storage: LocalStorage, name: str) -> tuple[dict[str, str], bytes]:
    info = storage.write("uploads", name, image_bytes((320, 240), "PNG"), content_type="image/png")
    headers, body = to_binary(gcs_cloudevent(info))
    return dict(headers), body


def test_a_5_mb_post_gets_413_before_it_is_read(preprocess_server: tuple[str, LocalStorage]) -> None:
    url, storage = preprocess_server
    headers, _ = _upload_event(storage, "cell.png")

    response = requests.post(url, data=b"{" + b" " * (5 * 1024 * 1024) + b"}", headers=headers, timeout=30)

    assert response.status_code == 413


def test_a_chunked_body_over_the_limit_gets_413(preprocess_server: tuple[str, LocalStorage]) -> None:
    url, storage = preprocess_server
    headers, _ = _upload_event(storage, "cell.png")

    def chunks() -> Iterator[bytes]:
        for _ in range(80):  # 5 MB, without a Content-Length
            yield b" " * 65536

    response = requests.post(url, data=chunks(), headers=headers, timeout=30)

    assert response.status_code == 413


def _slow_loris(port: int, stop: threading.Event, opened: list[socket.socket]) -> None:
    """Start a request and never finish it: one header byte at a time."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    opened.append(sock)
    try:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
        while not stop.wait(0.5):
            sock.sendall(b"X")
    except OSError:
        return  # the server closed it: what the limit is for


def test_slow_clients_do_not_stop_a_real_event(preprocess_server: tuple[str, LocalStorage]) -> None:
    url, storage = preprocess_server
    port = int(url.rsplit(":", 1)[1].strip("/"))
    stop, opened = threading.Event(), list[socket.socket]()
    lorises = [threading.Thread(target=_slow_loris, args=(port, stop, opened)) for _ in range(20)]
    for thread in lorises:
        thread.start()
    time.sleep(1.0)  # every slow client has started its request (5 per thread)
    headers, body = _upload_event(storage, "cell.png")

    try:
        response = requests.post(url, data=body, headers=headers, timeout=60)
    finally:
        stop.set()
        for thread in lorises:
            thread.join(timeout=10)
        for sock in opened:
            sock.close()

    assert response.status_code < 300
    tensor = storage.stat("tensors", "cell.png.npy")
    assert tensor is not None


def test_the_stack_and_the_images_use_the_bounded_server() -> None:
    """Local stack, Knative and Cloud Run run the same command, so the same limits apply."""
    for name in ("preprocess", "predict"):
        dockerfile = (REPO / "functions" / name / "Dockerfile").read_text()
        assert "bloodcell function" in dockerfile or "bloodcell.cli function" in dockerfile, name
