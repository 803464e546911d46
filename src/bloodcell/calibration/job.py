"""One calibration at a time in a worker thread, for the web page: it takes minutes, a page must not wait.

The thread does exactly what ``bloodcell calibrate --slides`` does (``cells`` then
``service.run``) and reports how far it got in a ``JobState`` a page polls. A second start
while one runs is refused, in this process; the web app is one process, and the command
line is for people who know what else is running.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

from bloodcell.calibration import cells, qcrun, service
from bloodcell.calibration.registry import VersionRecord
from bloodcell.errors import NoModelRuntime, RejectedInput
from bloodcell.imaging import ImageLimits
from bloodcell.names import escape
from bloodcell.results import now_iso
from bloodcell.settings import Settings
from bloodcell.storage import Storage

log = logging.getLogger(__name__)

IDLE, GATHERING, EMBEDDING, FITTING, DONE, FAILED = (
    "idle",
    "reading the verified labels",
    "reading the cells",
    "fitting and judging",
    "done",
    "failed",
)


class CalibrationBusy(RejectedInput):
    """A calibration is already running: one at a time."""


@dataclass(frozen=True)
class JobState:
    stage: str = IDLE
    by: str = ""
    started_at: str = ""
    slides: tuple[str, ...] | None = None  # None: every signed-off slide
    done: int = 0
    total: int = 0
    record: VersionRecord | None = None
    error: str | None = None

    @property
    def running(self) -> bool:
        return self.stage in (GATHERING, EMBEDDING, FITTING)

    @property
    def words(self) -> str:
        """One line a person reads: what is happening, or how it ended."""
        if self.stage == IDLE:
            return "No calibration has been started since the app started."
        what = ", ".join(self.slides) if self.slides else "every signed-off slide"
        head = f"Calibration from {what}, started by {self.by} at {self.started_at}: "
        if self.stage == EMBEDDING:
            return head + f"{self.stage}, {self.done} of {self.total}"
        if self.stage == FAILED:
            return head + f"failed: {self.error}"
        if self.stage == DONE and self.record is not None:
            verdict = (
                "promoted (now active)" if self.record.decision.get("promoted") else "refused by the gate"
            )
            return head + f"done: version {self.record.version}, {verdict}"
        return head + self.stage


class CalibrationJob:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = JobState()
        self._thread: threading.Thread | None = None

    @property
    def state(self) -> JobState:
        with self._lock:
            return self._state

    def _set(self, **changes: object) -> None:
        with self._lock:
            self._state = replace(self._state, **changes)  # type: ignore[arg-type]

    def start(
        self,
        settings: Settings,
        storage: Storage,
        archive: Storage,
        slides: tuple[str, ...] | None,
        by: str,
    ) -> None:
        """Start a calibration from these signed-off slides (None: all); CalibrationBusy if one runs."""
        with self._lock:
            if self._state.running:
                s = self._state
                raise CalibrationBusy(
                    f"a calibration is already running (started by {s.by} at {s.started_at})"
                )
            self._state = JobState(GATHERING, by, now_iso(), slides)
            self._thread = threading.Thread(
                target=self._run,
                args=(settings, storage, archive, slides, by),
                name="calibration",
                daemon=True,
            )
            self._thread.start()

    def wait(self, timeout: float | None = None) -> JobState:
        """Until the running calibration ends (tests, and a server shutting down)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.state

    def _run(
        self,
        settings: Settings,
        storage: Storage,
        archive: Storage,
        slides: tuple[str, ...] | None,
        by: str,
    ) -> None:
        from bloodcell.model import default_model_dir, load_classifier

        try:
            items = cells.verified_slides(archive, settings, slides)
            self._set(stage=EMBEDDING, total=len(items))
            counted = [(name, label, self._counted(load)) for name, label, load in items]
            model_dir = settings.model_dir or default_model_dir()
            limits = ImageLimits(max_bytes=settings.max_upload_bytes, max_pixels=settings.max_image_pixels)
            lab = cells.embed(load_classifier(model_dir, settings.model_threads), counted, limits)
            self._set(stage=FITTING)
            origin = ", ".join(slides) if slides else "every signed-off slide"
            registry = qcrun.open_registry(settings, storage)  # a promotion re-runs the QC panel
            outcome = service.run(registry, model_dir, lab, "slides", origin, by)
        except RejectedInput as exc:
            self._set(stage=FAILED, error=exc.reason)
            log.warning("calibrate (web) by %s refused: %s", escape(by), escape(exc.reason))
        except NoModelRuntime as exc:  # the web app's image: `bloodcell calibrate` runs elsewhere
            self._set(stage=FAILED, error=str(exc))
            log.warning("calibrate (web) by %s: %s", escape(by), exc)
        except Exception as exc:  # the page must hear of any failure, not wait for ever
            self._set(stage=FAILED, error=str(exc) or type(exc).__name__)
            log.exception("calibrate (web) by %s failed", escape(by))
        else:
            self._set(stage=DONE, record=outcome.record)

    def _counted(self, load: Callable[[], bytes]) -> Callable[[], bytes]:
        def counted() -> bytes:
            try:
                return load()
            finally:
                with self._lock:
                    self._state = replace(self._state, done=self._state.done + 1)

        return counted


JOB = CalibrationJob()  # the one per process: the web page's
