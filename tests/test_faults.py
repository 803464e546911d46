"""Nothing lost: break the pipeline on purpose and check that every upload still gets one result.

Real processes, real signals and moto's S3 over HTTP: `bloodcell serve` in a subprocess
(tests/support/stack.py), its functions-framework servers SIGKILLed mid-batch, the whole stack killed
and started again, the archive endpoint stopped, poison files and overwrites dropped among good
ones, and the same CloudEvent POSTed several times to real function servers. Every test ends
on ``check_end_state``: the set of result names is exactly the set of uploads, one archive
copy per upload version and no duplicates, and nothing half-written under a final name.
The delivery semantics these tests establish are documented in docs/delivery.md.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import struct
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

from bloodcell import handlers
from bloodcell import pipeline as pipeline_module
from bloodcell.errors import TransientError
from bloodcell.events import binary_http, gcs_event, structured_http
from bloodcell.eventsource import EventSource
from bloodcell.pipeline import Pipeline
from bloodcell.settings import Settings
from bloodcell.storage import LocalStorage, ObjectInfo
from bloodcell.watch import folder_watcher
from tests.support.common import REPO, free_port
from tests.support.stack import (
    Stack,
    alive,
    check_end_state,
    clean_env,
    descendants,
    drop,
    function_server,
    image_pool,
    kill_all,
    parent,
    read_results,
    stop_process_group,
    wait_for,
    wait_listening,
    wait_results,
)

BATCH = 200


@pytest.fixture(scope="module")
def stack_model(model_dir: Path) -> Path:
    if not (model_dir / "model.tflite").is_file():
        pytest.fail(f"no model at {model_dir}: train it, or set BLOODCELL_TEST_MODEL_DIR")
    return model_dir


@pytest.fixture
def make_stack(tmp_path: Path, stack_model: Path) -> Iterator[Any]:
    """Start `bloodcell serve` on tmp_path/data; every stack is stopped (or killed) at the end."""
    stacks: list[Stack] = []

    def start(data_dir: Path | None = None, **env: str) -> Stack:
        data = data_dir or tmp_path / "data"
        stack = Stack(data, clean_env(stack_model, **env), tmp_path / "serve.log")
        stacks.append(stack)
        return stack.start()

    yield start
    for stack in stacks:
        stack.stop()


def _count(folder: Path) -> int:
    try:
        return sum(1 for _ in folder.iterdir())
    except FileNotFoundError:
        return 0


def _batch(datasets: Path, count: int = BATCH, prefix: str = "slide") -> dict[str, Path]:
    """Real BCCD smears (640x480) under distinct names."""
    return {f"{prefix}-{i:04d}.jpg": path for i, path in enumerate(image_pool(datasets, count))}


# ---- duplicate delivery: real function servers, the same CloudEvent several times ----


@pytest.fixture(scope="module")
def function_servers(tmp_path_factory: pytest.TempPathFactory, stack_model: Path) -> Iterator[dict[str, Any]]:
    """preprocess and predict as functions-framework subprocesses on one folder-bucket root."""
    root = tmp_path_factory.mktemp("dup")
    data = root / "data"
    env = clean_env(
        stack_model, BLOODCELL_STORAGE="local", BLOODCELL_DATA_DIR=str(data), ARCHIVE_STORAGE="local"
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


class FlakyStorage:
    """LocalStorage whose reads and stats fail twice per object before they succeed."""

    def __init__(self, inner: LocalStorage, failures: int = 2) -> None:
        self.inner = inner
        self.failures = failures
        self.calls: Counter[tuple[str, str, str]] = Counter()
        self.injected = 0
        self._lock = threading.Lock()

    def _maybe_fail(self, op: str, bucket: str, name: str) -> None:
        with self._lock:
            self.calls[(op, bucket, name)] += 1
            if self.calls[(op, bucket, name)] > self.failures:
                return
            self.injected += 1
        raise TransientError(f"injected {op} failure on {bucket}/{name}")

    def read(self, bucket: str, name: str, **kwargs: Any) -> tuple[bytes, ObjectInfo]:
        self._maybe_fail("read", bucket, name)
        return self.inner.read(bucket, name, **kwargs)

    def stat(self, bucket: str, name: str) -> ObjectInfo | None:
        self._maybe_fail("stat", bucket, name)
        return self.inner.stat(bucket, name)

    def write(self, bucket: str, name: str, data: bytes, **kwargs: Any) -> ObjectInfo:
        return self.inner.write(bucket, name, data, **kwargs)

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.list(bucket, prefix)


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


# ---- a function server SIGKILLed mid-batch, kept down 10 s, brought back by the supervisor ----


def _kill_server_for(stack: Stack, name: str, seconds: float) -> tuple[set[int], int]:
    """SIGKILL the function's server (master and workers), then every instance the supervisor
    starts again within ``seconds``; returns the killed pids and how many instances that was."""
    killed: set[int] = set()
    instances = 0
    deadline = time.monotonic() + seconds
    while True:
        pids = [p for p in stack.function_pids(name) if p not in killed]
        if pids:
            instances += len(set(pids) & _direct_children(stack.pid))
            kill_all(pids)
            killed.update(pids)
        if time.monotonic() > deadline:
            return killed, instances
        time.sleep(0.02)


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
    files = _batch(datasets)
    started = time.monotonic()
    drop(data, files, tmp_path / "staging")

    wait_for("the batch to be under way", lambda: _count(watched) >= 20, 60, 0.005)
    first = stack.function_pids(function)
    kill_all(first)
    at_kill = _count(watched)
    assert at_kill < BATCH, "the batch finished before the kill: make it bigger"
    killed, instances = _kill_server_for(stack, function, seconds=10.0)
    killed |= set(first)
    # while it was down, its stage wrote nothing: the events waited for it
    assert _count(watched) == at_kill
    new = stack.wait_function(function, timeout=60, exclude=killed)
    assert not any(alive(p) for p in killed)
    wait_results(data, files, timeout=120, log=stack.log_tail)
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
    files = _batch(datasets)
    drop(data, files, tmp_path / "staging")
    wait_for("the batch to be under way", lambda: _count(data / "results") >= 20, 60, 0.01)

    pids = stack.kill()
    at_kill = _count(data / "results")
    assert at_kill < BATCH, "the batch finished before the kill: make it bigger"
    assert not any(alive(p) for p in pids)
    # more uploads arrive while nothing runs
    late = _batch(datasets, 20, prefix="late")
    drop(data, late, tmp_path / "staging")
    assert _count(data / "results") == at_kill

    again = make_stack(data)
    wait_results(data, files | late, timeout=120, log=again.log_tail)
    check_end_state(data, files | late)
    reconciled = re.findall(r"event source reconciled: (\d+) object", again.log_path.read_text())
    assert reconciled and int(reconciled[-1]) >= len(late)
    print(f"\nwhole stack killed at {at_kill}/{BATCH}; reconciliation re-emitted {reconciled[-1]} object(s)")


# ---- the S3 archive endpoint down during a batch ----


class S3Endpoint:
    """moto's S3 over HTTP on a fixed port that can go down and come back (state kept in-process)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.server: Any = None

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server._server.server_close()  # stop() leaves the socket listening: refuse instead
            self.server = None


@pytest.fixture
def s3_endpoint() -> Iterator[S3Endpoint]:
    for key, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        os.environ.setdefault(key, value)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    endpoint = S3Endpoint(free_port())
    endpoint.start()
    yield endpoint
    endpoint.stop()


def _s3_keys(endpoint: S3Endpoint, bucket: str) -> list[str]:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint.url, region_name="us-east-1")
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys += [item["Key"] for item in page.get("Contents", [])]
    return keys


@pytest.mark.slow
def test_archive_endpoint_down_mid_batch_keeps_results_and_completes_archive(
    make_stack: Any, tmp_path: Path, datasets: Path, s3_endpoint: S3Endpoint
) -> None:
    import boto3

    bucket = "bloodcell-archive"
    boto3.client("s3", endpoint_url=s3_endpoint.url, region_name="us-east-1").create_bucket(Bucket=bucket)
    stack = make_stack(
        ARCHIVE_STORAGE="s3",
        ARCHIVE_BUCKET=bucket,
        ARCHIVE_S3_ENDPOINT_URL=s3_endpoint.url,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    data = stack.data_dir
    files = _batch(datasets, 100, prefix="arch")
    drop(data, files, tmp_path / "staging")
    wait_for("the batch to be under way", lambda: _count(data / "results") >= 10, 60, 0.01)

    s3_endpoint.stop()
    down_at = _count(data / "results")
    assert down_at < len(files)

    def pending() -> list[str]:
        return [n for n, r in read_results(data).items() if r["archive"]["status"] == "pending"]

    # results keep being written while the archive is down, saying the copy is pending
    wait_for(
        "every upload to have a result while the archive is down",
        lambda: len(read_results(data)) == len(files),
        120,
        0.2,
        log=stack.log_tail,
    )
    during = read_results(data)
    waiting = pending()
    assert len(waiting) >= len(files) - down_at - 4  # at most the in-flight ones got through
    assert {r["status"] for r in during.values()} == {"classified"}
    for name in waiting:
        assert during[name]["archive"] == {"status": "pending", "location": None}

    s3_endpoint.start()
    wait_results(data, files, timeout=120, log=stack.log_tail)
    keys = _s3_keys(s3_endpoint, bucket)
    state = check_end_state(data, files, archive_keys=keys)
    assert len(keys) == 2 * len(files)
    assert {r["archive"]["status"] for r in state.results.values()} == {"stored"}
    assert not list((data / "archive").rglob("*.jpg")), "archive copies went to the local folder"
    print(
        f"\narchive down at {down_at}/{len(files)}: {len(waiting)} result(s) published as pending, "
        "all archived once after it came back"
    )


# ---- poison input among good uploads ----


def _png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares a huge image (a decompression bomb)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 100, 150)).save(buffer, "PNG")
    return buffer.getvalue()


def test_poison_input_is_rejected_and_does_not_block_the_queue(
    make_stack: Any, tmp_path: Path, datasets: Path, cell_jpeg: bytes
) -> None:
    stack = make_stack()
    data = stack.data_dir
    before = {n: stack.function_pids(n) for n in ("preprocess", "predict")}
    poison: dict[str, bytes | Path] = {
        "empty.jpg": b"",
        "notes.jpg": b"this is a text file with a .jpg name\n" * 20,
        "truncated.jpg": cell_jpeg[: len(cell_jpeg) // 3],
        "tiny.png": _png((8, 8)),
        "sliver.png": _png((3000, 40)),
        "bomb.png": _png_declaring(40000, 40000),
        "garbage.tif": os.urandom(4096),
    }
    good = _batch(datasets, 40, prefix="good")
    drop(data, poison, tmp_path / "staging")  # poison first: the good ones queue behind it
    started = time.monotonic()
    drop(data, good, tmp_path / "staging")
    # and a bad tensor straight into the tensor bucket: predict's own poison
    (data / "tensors" / "stray.npy").write_bytes(b"\x93NUMPY not really")

    wait_results(data, good, timeout=60, log=stack.log_tail)
    elapsed = time.monotonic() - started
    found = wait_results(data, set(poison), timeout=30, final=lambda n, r: True)
    stray_ignored = r'object="tensors/stray\.npy" .* outcome=ignored'
    wait_for("the stray tensor's answer", lambda: re.search(stray_ignored, stack.log_path.read_text()), 30)

    state = check_end_state(data, {*good, *poison}, extra_tensors={"stray.npy"})
    for name in poison:
        result = found[name]
        assert result["status"] == "rejected", (name, result)
        assert result["reason"] and result["rejected_by"] == "preprocess"
    assert "decompression bomb" in found["bomb.png"]["reason"]
    assert "stray" not in found  # a tensor that proves no source never makes a result
    assert {state.results[n]["status"] for n in good} == {"classified"}
    # rejected once and acknowledged: no retry loop, no crash, no restart
    log = stack.log_path.read_text()
    for name in poison:
        assert len(re.findall(rf'object="uploads/{re.escape(name)}" .* outcome=rejected', log)) == 1, name
    # the stray tensor proves no source: ignored once, and it invents no result
    assert len(re.findall(stray_ignored, log)) == 1
    assert "restarting it" not in log
    assert {n: stack.function_pids(n) for n in before} == before
    assert elapsed < 60
    print(f"\npoison: {len(poison)} rejected with reasons; {len(good)} good ones done in {elapsed:.1f}s")


# ---- overwrites: a new generation of the same name ----


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_overwrite_is_classified_again_and_replaces_the_result(
    make_stack: Any, tmp_path: Path, datasets: Path
) -> None:
    stack = make_stack()
    data = stack.data_dir
    storage = LocalStorage(data)
    pool = image_pool(datasets, 3)
    path = data / "uploads" / "cell.jpg"
    archived: list[str] = []

    def settled(content: bytes) -> dict[str, Any]:
        found = wait_results(data, {"cell.jpg"}, timeout=30, log=stack.log_tail)["cell.jpg"]
        info = storage.stat("uploads", "cell.jpg")
        assert info is not None and found["source"]["generation"] == info.generation
        assert found["source"]["sha256"] == _sha(content)
        return found

    # v1 dropped, v2 renamed over it, v3 rewritten in place (same inode), v4 not an image
    versions = [p.read_bytes() for p in pool]
    drop(data, {"cell.jpg": versions[0]}, tmp_path / "staging")
    first = settled(versions[0])
    drop(data, {"cell.jpg": versions[1]}, tmp_path / "staging")
    second = settled(versions[1])
    with path.open("r+b") as handle:
        handle.truncate(0)
        handle.write(versions[2])
    third = settled(versions[2])
    for result in (first, second, third):
        assert result["status"] == "classified"
        archived += [result["archive"]["location"], result["archive"]["location"] + ".json"]
    assert len({r["source"]["generation"] for r in (first, second, third)}) == 3
    drop(data, {"cell.jpg": b"no longer an image"}, tmp_path / "staging")
    fourth = settled(b"no longer an image")
    assert fourth["status"] == "rejected"

    # one result, for the newest version; the archive keeps every classified version
    check_end_state(data, {"cell.jpg"}, extra_archive=archived)

    # rapid overwrites: the second version lands while the first is still being processed
    names = [f"rapid-{i:02d}.jpg" for i in range(20)]
    pool = image_pool(datasets, 40)
    old: dict[str, str] = {}
    for i, name in enumerate(names):
        drop(data, {name: pool[2 * i]}, tmp_path / "staging")
        old[name] = storage.stat("uploads", name).generation  # type: ignore[union-attr]
    for i, name in enumerate(names):
        drop(data, {name: pool[2 * i + 1]}, tmp_path / "staging")
    results = wait_results(data, names, timeout=60, log=stack.log_tail)
    for i, name in enumerate(names):
        assert results[name]["source"]["sha256"] == _sha(pool[2 * i + 1].read_bytes()), name
    # an old version may or may not have been archived before it was superseded; never twice
    old_copies = [k for k in _archive_listing(data) if any(f"/{old[n]}/{n}" in k for n in names)]
    check_end_state(data, {"cell.jpg", *names}, extra_archive=archived + old_copies)


def _archive_listing(data: Path) -> list[str]:
    root = data / "archive"
    return [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]


@pytest.mark.parametrize("stage", ["preprocess", "predict"])
def test_overwrite_while_the_old_version_is_in_flight_leaves_the_newest_result(
    settings: Settings, datasets: Path, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    """v1 is still being preprocessed (or classified) when v2 replaces it and goes all the way
    through: v1's late output must not overwrite v2's tensor or result."""
    from bloodcell.events import ObjectRef
    from bloodcell.model import load_classifier

    local = LocalStorage(settings.data_dir)
    entered, release = threading.Event(), threading.Event()

    def hold_old(call: Any) -> Any:
        def gated(*args: Any) -> Any:
            if threading.current_thread().name == "old-version":
                entered.set()
                assert release.wait(20)
            return call(*args)

        return gated

    real = load_classifier(settings.model_dir, 1)  # type: ignore[arg-type]

    class Gated:
        info = real.info
        predict = staticmethod(hold_old(real.predict) if stage == "predict" else real.predict)

    if stage == "preprocess":
        monkeypatch.setattr(pipeline_module, "make_tensor", hold_old(pipeline_module.make_tensor))
    pipe = Pipeline(settings, local, archive=local, classifier=lambda: Gated())  # type: ignore[arg-type,return-value]

    def run(step: str, bucket: str, name: str) -> Any:
        info = local.stat(bucket, name)
        assert info is not None
        return getattr(pipe, step)(ObjectRef(bucket, name, info.generation))

    first, second = (p.read_bytes() for p in image_pool(datasets, 2))
    local.write("uploads", "cell.jpg", first, content_type="image/jpeg")
    if stage == "predict":
        run("preprocess", "uploads", "cell.jpg")
    old_bucket, old_name = ("uploads", "cell.jpg") if stage == "preprocess" else ("tensors", "cell.jpg.npy")
    outcomes: list[Any] = []
    old = threading.Thread(
        target=lambda: outcomes.append(run(stage, old_bucket, old_name)), name="old-version"
    )
    old.start()
    assert entered.wait(20)

    local.write("uploads", "cell.jpg", second, content_type="image/jpeg")
    assert run("preprocess", "uploads", "cell.jpg").status == "preprocessed"
    assert run("predict", "tensors", "cell.jpg.npy").status == "classified"
    tensor = local.stat("tensors", "cell.jpg.npy")
    release.set()
    old.join(timeout=30)
    if local.stat("tensors", "cell.jpg.npy") != tensor:  # a new tensor version gets its own event
        run("predict", "tensors", "cell.jpg.npy")

    state = check_end_state(settings.data_dir, {"cell.jpg"})
    assert state.results["cell.jpg"]["source"]["sha256"] == _sha(second)
    assert outcomes and outcomes[0].status == "stale", outcomes
