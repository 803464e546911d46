"""The event layer through real processes: names from anywhere, faults answered once, dead letters,
generations that mean "these bytes", and the receive mode fed real S3 notification bodies.

`bloodcell serve` runs in a subprocess (tests/stack.py) with its real functions-framework servers;
the event source is the real one, watching the folder buckets with inotify.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import requests

from bloodcell import names
from bloodcell.deadletters import DeadLetters
from bloodcell.events import binary_http, gcs_event
from bloodcell.eventsource import HIDDEN_GRACE_SECONDS, EventSource
from bloodcell.storage import LocalStorage, ObjectInfo
from tests.support.common import free_port
from tests.support.stack import (
    archive_objects,
    check_end_state,
    clean_env,
    drop,
    image_pool,
    read_results,
    stop_process_group,
    wait_for,
    wait_listening,
    wait_results,
)


def _lines(log: str, stage: str, bucket: str, name: str) -> list[str]:
    """The handler's log lines for one object: one per delivery attempt that reached it."""
    where = re.escape(f"object={names.escape(f'{bucket}/{name}')} ")
    return re.findall(rf"stage={stage} .*{where}.*", log)


# ---- the name zoo: every name that a lab, a phone or a hostile user may produce ----

GOOD_NAMES = [
    "細胞.jpg",
    "клетка.jpg",
    "🔬.jpg",
    "café.jpg",  # NFC, as Linux and Windows write it
    "cafe\u0301.jpg",  # NFD, as macOS writes it: a different name, a different upload
    "my cell (1).jpg",
    "a+b.jpg",
    "100%.jpg",
    '"quoted".jpg',
    "it's.jpg",
    "slide 7/champ 1.jpg",
    "x" * 246 + ".jpg",  # 250 bytes: .npy and .json still fit 255
]
REJECTED_NAMES = [
    "line\nbreak.jpg",
    "esc\x1b[31m.jpg",
    "del\x7f.jpg",
    "tab\t.jpg",
    "back\\slash.jpg",
    "y" * 247 + ".jpg",  # 251 bytes: <name>.json would pass NAME_MAX
    "z" * 251 + ".jpg",  # 255 bytes: the longest a file may be
    "collide.jpg.json/x.jpg",  # would sit where collide.jpg's result is
    "collide.jpg.npy/x.jpg",
    ".cellule-cachée.jpg",  # hidden files are answered too (after a grace period)
    "lame 3/.DS_Store",
]


def test_name_zoo_each_name_gets_exactly_one_result(make_stack: Any, tmp_path: Path, datasets: Path) -> None:
    stack = make_stack()
    data = stack.data_dir
    everything = [*GOOD_NAMES, "collide.jpg", *REJECTED_NAMES]
    pool = image_pool(datasets, len(everything), "kaggle")
    drop(data, dict(zip(everything, pool, strict=True)), tmp_path / "staging")

    found = wait_results(data, everything, timeout=90, log=stack.log_tail)
    # a moment more: a second (wrong) answer or a retry would show up now
    time.sleep(1.0)

    state = check_end_state(data, everything)
    assert set(read_results(data)) == set(everything)
    for name in [*GOOD_NAMES, "collide.jpg"]:
        assert state.results[name]["status"] == "classified", name
    for name in REJECTED_NAMES:
        assert found[name]["status"] == "rejected", name
        assert found[name]["source"]["name"] == name
        assert (data / "results" / names.result_name(name)).is_file()
        assert names.result_name(name).startswith("_rejected/")
    log = stack.log_path.read_text()
    for name in everything:  # one answer each (an at-least-once duplicate is acknowledged as such)
        lines = [x for x in _lines(log, "preprocess", "uploads", name) if "outcome=duplicate" not in x]
        assert len(lines) == 1, (name, lines)
    for name in REJECTED_NAMES:  # no tensor, so predict never heard of it
        assert not _lines(log, "predict", "tensors", name + ".npy")
    assert "Traceback" not in log and "dead-lettered" not in log
    assert not list((data / ".tmp").iterdir()), "a write left a temporary file behind"
    # names are escaped in every log line: no line starts with a forged record
    assert not [line for line in log.splitlines() if line.startswith(("break.jpg", "\x1b"))]


def _make_odd(path: Path, kind: str, outside: Path) -> Any:
    """One entry that is no regular file; returns what must stay open (a bound socket)."""
    import socket

    if kind == "link-inside":
        os.symlink(path.parent / "real.jpg", path)
    elif kind == "link-outside":
        os.symlink(outside, path)
    elif kind == "link-dangling":
        os.symlink(outside.parent / "nowhere.jpg", path)
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
        return server
    return None


ODD_KINDS = ["link-inside", "link-outside", "link-dangling", "fifo", "socket"]


def test_uploads_that_are_no_regular_file_get_exactly_one_rejected_result(
    make_stack: Any, tmp_path: Path, datasets: Path
) -> None:
    """Symlinks (inside, outside, dangling), a FIFO and a socket made in the watched folder, and
    the same found by the reconcile at start-up: one ``rejected`` result each, nothing opened."""
    stack = make_stack()
    data = stack.data_dir
    uploads = data / "uploads"
    outside = tmp_path / "secret.jpg"
    shutil.copy(image_pool(datasets, 1, "kaggle")[0], outside)
    drop(data, {"real.jpg": outside}, tmp_path / "staging")
    wait_results(data, ["real.jpg"], timeout=60, log=stack.log_tail)
    keep = [_make_odd(uploads / f"{kind}.jpg", kind, outside) for kind in ODD_KINDS]
    odd = [f"{kind}.jpg" for kind in ODD_KINDS]

    found = wait_results(data, odd, timeout=60, log=stack.log_tail)
    stack.stop()
    early = [_make_odd(uploads / f"early-{kind}.jpg", kind, outside) for kind in ODD_KINDS]
    again = make_stack(data)
    later = wait_results(data, [f"early-{kind}.jpg" for kind in ODD_KINDS], timeout=60, log=again.log_tail)
    time.sleep(1.0)  # a moment more: a second answer would show up now

    log = again.log_path.read_text()  # both stacks log to the one file
    everything = [*odd, *(f"early-{kind}.jpg" for kind in ODD_KINDS)]
    for name in everything:
        result = (found | later)[name]
        assert result["status"] == "rejected", name
        assert "not a regular file" in result["reason"], result["reason"]
        lines = [x for x in _lines(log, "preprocess", "uploads", name) if "outcome=duplicate" not in x]
        assert len(lines) == 1, (name, lines)
    assert "Traceback" not in log and "dead-lettered" not in log
    check_end_state(data, ["real.jpg", *everything])
    for server in keep + early:
        if server is not None:
            server.close()


def test_a_temporary_file_renamed_into_place_is_answered_once_under_its_final_name(
    make_stack: Any, tmp_path: Path, datasets: Path
) -> None:
    """rsync's way: the whole file under a hidden temporary name, closed, then renamed."""
    stack = make_stack()
    uploads = stack.data_dir / "uploads"
    (image,) = image_pool(datasets, 1, "kaggle")
    temporary = uploads / "lame 4" / ".cellule-été.jpg.Xa81Qz"
    temporary.parent.mkdir(parents=True)
    temporary.write_bytes(image.read_bytes())
    time.sleep(0.2)
    os.replace(temporary, uploads / "lame 4" / "cellule-été.jpg")

    wait_results(stack.data_dir, ["lame 4/cellule-été.jpg"], timeout=60, log=stack.log_tail)
    time.sleep(HIDDEN_GRACE_SECONDS + 1.0)  # past the temporary name's grace: still no answer for it

    state = check_end_state(stack.data_dir, ["lame 4/cellule-été.jpg"])
    assert set(state.results) == {"lame 4/cellule-été.jpg"}
    assert not (stack.data_dir / "results" / names.result_name("lame 4/.cellule-été.jpg.Xa81Qz")).exists()
    assert "outcome=gone" in stack.log_path.read_text()  # the temporary name was heard, then not answered


# ---- permanent faults: answered once (one delivery attempt each) ----


class _Recorder(BaseHTTPRequestHandler):
    """A sink that answers a fixed code and keeps every request it got."""

    code = 200
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).received.append((dict(self.headers), body))
        self.send_response(type(self).code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def sink() -> Iterator[tuple[str, type[_Recorder]]]:
    handler = type("Sink", (_Recorder,), {"code": 200, "received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/", handler
    server.shutdown()
    server.server_close()


def test_permanent_faults_are_delivered_once_transient_ones_retried_then_dead_lettered(
    tmp_path: Path, model_dir: Path, datasets: Path, sink: tuple[str, type[_Recorder]]
) -> None:
    """Real function servers answer each poison event with 2xx: exactly one attempt each. A sink
    that keeps failing gets EVENT_SOURCE_MAX_ATTEMPTS attempts, then one dead-letter record."""
    from tests.support.stack import function_server

    data = tmp_path / "data"
    env = clean_env(
        model_dir, BLOODCELL_STORAGE="local", BLOODCELL_DATA_DIR=str(data), ARCHIVE_STORAGE="local"
    )
    ports = {n: free_port() for n in ("preprocess", "predict")}
    servers = {n: function_server(n, p, env, tmp_path / f"{n}.log") for n, p in ports.items()}
    try:
        for name, process in servers.items():
            wait_listening(ports[name], process)
        local = LocalStorage(data)
        urls = {
            "uploads": f"http://127.0.0.1:{ports['preprocess']}/",
            "tensors": f"http://127.0.0.1:{ports['predict']}/",
        }
        nothing_to_reconcile = {bucket: (lambda _info: True) for bucket in urls}  # only what we announce
        source = EventSource(
            local, urls, concurrency=2, backoff=(0.01, 0.05), max_attempts=4, is_done=nothing_to_reconcile
        )
        now = local.write("uploads", "probe.jpg", b"x").updated
        # a symlink inside tensors/ pointing out of the bucket: preprocess must not write through it
        outside = tmp_path / "outside.npy"
        (data / "tensors").mkdir(parents=True, exist_ok=True)
        os.symlink(outside, data / "tensors" / "sym.jpg.npy")
        cell = image_pool(datasets, 1, "kaggle")[0].read_bytes()
        symlinked = local.write("uploads", "sym.jpg", cell)
        # started once the buckets hold everything and reconciled (to nothing) before the first
        # announcement: a reconcile racing the writes could otherwise announce probe.jpg itself
        stop, ready = threading.Event(), threading.Event()
        threading.Thread(target=source.run, args=(stop, ready), daemon=True).start()
        assert ready.wait(30)
        poison = [
            symlinked,
            ObjectInfo("tensors", "../escape.npy", "1", 1, now),  # RejectedInput in storage
            ObjectInfo("tensors", "/etc/passwd.npy", "1", 1, now),
            ObjectInfo("tensors", "nul\x00.npy", "1", 1, now),
            ObjectInfo("tensors", "never-was.jpg.npy", "1", 1, now),
            ObjectInfo("tensors", "a.jpg.json/x.jpg.npy", "1", 1, now),
            ObjectInfo("uploads", "../escape.jpg", "1", 1, now),
            ObjectInfo("uploads", "nul\x00.jpg", "1", 1, now),
            ObjectInfo("uploads", "never-was.jpg", "1", 1, now),
        ]
        for info in poison:
            assert source.announce(info)
        wait_for("the poison to be answered", lambda: source.delivered == len(poison), 30)
        assert source.attempts == len(poison), "a permanent fault was retried"
        assert source.dead_lettered == 0

        # binary mode, percent-encoded headers (HTTP binding 3.1.3.2), a CJK name: decoded on receipt
        zoo = local.write("uploads", "細胞 100%.jpg", cell)
        event = gcs_event(zoo)
        event["id"] = 'ид-1 "%"'
        headers, body = binary_http(event)
        assert headers["ce-id"] == "%D0%B8%D0%B4-1%20%22%25%22"
        assert requests.post(urls["uploads"], data=body, headers=headers, timeout=30).status_code == 200
        assert local.stat("tensors", "細胞 100%.jpg.npy") is not None

        # S3 records of odd shapes, straight to the function: 2xx (acknowledged), not 500
        for records in (
            ["x"],
            [{"s3": "x"}],
            [{"s3": {"bucket": "uploads", "object": {}}}],
            [{"s3": {"bucket": {"name": "uploads"}, "object": {"key": "a", "size": "big"}}}],
        ):
            envelope = json.dumps(
                {
                    "specversion": "1.0",
                    "id": "1",
                    "source": "//s3",
                    "type": "s3",
                    "data": {"Records": records},
                }
            )
            reply = requests.post(
                urls["uploads"],
                data=envelope,
                timeout=30,
                headers={"Content-Type": "application/cloudevents+json"},
            )
            assert reply.status_code == 200, records

        # a sink that always fails: bounded attempts, then a dead letter the web app can list
        url, recorder = sink
        recorder.code = 500
        letters = DeadLetters(local, "dead-letters")
        failing = EventSource(
            local,
            {"uploads": url},
            backoff=(0.01, 0.05),
            max_attempts=3,
            dead_letters=letters,
            is_done={"uploads": lambda _info: True},  # the reconcile re-emits nothing: one event only
        )
        threading.Thread(target=failing.run, args=(stop,), daemon=True).start()
        failing.announce(local.stat("uploads", "probe.jpg"))  # type: ignore[arg-type]
        wait_for("the dead letter", lambda: list(letters.list()), 30)
        stop.set()
    finally:
        for process in servers.values():
            stop_process_group(process)

    assert len(recorder.received) == 3
    [letter] = letters.list()
    assert (letter.bucket, letter.name, letter.attempts, letter.error) == (
        "uploads",
        "probe.jpg",
        3,
        "HTTP 500",
    )
    log = (tmp_path / "predict.log").read_text() + (tmp_path / "preprocess.log").read_text()
    assert "outcome=retry" not in log
    assert not outside.exists(), "a write followed a symlink out of its bucket"
    assert 'event="ид-1 \\"%\\"" object="uploads/細胞 100%.jpg"' in log, "ce-id was not decoded on receipt"
    assert not list((data / ".tmp").iterdir()), "a failed write left a temporary file"


def test_a_worker_that_meets_an_unexpected_exception_keeps_going(
    tmp_path: Path, sink: tuple[str, type[_Recorder]]
) -> None:
    url, recorder = sink
    local = LocalStorage(tmp_path / "data")

    class Broken(EventSource):
        exploded = 0

        def deliver(self, info: ObjectInfo, url: str) -> str | None:
            if info.name == "explodes.jpg" and Broken.exploded < 2:
                Broken.exploded += 1
                raise UnicodeEncodeError("latin-1", "細", 0, 1, "what requests raised for a header")
            return super().deliver(info, url)

    source = Broken(
        local, {"uploads": url}, concurrency=2, backoff=(0.01, 0.05), is_done={"uploads": lambda _i: True}
    )
    stop = threading.Event()
    threading.Thread(target=source.run, args=(stop,), daemon=True).start()
    try:
        source.announce(local.write("uploads", "explodes.jpg", b"1"))
        wait_for("the exploding event to get through on retry", lambda: source.delivered == 1, 10)
        source.announce(local.write("uploads", "next.jpg", b"2"))
        wait_for("the next upload", lambda: source.delivered == 2, 10)
        alive = [w for w in source.workers if w.is_alive()]
    finally:
        stop.set()

    assert Broken.exploded == 2 and source.attempts == 4
    assert len(alive) == 2, "the pool lost a worker"
    assert sorted(json.loads(body)["data"]["name"] for _, body in recorder.received) == [
        "explodes.jpg",
        "next.jpg",
    ]


def test_a_backlog_on_one_sink_does_not_hold_back_another(
    tmp_path: Path, sink: tuple[str, type[_Recorder]]
) -> None:
    """Each sink has its own lane: a tensor is delivered to predict while preprocess still
    holds every upload of a burst (with one queue it would wait behind the last upload)."""
    fast_url, fast = sink
    release = threading.Event()
    stuck: list[str] = []

    class Held(_Recorder):
        def do_POST(self) -> None:
            stuck.append(json.loads(self.rfile.read(int(self.headers["Content-Length"])))["data"]["name"])
            release.wait(30)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    slow = ThreadingHTTPServer(("127.0.0.1", 0), Held)
    threading.Thread(target=slow.serve_forever, daemon=True).start()
    local = LocalStorage(tmp_path / "data")
    routes = {"uploads": f"http://127.0.0.1:{slow.server_port}/", "tensors": fast_url}
    source = EventSource(local, routes, concurrency=4, is_done={b: (lambda _i: True) for b in routes})
    stop = threading.Event()
    threading.Thread(target=source.run, args=(stop,), daemon=True).start()
    try:
        for i in range(10):
            source.announce(local.write("uploads", f"u{i}.jpg", bytes([i])))
        wait_for("the upload lane to be busy", lambda: len(stuck) == 2, 10)
        source.announce(local.write("tensors", "u0.jpg.npy", b"t"))
        wait_for("the tensor, past the held uploads", lambda: len(fast.received) == 1, 10)
        in_flight = len(stuck)
    finally:
        release.set()
        stop.set()
        slow.shutdown()
        slow.server_close()

    assert in_flight == 2, "the upload lane took more than its share of EVENT_SOURCE_CONCURRENCY"
    assert json.loads(fast.received[0][1])["data"]["name"] == "u0.jpg.npy"


# ---- generations: "these bytes" ----


def test_cp_p_overwrite_is_reclassified_and_cp_a_copy_is_not_reprocessed(
    make_stack: Any, tmp_path: Path, datasets: Path
) -> None:
    stack = make_stack()
    data = stack.data_dir
    first, second, *others = image_pool(datasets, 6, "kaggle")
    files = {f"cell-{i}.jpg": p for i, p in enumerate(others)} | {"cell.jpg": first}
    drop(data, files, tmp_path / "staging")
    before = wait_results(data, files, timeout=60, log=stack.log_tail)["cell.jpg"]
    path = data / "uploads" / "cell.jpg"
    st = path.stat()

    # rsync -t --inplace / cp -p over it: other bytes, same inode, same mtime
    with path.open("r+b") as handle:
        handle.truncate(0)
        handle.write(second.read_bytes())
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (st.st_ino, st.st_mtime_ns)

    import hashlib

    sha = hashlib.sha256(second.read_bytes()).hexdigest()
    after = wait_for(
        "the overwrite to be classified",
        lambda: (r := read_results(data).get("cell.jpg")) and r["source"]["sha256"] == sha and r,
        60,
        log=stack.log_tail,
    )
    assert after["source"]["generation"] != before["source"]["generation"]
    wait_results(data, files, timeout=60, log=stack.log_tail)
    stack.stop()
    archived = archive_objects(data)

    # cp -a of the whole data folder: new inodes everywhere, the same bytes
    copy = tmp_path / "restored"
    subprocess.run(["cp", "-a", str(data), str(copy)], check=True)
    assert (copy / "uploads" / "cell.jpg").stat().st_ino != path.stat().st_ino
    again = make_stack(copy)
    time.sleep(2.0)  # anything wrongly re-emitted would be under way by now
    log = again.log_path.read_text()
    assert re.findall(r"event source reconciled: (\d+) object", log)[-1] == "0"
    assert archive_objects(copy) == archived
    assert read_results(copy) == read_results(data)


# ---- deleted uploads, stray tensors ----


def test_upload_deleted_before_classification_gets_no_result(
    make_stack: Any, tmp_path: Path, datasets: Path
) -> None:
    stack = make_stack()
    data = stack.data_dir
    files = {f"del-{i:02d}.jpg": p for i, p in enumerate(image_pool(datasets, 30, "kaggle"))}
    drop(data, files, tmp_path / "staging")
    deleted = set(list(files)[::2])
    for name in deleted:
        (data / "uploads" / name).unlink()
    kept = set(files) - deleted

    wait_results(data, kept, timeout=60, log=stack.log_tail)
    time.sleep(1.5)  # let every deleted one finish whatever stage it had reached

    state = check_end_state(data, kept, extra_tensors={f"{n}.npy" for n in deleted})
    assert not set(state.results) & deleted
    for result in state.results.values():  # stored means an image is in the archive
        assert (data / "archive" / result["archive"]["location"]).is_file()


def test_stray_and_forged_tensors_never_touch_a_result(
    make_stack: Any, tmp_path: Path, datasets: Path
) -> None:
    stack = make_stack()
    data = stack.data_dir
    good = {"real.jpg": image_pool(datasets, 1, "kaggle")[0]}
    drop(data, good, tmp_path / "staging")
    before = wait_results(data, good, timeout=60, log=stack.log_tail)
    real = (data / "tensors" / "real.jpg.npy").read_bytes()
    forged = real[:-4] + bytes(4)  # a valid .npy, other values, and no metadata of its own

    # over the real upload's tensor, and for an upload that never existed, each written whole
    for name in ("real.jpg.npy", "ghost.jpg.npy"):
        (tmp_path / "t.npy").write_bytes(forged)
        shutil.move(tmp_path / "t.npy", data / "tensors" / name)
    wait_for(
        "both tensors to be ignored", lambda: stack.log_path.read_text().count("outcome=ignored") >= 2, 30
    )

    assert read_results(data) == before
    assert "ghost.jpg" not in read_results(data)


# ---- receive mode: S3-format notifications in, CloudEvents to K_SINK out ----


def _notification(bucket: str, key: str, source: str = "minio:s3", etag: str = "abc") -> dict[str, Any]:
    return {
        "EventName": "s3:ObjectCreated:Put",
        "Key": f"{bucket}/{key}",
        "Records": [
            {
                "eventVersion": "2.0",
                "eventSource": source,
                "awsRegion": "",
                "eventTime": "2026-12-01T21:00:00.000Z",
                "eventName": "s3:ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {
                        "key": key,
                        "size": 1234,
                        "eTag": etag,
                        "contentType": "image/jpeg",
                        "sequencer": "17F0",
                    },
                },
            }
        ],
    }


def test_receive_mode_forwards_s3_notifications_to_k_sink(
    tmp_path: Path, model_dir: Path, s3_bucket: tuple[str, str], sink: tuple[str, type[_Recorder]]
) -> None:
    import boto3

    endpoint, bucket = s3_bucket
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.put_object(Bucket=bucket, Key="before start.jpg", Body=b"uploaded while the source was down")
    url, recorder = sink
    port = free_port()
    env = clean_env(
        model_dir,
        BLOODCELL_STORAGE="s3",
        S3_ENDPOINT_URL=endpoint,
        UPLOAD_BUCKET=bucket,
        K_SINK=url,
        EVENT_SOURCE_BUCKETS=bucket,
        PORT=str(port),
        HOST="127.0.0.1",
        EVENT_WEBHOOK_TOKEN="s3cret",
        K_CE_OVERRIDES='{"extensions": {"cluster": "minikube"}}',
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    with (tmp_path / "receive.log").open("w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bloodcell.cli",
                "eventsource",
                "--mode",
                "receive",
            ],
            env=env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    try:
        wait_listening(port, process)
        base = f"http://127.0.0.1:{port}/"
        auth = {"Authorization": "Bearer s3cret"}
        assert requests.get(base + "healthz", timeout=10).status_code == 200
        # MinIO-family stores probe the webhook URL with HEAD before sending (no token)
        head = requests.head(base, timeout=10)
        assert head.status_code == 200 and head.content == b""
        assert requests.head(base + "nowhere", timeout=10).status_code == 404
        assert requests.get(base, timeout=10).status_code == 200
        # the reconcile at start-up found the object uploaded before it ran
        wait_for("the reconcile", lambda: len(recorder.received) >= 1, 30)

        def post(body: Any, headers: dict[str, str] = auth) -> int:
            return requests.post(base, data=json.dumps(body), headers=headers, timeout=30).status_code

        assert post(_notification(bucket, "x.jpg"), headers={}) == 401
        assert post(_notification(bucket, "x.jpg"), headers={"Authorization": "Bearer wrong"}) == 401
        assert post({"Records": []}) == 200  # the store's test event
        assert post({"Service": "Amazon S3", "Event": "s3:TestEvent"}) == 200
        assert post({"Records": ["not a record"]}) == 400
        assert requests.post(base, data=b"{not json", headers=auth, timeout=30).status_code == 400
        assert post(_notification(bucket, "my+cell%281%29+%E7%B4%B0%E8%83%9E.jpg")) == 200
        assert post(_notification(bucket, "rust.jpg", source="rustfs:s3")) == 200
        recorder.code = 503
        assert post(_notification(bucket, "later.jpg")) == 502  # the store keeps it queued and retries
    finally:
        stop_process_group(process)

    events = [json.loads(body) for headers, body in recorder.received]
    types = [{k.lower(): v for k, v in h.items()}["content-type"] for h, _ in recorder.received]
    assert all(t.startswith("application/cloudevents+json") for t in types)
    by_name = {e["data"]["name"]: e for e in events}
    assert set(by_name) == {"before start.jpg", "my cell(1) 細胞.jpg", "rust.jpg", "later.jpg"}
    event = by_name["my cell(1) 細胞.jpg"]
    assert event["type"] == "google.cloud.storage.object.v1.finalized"
    assert event["subject"] == "objects/my cell(1) 細胞.jpg"
    assert event["cluster"] == "minikube" and event["bucket"] == bucket
    assert event["data"]["generation"] == "abc" and event["data"]["size"] == "1234"
