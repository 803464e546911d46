"""6. The event source's cost against the size of its buckets: 100 objects beside 100,000.

For each mode the same child program runs twice, side by side in one run, over a small
and a large bucket: ``watch`` (folder buckets, inotify, as ``bloodcell serve`` runs it)
and ``receive`` (the Knative mode: an S3 API, moto's server over HTTP, plus the webhook
server). The child starts the real ``EventSource`` with its announcer, lets the start-up
reconcile walk the bucket (every object counts as done, so nothing is delivered: what
is measured is the source itself), then reports its CPU over an idle window and its
resident memory. The figures are ratios large/small: cost should follow events, not the
archive's size (<= 1.5 for idle CPU, <= 1.2 for memory).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import REPO

IDLE_SECONDS = 15.0  # a few ms of CPU over the window: shorter windows measure scheduling noise
SETTLE_SECONDS = 3.0  # after the reconcile, before the window: its last deliveries and frees finish


def _rss_kb() -> dict[str, int]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def child(mode: str, data_dir: str, endpoint: str, bucket: str) -> None:
    """Run one event source, reconcile, idle, and print what it cost as one JSON line."""
    sys.path.insert(0, str(REPO / "src"))
    from bloodcell.eventsource import EventSource
    from bloodcell.storage import LocalStorage

    if mode == "watch":
        storage = LocalStorage(Path(data_dir))
        announcer_roots = {bucket: Path(data_dir) / bucket}
    else:
        from bloodcell.storage.s3 import S3Storage

        storage = S3Storage(endpoint_url=endpoint)  # type: ignore[assignment]
    source = EventSource(storage, {bucket: "http://127.0.0.1:9/"}, is_done={bucket: lambda _info: True})
    if mode == "watch":
        from bloodcell.watch import folder_watcher

        announcer = folder_watcher(storage, announcer_roots)
    else:
        from bloodcell.receiver import webhook_receiver

        announcer = webhook_receiver("127.0.0.1", 0)
    stop, ready = threading.Event(), threading.Event()
    started = time.perf_counter()
    thread = threading.Thread(target=source.run, args=(stop, ready, announcer), daemon=True)
    thread.start()
    ready.wait()
    reconcile_s = time.perf_counter() - started
    time.sleep(SETTLE_SECONDS)
    print("ready", flush=True)  # the parent starts every child's window at once (side by side)
    sys.stdin.readline()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    time.sleep(IDLE_SECONDS)
    cpu1, wall1 = time.process_time(), time.perf_counter()
    memory = _rss_kb()
    stop.set()
    thread.join(timeout=10)
    print(
        json.dumps(
            {
                "reconcile_s": round(reconcile_s, 2),
                "idle_cpu_percent": round((cpu1 - cpu0) / (wall1 - wall0) * 100, 3),
                "rss_mb": round(memory["VmRSS"] / 1024, 1),
                "peak_rss_mb": round(memory["VmHWM"] / 1024, 1),
            }
        )
    )


def _measure(mode: str, endpoint: str, runs: dict[int, tuple[Path, str]]) -> dict[int, dict[str, float]]:
    """One child per bucket size; their idle windows run at the same time, once all reconciled.

    Measured one after the other, the same 100-object bucket read 0.05 % and 0.095 % of a
    core: at this level the machine's state dominates, so the sizes share one window.
    """
    children = {
        count: subprocess.Popen(
            [sys.executable, __file__, "--child", mode, str(data_dir), endpoint, bucket],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for count, (data_dir, bucket) in runs.items()
    }
    try:
        for child_process in children.values():
            assert child_process.stdout is not None
            while child_process.stdout.readline().strip() != "ready":
                assert child_process.poll() is None, "an event source child died before its window"
        for child_process in children.values():
            assert child_process.stdin is not None
            child_process.stdin.write("go\n")
            child_process.stdin.flush()
        out = {}
        for count, child_process in children.items():
            stdout, _ = child_process.communicate(timeout=IDLE_SECONDS + 60)
            out[count] = dict(json.loads(stdout.strip().splitlines()[-1]))
        return out
    finally:
        for child_process in children.values():
            if child_process.poll() is None:
                child_process.kill()


def _fill_folder(root: Path, count: int) -> None:
    folder = root / "uploads"
    folder.mkdir(parents=True)
    for i in range(count):  # 100 folders of files, as a lab's slides would be
        sub = folder / f"slide-{i % 100:03d}"
        sub.mkdir(exist_ok=True)
        (sub / f"cell-{i:06d}.jpg").write_bytes(i.to_bytes(4, "big") * 64)


def _fill_bucket(endpoint: str, bucket: str, count: int) -> None:
    """Create the bucket over HTTP, then load its objects straight into the in-process moto backend.

    100,000 PUTs through moto's HTTP front end take longer than the rest of the bench;
    what is measured (the child's reconcile and idle cost) still talks S3 over HTTP.
    """
    import boto3
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for i in range(count):
        backend.put_object(bucket, f"slide-{i % 100:03d}/cell-{i:06d}.jpg", b"x" * 256)
    listed = client.list_objects_v2(Bucket=bucket, MaxKeys=1)
    assert listed["KeyCount"] == min(count, 1), "moto's HTTP front end does not see the loaded objects"


def _ratio(small: dict[str, float], large: dict[str, float], key: str) -> float | None:
    floor = 0.05 if key == "idle_cpu_percent" else 1e-9  # below 0.05 % of a core is noise
    return round(max(large[key], floor) / max(small[key], floor), 2)


def run(small: int, large: int, s3_large: int, work: Path) -> dict[str, object]:
    out: dict[str, object] = {}
    roots = {}
    for count in (small, large):
        roots[count] = (Path(tempfile.mkdtemp(prefix=f"scale-{count}-", dir=work)), "uploads")
        _fill_folder(roots[count][0], count)
    watch = _measure("watch", "", roots)
    out["watch"] = {
        "objects": [small, large],
        "small": watch[small],
        "large": watch[large],
        "idle_cpu_ratio": _ratio(watch[small], watch[large], "idle_cpu_percent"),
        "rss_ratio": _ratio(watch[small], watch[large], "rss_mb"),
    }

    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{server._server.server_port}"
        buckets = {count: (work, f"scale-{count}") for count in (small, s3_large)}
        for count, (_, bucket) in buckets.items():
            _fill_bucket(endpoint, bucket, count)
        receive = _measure("receive", endpoint, buckets)
    finally:
        server.stop()
    out["receive"] = {
        "objects": [small, s3_large],
        "small": receive[small],
        "large": receive[s3_large],
        "idle_cpu_ratio": _ratio(receive[small], receive[s3_large], "idle_cpu_percent"),
        "rss_ratio": _ratio(receive[small], receive[s3_large], "rss_mb"),
    }
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=4, metavar=("MODE", "DATA_DIR", "ENDPOINT", "BUCKET"))
    args = parser.parse_args()
    if args.child:
        child(*args.child)
