"""Retention on folder buckets: what the lifecycle rules do in the cloud, done by a sweep.

The meaning is Terraform's (``terraform/variables.tf``): an object goes that many days
after it was written, 0 keeps everything. Uploads go before results (and settings refuse
results that outlive nothing): an upload whose result is gone would be classified
again by the event source's start-up reconcile, so an upload never outlives its result.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

from bloodcell.settings import Settings
from bloodcell.storage import Storage

log = logging.getLogger(__name__)


def _expire(store: Storage, bucket: str, prefix: str, days: int, now: datetime) -> int:
    if days <= 0:
        return 0
    cutoff = now - timedelta(days=days)
    expired = [info.name for info in store.list(bucket, prefix) if info.updated < cutoff]
    return sum(store.delete(bucket, name) for name in expired)


def sweep(
    settings: Settings, storage: Storage, archive: Storage, now: datetime | None = None
) -> Counter[str]:
    """One pass over the buckets; how many objects went from each."""
    now = now or datetime.now(UTC)
    removed: Counter[str] = Counter()
    upload_days = settings.upload_retention_days
    plan = (
        (storage, settings.upload_bucket, "", upload_days),
        (storage, settings.tensor_bucket, "", upload_days),  # a tensor is its upload's copy
        (storage, settings.result_bucket, "", settings.result_retention_days),
        (archive, settings.archive_bucket, settings.archive_prefix, settings.archive_retention_days),
    )
    for store, bucket, prefix, days in plan:
        if count := _expire(store, bucket, prefix, days, now):
            removed[bucket] += count
    if removed:
        log.info(
            "retention sweep removed %s", " ".join(f"{bucket}={n}" for bucket, n in sorted(removed.items()))
        )
    return removed


def keeps_everything(settings: Settings) -> bool:
    return not (
        settings.upload_retention_days or settings.result_retention_days or settings.archive_retention_days
    )


def start_sweeper(settings: Settings, storage: Storage, archive: Storage, stop: threading.Event) -> None:
    """``bloodcell serve``: a sweep at start, then every ``RETENTION_SWEEP_HOURS``, until ``stop``."""
    if keeps_everything(settings):
        return

    def loop() -> None:
        while True:
            try:
                sweep(settings, storage, archive)
            except Exception:  # a full disk, a file in use: the next sweep tries again
                log.exception("retention sweep failed; retried at the next one")
            if stop.wait(settings.retention_sweep_hours * 3600):
                return

    threading.Thread(target=loop, name="retention-sweep", daemon=True).start()
