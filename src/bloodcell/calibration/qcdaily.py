"""The QC panel once every ``QC_INTERVAL_HOURS`` while ``bloodcell serve`` runs.

The last run of any kind (a promotion's included) is read from the registry, so a restart
does not run the panel again before it is due, and a stack that was down for days runs it at
start. The clock and the wait are injected: tests step through days without sleeping.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bloodcell.calibration import qc
from bloodcell.calibration.qcrun import DAILY, QcStore, run_qc
from bloodcell.calibration.registry import Registry
from bloodcell.settings import Settings
from bloodcell.storage import Storage

log = logging.getLogger(__name__)
RETRY_SECONDS = 3600.0  # a daily run that failed is tried again this much later (or at the interval)


class DailyQc:
    """Runs ``run`` whenever ``interval`` has passed since the last QC run of any kind."""

    def __init__(
        self,
        run: Callable[[datetime], object],
        last_run_at: Callable[[], datetime | None],
        interval: timedelta,
        clock: Callable[[], datetime],
        wait: Callable[[float], bool],
    ) -> None:
        self.run, self.last_run_at, self.interval = run, last_run_at, interval
        self.clock, self.wait = clock, wait

    def step(self) -> float:
        """Run if due; the seconds to wait before the next step."""
        now = self.clock()
        try:
            delay = qc.next_delay(now, self.last_run_at(), self.interval)
            if delay > 0:
                return delay
            self.run(now)
        except Exception:  # a registry or disk hiccup: tried again later, the stack goes on
            log.exception("daily qc failed; tried again later")
            return min(RETRY_SECONDS, self.interval.total_seconds())
        return self.interval.total_seconds()

    def loop(self) -> None:
        while not self.wait(self.step()):
            pass


def start_daily_qc(settings: Settings, storage: Storage, stop: threading.Event) -> threading.Thread:
    """``bloodcell serve``: the QC panel at start when a day has passed, then every ``QC_INTERVAL_HOURS``."""
    registry = Registry(storage, settings.model_bucket)
    store = QcStore(storage, settings.model_bucket)
    daily = DailyQc(
        lambda now: run_qc(settings, registry, DAILY, "bloodcell serve", now),
        store.last_run_at,
        timedelta(hours=settings.qc_interval_hours),
        clock=lambda: datetime.now(UTC),
        wait=stop.wait,
    )
    thread = threading.Thread(target=daily.loop, name="qc-daily", daemon=True)
    thread.start()
    return thread
