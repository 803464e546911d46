"""A bucket event source: new objects become GCS-style CloudEvents POSTed to a sink.

The same program serves the local stack (folder buckets, one sink per bucket) and
Knative (MinIO through the S3 backend, everything to ``K_SINK``). It lists its
buckets on a short interval rather than relying on notifications, which makes it
work against any backend and lets it reconcile at start-up: objects that have no
downstream output yet are emitted again, so nothing dropped while the stack was
down is lost. Delivery is at-least-once: failures are retried with capped
exponential backoff, and a bounded pool of workers keeps concurrency in check.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

import requests

from bloodcell.events import gcs_event
from bloodcell.storage import ObjectInfo, Storage

log = logging.getLogger(__name__)

Done = Callable[[ObjectInfo], bool]


@dataclass(order=True)
class _Delivery:
    due: float
    seq: int
    info: ObjectInfo = field(compare=False)
    url: str = field(compare=False)
    attempt: int = field(default=0, compare=False)


class EventSource:
    def __init__(
        self,
        storage: Storage,
        routes: Mapping[str, str],
        *,
        poll_seconds: float = 0.2,
        concurrency: int = 4,
        is_done: Mapping[str, Done] | None = None,
        settle: bool | Collection[str] = False,
        backoff: tuple[float, float] = (0.2, 10.0),
        timeout: float = 60.0,
    ) -> None:
        self.storage = storage
        self.routes = dict(routes)
        self.poll_seconds = poll_seconds
        self.concurrency = concurrency
        self.is_done = dict(is_done or {})
        # Folder buckets can show a file while `cp` is still writing it: wait until
        # it looks the same on two successive polls before announcing it. True settles
        # every bucket; a collection of names only those (a bucket filled by atomic
        # renames, like the tensors preprocess writes, need not pay a poll of delay).
        self.settle = set(self.routes) if settle is True else set(settle or ())
        self.backoff = backoff
        self.timeout = timeout
        self.delivered = 0
        self._seen: dict[tuple[str, str], str] = {}
        self._pending: dict[tuple[str, str], tuple[str, int]] = {}
        self._heap: list[_Delivery] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._wake = threading.Event()
        self._local = threading.local()

    # ---- discovery ----

    def reconcile(self) -> int:
        """At start-up: queue every object whose downstream output is missing."""
        queued = 0
        for bucket in self.routes:
            done = self.is_done.get(bucket)
            for info in self._list_until_reachable(bucket):
                key = (bucket, info.name)
                self._seen[key] = info.generation
                if done is not None and self._safe_done(done, info):
                    continue
                self._enqueue(info)
                queued += 1
        log.info("event source reconciled: %d object(s) without output re-emitted", queued)
        return queued

    def _list_until_reachable(self, bucket: str) -> list[ObjectInfo]:
        """The store may still be starting (MinIO beside us in a pod): wait for it, don't crash."""
        delay = self.backoff[0]
        while True:
            try:
                return list(self.storage.list(bucket))
            except Exception as exc:
                log.warning("cannot list bucket %s yet (%s); retrying in %.1fs", bucket, exc, delay)
                time.sleep(delay)
                delay = min(self.backoff[1], delay * 2)

    def _safe_done(self, done: Done, info: ObjectInfo) -> bool:
        try:
            return done(info)
        except Exception as exc:  # a storage hiccup must not stop start-up: emit, functions dedupe
            log.warning("could not check %s/%s: %s", info.bucket, info.name, exc)
            return False

    def poll_once(self) -> int:
        found = 0
        for bucket in self.routes:
            try:
                listing = list(self.storage.list(bucket))
            except Exception as exc:
                log.warning("cannot list bucket %s: %s", bucket, exc)
                continue
            for info in listing:
                key = (bucket, info.name)
                if self._seen.get(key) == info.generation:
                    continue
                if bucket in self.settle and self._pending.get(key) != (info.generation, info.size):
                    self._pending[key] = (info.generation, info.size)
                    continue
                self._pending.pop(key, None)
                self._seen[key] = info.generation
                self._enqueue(info)
                found += 1
        return found

    # ---- delivery ----

    def _enqueue(self, info: ObjectInfo, attempt: int = 0, delay: float = 0.0) -> None:
        with self._cond:
            heapq.heappush(
                self._heap,
                _Delivery(time.monotonic() + delay, next(self._seq), info, self.routes[info.bucket], attempt),
            )
            self._cond.notify()

    def backlog(self) -> int:
        with self._cond:
            return len(self._heap)

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
        return session

    def deliver(self, info: ObjectInfo, url: str) -> bool:
        attributes, data = gcs_event(info)
        headers = {f"ce-{k}": v for k, v in attributes.items() if k != "datacontenttype"}
        headers["Content-Type"] = "application/json"
        try:
            response = self._session().post(url, data=json.dumps(data), headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            log.debug("delivery of %s/%s failed: %s", info.bucket, info.name, exc)
            return False
        if 200 <= response.status_code < 300:
            return True
        log.debug("delivery of %s/%s answered %d", info.bucket, info.name, response.status_code)
        return False

    def _worker(self, stop: threading.Event) -> None:
        while not stop.is_set():
            with self._cond:
                while not stop.is_set():
                    now = time.monotonic()
                    if self._heap and self._heap[0].due <= now:
                        item = heapq.heappop(self._heap)
                        break
                    wait = self._heap[0].due - now if self._heap else 0.5
                    self._cond.wait(timeout=min(wait, 0.5))
                else:
                    return
            if self.deliver(item.info, item.url):
                with self._cond:
                    self.delivered += 1
                    drained = not self._heap
                if drained:  # list what the function just wrote now, not up to a poll later
                    self._wake.set()
                continue
            low, high = self.backoff
            delay = min(high, low * 2**item.attempt) * random.uniform(0.75, 1.25)
            if item.attempt in (0, 3) or item.attempt % 10 == 9:
                log.warning(
                    "delivery of %s/%s to %s failed (attempt %d); retrying in %.1fs",
                    item.info.bucket,
                    item.info.name,
                    item.url,
                    item.attempt + 1,
                    delay,
                )
            self._enqueue(item.info, item.attempt + 1, delay)

    def run(self, stop: threading.Event, ready: threading.Event | None = None) -> None:
        workers = [
            threading.Thread(target=self._worker, args=(stop,), name=f"deliver-{i}", daemon=True)
            for i in range(self.concurrency)
        ]
        for worker in workers:
            worker.start()
        self.reconcile()
        if ready is not None:
            ready.set()
        while not stop.is_set():
            self._wake.wait(self.poll_seconds)
            self._wake.clear()
            if not stop.is_set():
                self.poll_once()
        with self._cond:
            self._cond.notify_all()
        for worker in workers:
            worker.join(timeout=5)
