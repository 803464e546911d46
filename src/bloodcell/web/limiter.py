"""Failed sign-ins: counted before the password is checked, in a table that cannot grow.

Two pieces keep a flood of sign-ins from costing memory or evaluating guesses:

* ``FailureLimiter`` charges an attempt to every key it concerns (the account,
  the client address, or a known device) *before* the password hash runs, under
  one lock, so N concurrent guesses can never evaluate more than the limit. A
  right password refunds its charge. Its table holds at most ``max_keys`` keys,
  each at most ``limit`` timestamps; keys whose newest failure is older than the
  window are dropped, and past ``max_keys`` the least recently failed key goes.
  A refused attempt adds nothing.
* ``HashGate`` lets at most ``slots`` argon2 checks (64 MiB each) run at once,
  with ``reserved`` of them kept for known devices; a few more may wait briefly,
  and anything beyond is refused at once (``Busy``) rather than queued.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass


class TooManyAttempts(PermissionError):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many failed sign-ins: try again in {max(retry_after, 1):.0f} s")
        self.retry_after = max(retry_after, 1.0)


class Busy(PermissionError):
    """More sign-ins at once than the password checks allowed at once (and their short queue)."""

    def __init__(self) -> None:
        super().__init__("too many sign-ins at this moment: try again in a few seconds")
        self.retry_after = 2.0


@dataclass(frozen=True)
class Charge:
    keys: tuple[str, ...]
    at: float


class FailureLimiter:
    def __init__(
        self, window: float = 300.0, max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window, self.max_keys = window, max_keys
        self._clock = clock
        self._table: OrderedDict[str, deque[float]] = OrderedDict()  # least recently failed first
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._table)

    def _expire(self, now: float) -> None:
        while self._table:
            key, times = next(iter(self._table.items()))
            if times and now - times[-1] <= self.window:
                return
            del self._table[key]

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._table.get(key)
        while times and now - times[0] > self.window:
            times.popleft()
        return times

    def charge(self, limits: Mapping[str, int]) -> Charge:
        """Count one attempt against each key, or raise TooManyAttempts (counting nothing)."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            waits = [
                self.window - (now - times[0])
                for key, limit in limits.items()
                if (times := self._recent(key, now)) is not None and len(times) >= limit
            ]
            if waits:
                raise TooManyAttempts(max(waits))
            for key, limit in limits.items():
                times = self._table.get(key)
                if times is None:
                    times = self._table[key] = deque(maxlen=limit)
                times.append(now)
                self._table.move_to_end(key)
            while len(self._table) > self.max_keys:
                self._table.popitem(last=False)
            return Charge(tuple(limits), now)

    def refund(self, charge: Charge) -> None:
        """The attempt was not a failure (a right password, or it never ran)."""
        with self._lock:
            for key in charge.keys:
                times = self._table.get(key)
                if times is not None and charge.at in times:
                    times.remove(charge.at)
                    if not times:
                        del self._table[key]

    def clear(self, key: str) -> None:
        with self._lock:
            self._table.pop(key, None)


class HashGate:
    """At most ``slots`` password checks at once; ``reserved`` of them only for known devices."""

    def __init__(self, slots: int, reserved: int = 1, queue: int = 16, wait: float = 5.0) -> None:
        self.slots = max(1, slots)
        self.reserved = min(reserved, self.slots - 1)
        self.queue, self.wait = queue, wait
        self.running = self.waiting = 0
        self.peak = 0  # most checks ever running at once: the benchmark and tests read it
        self._cond: asyncio.Condition | None = None

    @asynccontextmanager
    async def slot(self, known_device: bool) -> AsyncIterator[None]:
        limit = self.slots if known_device else self.slots - self.reserved
        if self._cond is None:
            self._cond = asyncio.Condition()
        cond = self._cond
        if self.running >= limit and self.waiting >= self.queue:
            raise Busy()
        self.waiting += 1
        try:
            async with asyncio.timeout(self.wait), cond:
                await cond.wait_for(lambda: self.running < limit)
                self.running += 1
                self.peak = max(self.peak, self.running)
        except TimeoutError:
            raise Busy() from None
        finally:
            self.waiting -= 1
        try:
            yield
        finally:
            async with cond:
                self.running -= 1
                cond.notify_all()
