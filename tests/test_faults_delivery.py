"""Faults in delivery: the same CloudEvent several times, poison events, transient read errors.

Real functions-framework servers and the real event source over HTTP; every test ends on one
result per upload (docs/delivery.md states the semantics these tests establish).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from bloodcell import handlers
from bloodcell import pipeline as pipeline_module
from bloodcell.events import binary_http, gcs_event, structured_http
from bloodcell.eventsource import EventSource
from bloodcell.pipeline import Pipeline
from bloodcell.settings import Settings
from bloodcell.storage import LocalStorage, ObjectInfo
from bloodcell.watch import folder_watcher
from tests.support.common import REPO, free_port
from tests.support.stack import (
    check_end_state,
    clean_env,
    function_server,
    image_pool,
    stop_process_group,
    wait_listening,
    wait_results,
)
from tests.support.storage import FlakyStorage

# ---- duplicate delivery: real function servers, the same CloudEvent several times ----


@pytest.fixture(scope="module")
def function_servers(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[dict[str, Any]]:
    """preprocess and predict as functions-framework subprocesses on one folder-bucket root."""
    root = tmp_path_factory.mktemp("dup")
    data = root / "data"
    env = clean_env(
        model_dir, BLOODCELL_STORAGE="local", BLOODCELL_DATA_DIR=str(data), ARCHIVE_STORAGE="local"
    )
    servers = {}
    for name in ("preprocess", "predict"):
        port = free_port()
        servers[name] = (function_server(name, port, env, root / f"{name}.log"), f"http://127.0.0.1:{port}/")
    try:
        for process, url in servers.values():
            wait_listening(int(url.rsplit(":", 1)[1].strip("/")), process)
        yield {"data": data, "urls": {k: v[1] for k, v in servers.items()}, "uploads": set()}
    finally:
        for process, _ in servers.values():
            stop_process_group(process)


def _post(url: str, event: Any, structured: bool = False) -> int:
    """One CloudEvent over real HTTP: binary mode (percent-encoded headers) or structured."""
    headers, body = structured_http(event) if structured else binary_http(event)
    return requests.post(url, data=body, headers=headers, timeout=60).status_code


def _with_data(event: Any, data: dict[str, Any]) -> Any:
    from cloudevents.http import CloudEvent

    return CloudEvent(event.get_attributes(), data)


def _deliver(url: str, info: ObjectInfo, copies: int, mode: str) -> list[int]:
    """The same event `copies` times: one after the other, all at once, or with fresh ids."""
    event = gcs_event(info)
    if mode == "concurrent":
        barrier = threading.Barrier(copies)

        def one(i: int) -> int:
            barrier.wait(timeout=10)
            return _post(url, event, structured=i % 2 == 1)

        with ThreadPoolExecutor(copies) as pool:
            return list(pool.map(one, range(copies)))
    codes = []
    for _ in range(copies):
        if mode == "new-ids":  # what a source re-emitting after a crash sends
            event = gcs_event(info)
        codes.append(_post(url, event))
    return codes


def _archive_files(data: Path, name: str) -> list[Path]:
    wanted = (name, name + ".json")
    return sorted(p for p in (data / "archive").rglob("*") if p.is_file() and p.name in wanted)


@pytest.mark.parametrize(
    ("copies", "mode"), [(1, "same-id"), (2, "same-id"), (5, "same-id"), (5, "new-ids"), (8, "concurrent")]
)
def test_duplicate_delivery_gives_one_result_and_one_archive_copy(
    function_servers: dict[str, Any], cell_jpeg: bytes, copies: int, mode: str
) -> None:
    data: Path = function_servers["data"]
    urls = function_servers["urls"]
    storage = LocalStorage(data)
    name = f"dup-{mode}-{copies}.jpg"
    upload = storage.write("uploads", name, cell_jpeg, content_type="image/jpeg")
    function_servers["uploads"].add(name)

    assert set(_deliver(urls["preprocess"], upload, copies, mode)) == {200}
    tensor = storage.stat("tensors", name + ".npy")
    assert tensor is not None and tensor.metadata["source-generation"] == upload.generation
    assert set(_deliver(urls["predict"], tensor, copies, mode)) == {200}
    result = storage.stat("results", name + ".json")
    archived = {p: p.stat().st_mtime_ns for p in _archive_files(data, name)}
    # a late redelivery of both events, after the work is done, changes nothing
    assert set(_deliver(urls["preprocess"], upload, copies, mode)) == {200}
    assert set(_deliver(urls["predict"], tensor, copies, mode)) == {200}

    assert result is not None
    assert storage.stat("results", name + ".json") == result, "a duplicate rewrote the result"
    assert {p: p.stat().st_mtime_ns for p in _archive_files(data, name)} == archived
    if mode != "concurrent":
        assert storage.stat("tensors", name + ".npy") == tensor, "a duplicate rewrote the tensor"
    assert len(archived) == 2, f"one image and one JSON copy, got {sorted(archived)}"
    state = check_end_state(data, function_servers["uploads"])
    assert state.results[name]["status"] == "classified"


def test_poison_events_are_acknowledged_not_retried_forever(function_servers: dict[str, Any]) -> None:
    """An event naming no object, or an object that is gone, is answered 2xx: no retry loop."""
    urls = function_servers["urls"]
    event = gcs_event(ObjectInfo("uploads", "x.jpg", "1", 1, datetime.now(UTC)))
    for url in urls.values():
        assert _post(url, _with_data(event, {"kind": "storage#object"})) == 200  # no bucket/name
        for bucket, name in (("uploads", "never-was.jpg"), ("tensors", "never-was.jpg.npy")):
            data = {"bucket": bucket, "name": name, "generation": "7"}
            assert _post(url, _with_data(event, data)) == 200
    assert not (function_servers["data"] / "results" / "never-was.jpg.json").exists()


# ---- transient storage faults on reads: in-process, through the real event source over HTTP ----


def _serve_app(app: Any) -> tuple[str, Any]:
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}/", server


def test_transient_read_errors_end_in_a_result_not_a_rejection(
    settings: Settings, datasets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import functions_framework

    monkeypatch.setenv("FUNCTION_TARGET", "")  # create_app sets it; don't leak it to later tests
    local = LocalStorage(settings.data_dir)
    flaky = FlakyStorage(local)
    monkeypatch.setattr(pipeline_module, "open_storage", lambda _settings: flaky)
    handlers.pipeline.cache_clear()
    servers = []
    stop = threading.Event()
    source_thread = None
    try:
        urls = {}
        for name in ("preprocess", "predict"):
            app = functions_framework.create_app(
                target=name, source=str(REPO / "functions" / name / "main.py"), signature_type="cloudevent"
            )
            urls[name], server = _serve_app(app)
            servers.append(server)
        plain = Pipeline(settings, local)
        source = EventSource(
            local,
            {settings.upload_bucket: urls["preprocess"], settings.tensor_bucket: urls["predict"]},
            concurrency=2,
            is_done={settings.upload_bucket: plain.upload_done, settings.tensor_bucket: plain.tensor_done},
            backoff=(0.05, 0.5),
            timeout=30,
        )
        roots = {b: settings.data_dir / b for b in (settings.upload_bucket, settings.tensor_bucket)}
        source_thread = threading.Thread(
            target=source.run, args=(stop, None, folder_watcher(local, roots)), daemon=True
        )
        source_thread.start()
        names = {f"flaky-{i}.jpg": p for i, p in enumerate(image_pool(datasets, 4, "kaggle"))}
        for name, path in names.items():
            local.write("uploads", name, path.read_bytes(), content_type="image/jpeg")

        wait_results(settings.data_dir, names, timeout=60)
    finally:
        stop.set()
        if source_thread:
            source_thread.join(timeout=10)
        for server in servers:
            server.shutdown()
        handlers.pipeline.cache_clear()

    state = check_end_state(settings.data_dir, names)
    assert {r["status"] for r in state.results.values()} == {"classified"}
    for name in names:  # the faults really happened on every read path
        assert flaky.calls[("read", "uploads", name)] > 2
        assert flaky.calls[("read", "tensors", name + ".npy")] > 2
    assert flaky.injected >= 4 * len(names)
