"""Prometheus metrics: what an operator alerts on, counted where it happens.

The function servers fork gunicorn workers, so their metrics use prometheus-client's
multiprocess mode: every process writes its values to memory-mapped files in
``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` sums them. That mode is chosen when
``prometheus_client`` is first imported, so ``prepare_multiprocess`` runs in the arbiter
before anything imports it, and the instruments below are made on first use. Without
prometheus-client installed every call here does nothing: counting never stops a function.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_SHM = "/dev/shm"
# An event's time in a function: from a cached result (milliseconds) to a cold model (seconds).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def prepare_multiprocess() -> Path:
    """An empty folder for this server's metric files, named in ``PROMETHEUS_MULTIPROC_DIR``.

    A folder the operator named is emptied of the last run's files (their counts belong to
    processes that are gone); otherwise a fresh one in memory (``/dev/shm``), else in the
    temporary folder, removed at exit.
    """
    named = os.environ.get(MULTIPROC_ENV)
    if named:
        folder = Path(named)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink(missing_ok=True)
    else:
        base = _SHM if os.path.isdir(_SHM) and os.access(_SHM, os.W_OK) else tempfile.gettempdir()
        folder = Path(tempfile.mkdtemp(prefix="bloodcell-metrics-", dir=base))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        os.environ[MULTIPROC_ENV] = str(folder)
    values = sys.modules.get("prometheus_client.values")
    if values is not None:  # imported already: instruments made from now on write files
        values.ValueClass = values.get_value_class()  # type: ignore[attr-defined]
    return folder


def worker_exited(pid: int) -> None:
    """gunicorn's ``child_exit``: a dead worker's live gauges stop counting."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class Instruments:
    events: Any
    outcomes: Any
    latency: Any
    retries: Any
    archive_pending: Any
    archive_completed: Any
    unfamiliar: Any
    source_events: Any
    source_delivered: Any
    source_retries: Any
    dead_letters: Any
    backlog: Any


_MADE: list[Instruments | None] = []
_MAKING = threading.Lock()


def instruments() -> Instruments | None:
    """Made once per process, under a lock: a function's threads take their first event at
    once, and a second registration of the same names is an error (DuplicateTimeseries)."""
    if not _MADE:
        with _MAKING:
            if not _MADE:
                _MADE.append(_make())
    return _MADE[0]


def _make() -> Instruments | None:
    try:
        from prometheus_client import Counter, Gauge, Histogram
    except ImportError:
        return None
    return Instruments(
        events=Counter("bloodcell_events", "objects named by events a function received", ["stage"]),
        outcomes=Counter(
            "bloodcell_results", "what a function did with each object, by outcome", ["stage", "status"]
        ),
        latency=Histogram(
            "bloodcell_event_seconds",
            "time a function spent on one object",
            ["stage"],
            buckets=LATENCY_BUCKETS,
        ),
        retries=Counter("bloodcell_retries", "objects a function answered 'retry' for", ["stage"]),
        archive_pending=Counter(
            "bloodcell_archive_pending", "results published with their archive copy pending (store down)"
        ),
        archive_completed=Counter(
            "bloodcell_archive_completed", "pending archive copies completed on a later delivery"
        ),
        unfamiliar=Counter(
            "bloodcell_unfamiliar", "classified results the model flagged as unlike its training data"
        ),
        source_events=Counter("bloodcell_source_events", "objects the event source queued", ["bucket"]),
        source_delivered=Counter("bloodcell_source_delivered", "events the sink accepted", ["bucket"]),
        source_retries=Counter("bloodcell_source_retries", "failed deliveries tried again", ["bucket"]),
        dead_letters=Counter(
            "bloodcell_dead_letters", "events given up on after every attempt failed", ["bucket"]
        ),
        backlog=Gauge("bloodcell_source_backlog", "events queued or waiting for a retry"),
    )


def count_outcome(stage: str, status: str, seconds: float, unfamiliar: bool | None = None) -> None:
    if (m := instruments()) is None:
        return
    m.events.labels(stage).inc()
    m.outcomes.labels(stage, status).inc()
    m.latency.labels(stage).observe(seconds)
    if status == "classified" and unfamiliar:
        m.unfamiliar.inc()


def count_retry(stage: str, seconds: float) -> None:
    if (m := instruments()) is None:
        return
    m.events.labels(stage).inc()
    m.retries.labels(stage).inc()
    m.latency.labels(stage).observe(seconds)


def count_archive(completed: bool) -> None:
    if (m := instruments()) is not None:
        (m.archive_completed if completed else m.archive_pending).inc()


def count_source(what: str, bucket: str) -> None:
    """``queued``, ``delivered``, ``retry`` or ``dead-letter``, for one event of ``bucket``."""
    if (m := instruments()) is None:
        return
    counter = {
        "queued": m.source_events,
        "delivered": m.source_delivered,
        "retry": m.source_retries,
        "dead-letter": m.dead_letters,
    }[what]
    counter.labels(bucket).inc()


def exposition() -> tuple[bytes, str]:
    """The text a scrape gets: every process's values in multiprocess mode, else this one's."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def serve_metrics(port: int, host: str = "0.0.0.0", backlog: Any = None) -> Any:
    """A ``/metrics`` server on its own port (the event source, which has no web framework)."""
    from prometheus_client import start_http_server

    if backlog is not None and (m := instruments()) is not None:
        m.backlog.set_function(backlog)
    server, _thread = start_http_server(port, addr=host)
    return server
