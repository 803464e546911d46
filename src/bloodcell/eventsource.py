"""A bucket event source: announced objects become GCS-style CloudEvents POSTed to a sink.

Objects are *announced*, never found by listing on a timer: folder buckets by inotify
(``bloodcell.watch``), object stores by their own bucket notifications
(``bloodcell.receiver``). A paginated reconcile at start-up re-announces every object
without downstream output, so nothing dropped while the stack was down is lost; memory
holds only the work still queued, never a record of everything ever seen.

Delivery is at-least-once with a bound: a failed delivery is retried with capped
exponential backoff up to ``max_attempts`` times, then dead-lettered
(``bloodcell.deadletters``). Workers catch everything, so one odd object can never
shrink the pool; the pool is also topped up should a thread die anyway.

A full disk is no failure of the event: a sink answering 507 (Insufficient Storage, what
the function servers answer on ENOSPC or EDQUOT) is retried every ``backoff[1]`` seconds
without counting an attempt, so nothing is dead-lettered for it and everything completes
once space returns, with no restart. A dead-letter record that cannot be written (the
disk is full there too) stays in memory and is written again every second until it is.

Each sink has its own queue and its own share of the workers (a lane), as each Knative
trigger has its own dispatcher: with one queue, a burst of 500 uploads would hold every
tensor behind the last upload, so predict would idle while preprocess worked and then
the other way round, one core at a time.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import urllib3

from bloodcell.deadletters import DeadLetters
from bloodcell.events import gcs_event, structured_http
from bloodcell.metrics import count_source
from bloodcell.names import escape, hidden
from bloodcell.settings import Settings
from bloodcell.storage import ObjectInfo, Storage

log = logging.getLogger(__name__)

Done = Callable[[ObjectInfo], bool]


def _tls_options(verify: bool | str) -> tuple[str, str | None, str | None]:
    """urllib3's TLS options for what requests calls ``verify`` (a flag, or a CA file or folder)."""
    if verify is False:
        return "CERT_NONE", None, None
    if verify is True:
        import certifi  # what requests verifies against, when no bundle is named

        verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or certifi.where()
    folder = os.path.isdir(verify)
    return "CERT_REQUIRED", None if folder else verify, verify if folder else None


@dataclass(order=True)
class _Delivery:
    due: float
    seq: int
    info: ObjectInfo = field(compare=False)
    url: str = field(compare=False)
    attempt: int = field(default=0, compare=False)
    first_failed: str = field(default="", compare=False)
    error: str = field(default="", compare=False)


@dataclass
class _Lane:
    """One sink's deliveries, due first, and the workers that serve only them."""

    url: str
    size: int
    heap: list[_Delivery] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)
    workers: list[threading.Thread] = field(default_factory=list)


DISK_FULL = "HTTP 507"  # the sink's disk (or quota) is full: wait, never count it
_MAX_UNWRITTEN = 100_000  # dead letters held in memory while they cannot be written


# A hidden name is answered (rejected) like any unusable one, but only once it has stayed
# put this long: rsync and many editors write ``.name.XXXXXX`` and rename it within
# milliseconds, and preprocess answers nothing for an object that is gone by then.
HIDDEN_GRACE_SECONDS = 2.0


class EventSource:
    def __init__(
        self,
        storage: Storage,
        routes: Mapping[str, str],
        *,
        concurrency: int = 4,
        is_done: Mapping[str, Done] | None = None,
        backoff: tuple[float, float] = (0.2, 10.0),
        timeout: float = 60.0,
        max_attempts: int = 20,
        dead_letters: DeadLetters | None = None,
        overrides: Mapping[str, str] | None = None,
        verify: bool | str = True,
    ) -> None:
        self.storage = storage
        self.routes = dict(routes)
        self.concurrency = concurrency
        self.is_done = dict(is_done or {})
        self.backoff = backoff
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.dead_letters = dead_letters
        self.overrides = dict(overrides or {})
        self.verify = verify
        self.delivered = 0
        self.attempts = 0
        self.dead_lettered = 0
        self.waiting_for_space = 0  # deliveries held back by a full disk right now
        self._unwritten: list[tuple[_Delivery, int]] = []  # dead letters not yet recorded
        self._queued: set[tuple[str, str, str]] = set()  # only what waits: bounded by the backlog
        self._seq = itertools.count()
        self._lock = threading.Lock()  # the counters and _queued
        sinks = sorted(set(self.routes.values()))
        # `concurrency` bounds the whole source; each sink gets an equal share, at least one
        share = max(1, concurrency // max(1, len(sinks)))
        self._lanes = {url: _Lane(url, share) for url in sinks}
        self._http: urllib3.PoolManager | None = None
        self._http_lock = threading.Lock()

    # ---- discovery ----

    def announce(self, info: ObjectInfo) -> bool:
        """Queue one object version for delivery, unless that very version already waits."""
        if info.bucket not in self.routes:
            return False
        key = (info.bucket, info.name, info.generation)
        with self._lock:
            if key in self._queued:
                return False
            self._queued.add(key)
        count_source("queued", info.bucket)
        self._enqueue(info, delay=HIDDEN_GRACE_SECONDS if hidden(info.name) else 0.0)
        return True

    def reconcile(self) -> int:
        """At start-up: announce every object whose downstream output is missing.

        The listing is consumed page by page (a generator), so memory follows the
        objects that need work, not the size of the bucket.
        """
        queued = 0
        for bucket in self.routes:
            done = self.is_done.get(bucket)
            for info in self._list_until_reachable(bucket):
                if done is not None and self._safe_done(done, info):
                    continue
                queued += self.announce(info)
        log.info("event source reconciled: %d object(s) without output re-emitted", queued)
        return queued

    def _list_until_reachable(self, bucket: str) -> Iterator[ObjectInfo]:
        """The store may still be starting (beside us in a pod): wait for it, don't crash."""
        delay = self.backoff[0]
        while True:
            try:
                yield from self.storage.list(bucket)
                return
            except Exception as exc:
                log.warning("cannot list bucket %s yet (%s); retrying in %.1fs", bucket, exc, delay)
                time.sleep(delay)
                delay = min(self.backoff[1], delay * 2)

    def _safe_done(self, done: Done, info: ObjectInfo) -> bool:
        try:
            return done(info)
        except Exception as exc:  # a storage hiccup must not stop start-up: emit, functions dedupe
            log.warning("could not check %s: %s", escape(f"{info.bucket}/{info.name}"), exc)
            return False

    # ---- delivery ----

    def _enqueue(
        self, info: ObjectInfo, attempt: int = 0, delay: float = 0.0, item: _Delivery | None = None
    ) -> None:
        lane = self._lanes[self.routes[info.bucket]]
        with lane.cond:
            heapq.heappush(
                lane.heap,
                _Delivery(
                    time.monotonic() + delay,
                    next(self._seq),
                    info,
                    lane.url,
                    attempt,
                    item.first_failed if item else "",
                    item.error if item else "",
                ),
            )
            lane.cond.notify()

    def backlog(self) -> int:
        total = 0
        for lane in self._lanes.values():
            with lane.cond:
                total += len(lane.heap)
        return total

    def _pool(self) -> urllib3.PoolManager:
        """One keep-alive pool for every worker (and the receive adapter's threads).

        urllib3 directly, not a requests Session: requests re-reads ``~/.netrc``, the proxy
        variables and the CA-bundle path on every request, which profiling showed to be a
        third of the event source's CPU per event. Sinks are local or in-cluster
        (``K_SINK``), so no proxy is consulted; TLS is verified as requests would, against
        ``K_CA_CERTS`` when given, else ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``, else certifi.
        """
        with self._http_lock:
            if self._http is None:
                cert_reqs, ca_certs, ca_cert_dir = _tls_options(self.verify)
                self._http = urllib3.PoolManager(
                    num_pools=max(4, len(self._lanes)),
                    # lanes may share a host (one broker, two paths): room for every worker,
                    # and never more: without block=True urllib3 opens a fresh connection
                    # whenever its queue is momentarily empty, and under CPU load test_load
                    # saw 11 connections to one host from 4 workers
                    maxsize=sum(lane.size for lane in self._lanes.values()),
                    block=True,
                    retries=False,  # retries are ours: bounded, with backoff, then dead-lettered
                    timeout=urllib3.Timeout(total=self.timeout),
                    cert_reqs=cert_reqs,
                    ca_certs=ca_certs,
                    ca_cert_dir=ca_cert_dir,
                )
            return self._http

    def deliver(self, info: ObjectInfo, url: str) -> str | None:
        """POST the object's CloudEvent (structured mode); None on 2xx, else why not."""
        headers, body = structured_http(gcs_event(info, self.overrides))
        try:
            response = self._pool().request(
                "POST", url, body=body, headers=headers, preload_content=True, pool_timeout=self.timeout
            )
        except urllib3.exceptions.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        if 200 <= response.status < 300:
            return None
        return f"HTTP {response.status}"

    def _next(self, lane: _Lane, stop: threading.Event) -> _Delivery | None:
        with lane.cond:
            while not stop.is_set():
                now = time.monotonic()
                if lane.heap and lane.heap[0].due <= now:
                    return heapq.heappop(lane.heap)
                wait = lane.heap[0].due - now if lane.heap else 0.5
                lane.cond.wait(timeout=min(wait, 0.5))
        return None

    def _attempt(self, item: _Delivery) -> None:
        try:
            error = self.deliver(item.info, item.url)
        except Exception as exc:  # a bug or an odd object: a failed attempt, never a dead worker
            log.exception("delivery of %s raised", escape(f"{item.info.bucket}/{item.info.name}"))
            error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self.attempts += 1
        waited = item.error == DISK_FULL
        if error is None:
            with self._lock:
                self.delivered += 1
                self._queued.discard((item.info.bucket, item.info.name, item.info.generation))
                self.waiting_for_space -= waited
                space_back = waited and self.waiting_for_space == 0
            count_source("delivered", item.info.bucket)
            if space_back:
                log.warning("disk space is back: every delivery that waited for it went through")
            return
        if error == DISK_FULL:
            self._wait_for_space(item, waited)
            return
        if waited:
            with self._lock:
                self.waiting_for_space -= 1
        self._failed(item, error)

    def _wait_for_space(self, item: _Delivery, waiting: bool) -> None:
        """The sink's disk is full: try again later, as often as it takes, never dead-letter."""
        with self._lock:
            self.waiting_for_space += not waiting
            count = self.waiting_for_space
        if not waiting:  # one line per event that starts waiting
            log.error(
                "the disk is full: %s waits for space (%d event(s) waiting); retried every %.0fs, "
                "never dead-lettered for it",
                escape(f"{item.info.bucket}/{item.info.name}"),
                count,
                self.backoff[1],
            )
        item.error = DISK_FULL
        self._enqueue(item.info, item.attempt, self.backoff[1], item)

    def _failed(self, item: _Delivery, error: str) -> None:
        attempt = item.attempt + 1
        item.error = error
        item.first_failed = item.first_failed or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        where = escape(f"{item.info.bucket}/{item.info.name}")
        if attempt >= self.max_attempts:
            self._dead_letter(item, attempt)
            return
        count_source("retry", item.info.bucket)
        low, high = self.backoff
        delay = min(high, low * 2**item.attempt) * random.uniform(0.75, 1.25)
        if attempt in (1, 4) or attempt % 10 == 0:
            log.warning(
                "delivery of %s to %s failed (attempt %d of %d: %s); retrying in %.1fs",
                where,
                item.url,
                attempt,
                self.max_attempts,
                escape(error),
                delay,
            )
        self._enqueue(item.info, attempt, delay, item)

    def _dead_letter(self, item: _Delivery, attempts: int) -> None:
        where = escape(f"{item.info.bucket}/{item.info.name}")
        log.error(
            "delivery of %s to %s failed %d times (%s): dead-lettered",
            where,
            item.url,
            attempts,
            escape(item.error),
        )
        count_source("dead-letter", item.info.bucket)
        with self._lock:
            self.dead_lettered += 1
            self._queued.discard((item.info.bucket, item.info.name, item.info.generation))
        if self.dead_letters is not None:
            with self._lock:
                if len(self._unwritten) < _MAX_UNWRITTEN:
                    self._unwritten.append((item, attempts))
                else:
                    log.error("too many unwritten dead letters: the record of %s is dropped", where)
            self.flush_dead_letters()

    def flush_dead_letters(self) -> int:
        """Write the dead-letter records still held in memory; how many are left.

        A record that cannot be written (a full disk) is kept and tried again, each second,
        by ``run``: the History page lists it once space returns."""
        if self.dead_letters is None:
            return 0
        with self._lock:
            pending, self._unwritten = self._unwritten, []
        kept: list[tuple[_Delivery, int]] = []
        for item, attempts in pending:
            try:
                self.dead_letters.record(item.info, item.url, attempts, item.error, item.first_failed)
            except Exception as exc:
                if not kept:  # one line per flush, not one per record
                    log.error(
                        "could not write the dead-letter record of %s (%s); kept in memory, retried",
                        escape(f"{item.info.bucket}/{item.info.name}"),
                        escape(f"{type(exc).__name__}: {exc}"),
                    )
                kept.append((item, attempts))
        with self._lock:
            self._unwritten[:0] = kept
            return len(self._unwritten)

    def _worker(self, lane: _Lane, stop: threading.Event) -> None:
        while not stop.is_set():
            item = None
            try:
                item = self._next(lane, stop)
                if item is None:
                    return
                self._attempt(item)
            except Exception:
                log.exception("delivery worker: unexpected error; it carries on")
                if item is not None:
                    self._failed(item, "internal error in the event source")

    @classmethod
    def for_settings(
        cls, settings: Settings, storage: Storage, routes: Mapping[str, str], verify: bool | str = True
    ) -> EventSource:
        """The one way `bloodcell serve` and `bloodcell eventsource` build a source from settings.

        "Done" is asked of the pipeline's own idempotency checks, so the reconcile and
        the functions agree on what still needs an event; dead letters are kept in the
        store only where there is no platform dead-letter sink (folder buckets).
        """
        from bloodcell.pipeline import Pipeline

        pipeline = Pipeline(settings, storage)
        done = {settings.upload_bucket: pipeline.upload_done, settings.tensor_bucket: pipeline.tensor_done}
        local = settings.storage == "local"
        return cls(
            storage,
            routes,
            concurrency=settings.event_source_concurrency,
            is_done={bucket: check for bucket, check in done.items() if bucket in routes},
            max_attempts=settings.event_source_max_attempts,
            dead_letters=DeadLetters(storage, settings.dead_letter_bucket) if local else None,
            overrides=dict(settings.ce_overrides),
            verify=verify,
        )

    def start_workers(self, stop: threading.Event) -> None:
        """Bring every lane to full strength: start workers that are missing or died."""
        for lane in self._lanes.values():
            lane.workers = [w for w in lane.workers if w.is_alive()]
            while len(lane.workers) < lane.size:
                worker = threading.Thread(
                    target=self._worker, args=(lane, stop), name=f"deliver-{next(self._seq)}", daemon=True
                )
                worker.start()
                lane.workers.append(worker)

    @property
    def workers(self) -> list[threading.Thread]:
        return [worker for lane in self._lanes.values() for worker in lane.workers]

    def run(
        self,
        stop: threading.Event,
        ready: threading.Event | None = None,
        announcer: Callable[[EventSource, threading.Event], Callable[[], None]] | None = None,
    ) -> None:
        """Workers, then the announcer (watch or receive; started before the reconcile so
        nothing written meanwhile is missed), then the reconcile; until ``stop`` is set."""
        self.start_workers(stop)
        close = announcer(self, stop) if announcer is not None else None
        try:
            self.reconcile()
            if ready is not None:
                ready.set()
            while not stop.wait(1.0):
                self.start_workers(stop)
                if self._unwritten:
                    self.flush_dead_letters()
        finally:
            if close is not None:
                close()
            for lane in self._lanes.values():
                with lane.cond:
                    lane.cond.notify_all()
            for worker in self.workers:
                worker.join(timeout=5)
            if self.flush_dead_letters():
                log.error("%d dead-letter record(s) could not be written before exit", len(self._unwritten))
