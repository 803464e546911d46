"""Load: 2,000 real images dropped at once on 2 cores, all processed, with bounded memory and
bounded concurrency.

The deployment shape is Knative's: `bloodcell eventsource` (the same EventSource class that
`bloodcell serve` runs in-process) POSTs to a sink, and the two functions run as real
functions-framework servers. The sink is a counting HTTP proxy in this test process that
forwards to the functions, so every request the source makes is seen: the proxy counts the
requests in flight (it never limits them: one thread per connection), and /proc tells how many
TCP connections the event source holds to it. With HTTP/1.1 one connection carries at most one
request at a time, so "connections <= EVENT_SOURCE_CONCURRENCY" bounds what the source has in
flight from above, and the proxy's count shows the bound is reached, not just respected.
RSS (VmRSS) of every process is sampled against the number of uploads processed.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.common import free_port
from tests.support.stack import (
    check_end_state,
    clean_env,
    descendants,
    drop,
    function_server,
    image_pool,
    rss_mb,
    stop_process_group,
    wait_listening,
    wait_results,
)

UPLOADS = 2000
CONCURRENCY = 4
RSS_LIMIT_MB = 500


class CountingProxy:
    """A sink that forwards /preprocess and /predict to the function servers and counts."""

    def __init__(self, upstreams: dict[str, int]) -> None:
        self.upstreams = upstreams
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests = 0
        self.failures = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the source's sessions expect

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with proxy._lock:
                    proxy.in_flight += 1
                    proxy.requests += 1
                    proxy.max_in_flight = max(proxy.max_in_flight, proxy.in_flight)
                try:
                    status, payload = proxy.forward(self, body)
                finally:
                    with proxy._lock:
                        proxy.in_flight -= 1
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def forward(self, handler: BaseHTTPRequestHandler, body: bytes) -> tuple[int, bytes]:
        port = self.upstreams[handler.path.strip("/")]
        headers = {k: v for k, v in handler.headers.items() if k.lower().startswith(("ce-", "content-type"))}
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            connection.request("POST", "/", body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        except OSError as exc:
            with self._lock:
                self.failures += 1
            return 502, str(exc).encode()
        finally:
            connection.close()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _connections_to(pid: int, port: int) -> int:
    """ESTABLISHED TCP connections that process `pid` holds to 127.0.0.1:`port`."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        lines = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return 0
    # distinct sockets, not lines: /proc/net/tcp is read in chunks while the table changes (the
    # proxy leaves thousands of TIME_WAIT entries), so one socket can be listed twice in a read
    # (CI under stress-ng once counted 7 connections from a pool of 4)
    found = set()
    for line in lines:
        fields = line.split()
        remote_port = int(fields[2].split(":")[1], 16)
        if remote_port == port and fields[3] == "01" and fields[9] in inodes:
            found.add(fields[9])
    return len(found)


@pytest.fixture
def load_stack(tmp_path: Path, model_dir: Path) -> Iterator[dict[str, Any]]:
    assert (model_dir / "model.tflite").is_file(), f"no model at {model_dir}"
    data = tmp_path / "data"
    env = clean_env(
        model_dir,
        BLOODCELL_STORAGE="local",
        BLOODCELL_DATA_DIR=str(data),
        ARCHIVE_STORAGE="local",
        EVENT_SOURCE_CONCURRENCY=str(CONCURRENCY),
    )
    ports = {"preprocess": free_port(), "predict": free_port()}
    processes = {n: function_server(n, port, env, tmp_path / f"{n}.log") for n, port in ports.items()}
    proxy = None
    try:
        for name, port in ports.items():
            wait_listening(port, processes[name])
        proxy = CountingProxy(ports)
        sink = f"http://127.0.0.1:{proxy.port}"
        sinks = f"uploads={sink}/preprocess,tensors={sink}/predict"
        with (tmp_path / "eventsource.log").open("a") as log:
            processes["eventsource"] = subprocess.Popen(
                [sys.executable, "-m", "bloodcell.cli", "eventsource"],
                env=env | {"EVENT_SINKS": sinks},
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        time.sleep(1.0)
        assert processes["eventsource"].poll() is None, (tmp_path / "eventsource.log").read_text()
        yield {"data": data, "processes": processes, "proxy": proxy, "tmp": tmp_path}
    finally:
        for process in processes.values():
            stop_process_group(process)
        if proxy is not None:
            proxy.close()


@pytest.mark.slow
def test_2000_images_at_once_bounded_memory_and_concurrency(
    load_stack: dict[str, Any], datasets: Path
) -> None:
    data: Path = load_stack["data"]
    proxy: CountingProxy = load_stack["proxy"]
    processes: dict[str, subprocess.Popen[bytes]] = load_stack["processes"]
    source_pid = processes["eventsource"].pid
    # every process: the source, and each function server's gunicorn master and worker
    pids = {"eventsource": source_pid}
    for name in ("preprocess", "predict"):
        for i, pid in enumerate([processes[name].pid, *descendants(processes[name].pid)]):
            pids[f"{name}-{'master' if i == 0 else f'worker{i}'}"] = pid
    assert len(pids) == 5, pids

    half = UPLOADS // 2
    pool = image_pool(datasets, half, "bccd") + image_pool(datasets, UPLOADS - half, "kaggle")
    files = {f"load/{i:04d}-{path.name}": path for i, path in enumerate(pool)}
    samples: list[tuple[float, int, dict[str, float]]] = []
    connections: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        results = data / "results" / "load"
        while not stop.is_set():
            done = sum(1 for _ in results.iterdir()) if results.is_dir() else 0
            rss = {name: rss_mb(pid) or 0.0 for name, pid in pids.items()}
            samples.append((time.monotonic(), done, rss))
            connections.append(_connections_to(source_pid, proxy.port))
            stop.wait(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    try:
        drop(data, files, load_stack["tmp"] / "staging")
        dropped = time.monotonic() - started
        wait_results(data, files, timeout=420, final=lambda name, result: True)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        sampler.join(timeout=5)

    state = check_end_state(data, files)
    assert {r["status"] for r in state.results.values()} == {"classified"}

    # bounded concurrency: never more than EVENT_SOURCE_CONCURRENCY requests, and it was used
    assert proxy.failures == 0
    assert proxy.max_in_flight <= CONCURRENCY
    assert proxy.max_in_flight >= 2
    assert max(connections) <= CONCURRENCY
    assert proxy.requests >= 2 * UPLOADS

    # bounded memory: under the limit, and not growing with the queue. Compare the RSS once
    # a quarter of the batch is done (caches and allocators warm, 1,500 still queued) with
    # the peak after that; a leak of even 50 kB per image would add 75 MB.
    quarter = next(i for i, (_, done, _) in enumerate(samples) if done >= UPLOADS // 4)
    report = []
    for name in pids:
        series = [rss[name] for _, _, rss in samples if rss[name]]
        warm = samples[quarter][2][name]
        later = max(rss[name] for _, _, rss in samples[quarter:])
        report.append(f"{name} {series[0]:.0f}->{warm:.0f}->{later:.0f} MB")
        assert max(series) < RSS_LIMIT_MB, f"{name}: RSS {max(series):.0f} MB"
        assert later - warm < 64, f"{name}: RSS grew {warm:.0f} -> {later:.0f} MB while the queue drained"
    print(
        f"\n{UPLOADS} uploads dropped in {dropped:.1f}s, all results in {elapsed:.1f}s "
        f"({UPLOADS / elapsed:.1f}/s); max in flight {proxy.max_in_flight}, max connections "
        f"{max(connections)}, {proxy.requests} requests; RSS start->25%->peak: {'; '.join(report)}"
    )
