"""A bounded, thread-safe cache of parsed documents, least recently stored evicted first.

The slide pages poll every few seconds; parsing every review record, result and
reclassification record again each time would cost CPU in proportion to the lab's history,
while holding them all would cost memory in the same proportion. Keys name an object version
(or an immutable object), so an entry is never stale, only evicted.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    def __init__(self, size: int) -> None:
        self._items: OrderedDict[K, V] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            return self._items.get(key)

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)
