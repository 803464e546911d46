"""Prometheus metrics, scraped over real HTTP from a real function server and event source."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cloudevents.conversion import to_binary
from prometheus_client.parser import text_string_to_metric_families

from bloodcell import metrics
from bloodcell.eventsource import EventSource
from bloodcell.storage import LocalStorage
from tests.support.common import free_port, gcs_cloudevent, image_bytes
from tests.support.stack import clean_env, function_server, wait_listening


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = requests.get(url, timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


@pytest.fixture
def preprocess_server(tmp_path: Path, model_dir: Path) -> Iterator[tuple[str, LocalStorage, Path]]:
    data_dir = tmp_path / "data"
    multiproc = tmp_path / "metrics"
    multiproc.mkdir()
    (multiproc / "counter_999999.db").write_bytes(b"left by a server that was killed")
    port = free_port()
    env = clean_env(
        model_dir,
        BLOODCELL_STORAGE="local",
        BLOODCELL_DATA_DIR=str(data_dir),
        FUNCTION_WORKERS="2",
        PROMETHEUS_MULTIPROC_DIR=str(multiproc),
    )
    process = function_server("preprocess", port, env, tmp_path / "preprocess.log")
    try:
        wait_listening(port, process)
        yield f"http://127.0.0.1:{port}/", LocalStorage(data_dir), multiproc
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def test_a_real_cloudevent_moves_the_function_servers_counters(
    preprocess_server: tuple[str, LocalStorage, Path],
) -> None:
    url, storage, multiproc = preprocess_server
    info = storage.write("uploads", "cell.png", image_bytes((320, 240), "PNG"), content_type="image/png")
    headers, body = to_binary(gcs_cloudevent(info))

    answer = requests.post(url, data=body, headers=dict(headers), timeout=60)
    bad = requests.post(url, data=b"{}", headers=dict(headers), timeout=60)
    scraped = scrape(url + "metrics")

    stage = (("stage", "preprocess"),)
    assert answer.status_code == 200
    assert bad.status_code in (200, 400)  # an event naming no object: acknowledged, never retried
    assert not (multiproc / "counter_999999.db").exists()
    assert scraped[("bloodcell_events_total", stage)] == 1
    assert scraped[("bloodcell_results_total", (("stage", "preprocess"), ("status", "preprocessed")))] == 1
    assert scraped[("bloodcell_event_seconds_count", stage)] == 1
    assert ("bloodcell_retries_total", stage) not in scraped


def test_the_event_source_counts_retries_and_dead_letters(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "data")
    sink_port, metrics_port = free_port(), free_port()  # nothing listens on the sink: every POST fails
    source = EventSource(
        storage, {"uploads": f"http://127.0.0.1:{sink_port}/"}, max_attempts=2, backoff=(0.01, 0.02)
    )
    server = metrics.serve_metrics(metrics_port, "127.0.0.1", backlog=source.backlog)
    before = scrape(f"http://127.0.0.1:{metrics_port}/metrics")
    bucket = (("bucket", "uploads"),)
    stop = threading.Event()
    storage.write("uploads", "cell.png", image_bytes(), content_type="image/png")
    try:
        runner = threading.Thread(target=source.run, args=(stop,), daemon=True)
        runner.start()
        deadline = time.monotonic() + 60
        while source.dead_lettered < 1 and time.monotonic() < deadline:
            stop.wait(0.05)  # polls a condition, bounded: never a sleep standing in for an event
        after = scrape(f"http://127.0.0.1:{metrics_port}/metrics")
    finally:
        stop.set()
        server.shutdown()

    def moved(name: str) -> float:
        return after.get((name, bucket), 0) - before.get((name, bucket), 0)

    assert moved("bloodcell_source_events_total") == 1
    assert moved("bloodcell_source_retries_total") == 1
    assert moved("bloodcell_dead_letters_total") == 1
    assert after[("bloodcell_source_backlog", ())] == 0


def test_threads_taking_their_first_event_at_once_register_the_metrics_once() -> None:
    # a fresh process, so the instruments are not made yet; a barrier lines the threads up
    code = """
import threading
from bloodcell import metrics
barrier = threading.Barrier(16)
errors = []
def first_event():
    barrier.wait()
    try:
        metrics.count_outcome("preprocess", "preprocessed", 0.01)
    except Exception as exc:
        errors.append(exc)
threads = [threading.Thread(target=first_event) for _ in range(16)]
for t in threads: t.start()
for t in threads: t.join()
assert not errors, errors
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 0, done.stderr
