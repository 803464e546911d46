"""The QC panel in the registry bucket, run exactly as the stack classifies: on promotion and daily.

Layout, beside the registry's own objects in ``MODEL_BUCKET``:

- ``qc/panels/<version>/<n>``: copies of the panel's images, so archive retention or erasure
  cannot change what the panel is; ``qc/panels/<version>.json`` the panel document;
- ``qc/panel.json``: the panel in use (a copy of the latest document);
- ``qc/runs/<time>-<random>.json``: one document per run, never rewritten (the QC history);
- ``qc/state.json``: the baseline and the latest verdict, read by the History page.

A run classifies each panel image with ``make_tensor`` and the predictor ``ActiveModel``
serves from the registry's pointer: the predict function's own path (LiteRT and numpy, no
TensorFlow), so QC measures what the stack answers, calibration fallbacks included.
``open_registry`` returns a registry whose activate, promote and rollback run the QC; the
daily runs are ``qcdaily``'s.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bloodcell.calibration import qc
from bloodcell.calibration.cells import Loader
from bloodcell.calibration.core import WBC_CLASSES
from bloodcell.calibration.registry import AuditEntry, Registry, new_version
from bloodcell.calibration.runtime import ActiveModel
from bloodcell.errors import MalformedDocument, ObjectNotFound, RejectedInput
from bloodcell.imaging import ImageLimits
from bloodcell.names import escape
from bloodcell.results import Result, iso, now_iso
from bloodcell.settings import Settings
from bloodcell.storage import Storage

log = logging.getLogger(__name__)
PANEL = "qc/panel.json"
PANELS = "qc/panels/"
RUNS = "qc/runs/"
STATE = "qc/state.json"
DAILY = "daily"
MAX_RECENT = 5000  # newest results read for the unfamiliar share: bounded cost on a busy day
JSON = "application/json"


class QcStore:
    def __init__(self, storage: Storage, bucket: str) -> None:
        self.storage = storage
        self.bucket = bucket

    def panel(self) -> qc.Panel | None:
        try:
            return qc.Panel.from_json(self.storage.read(self.bucket, PANEL)[0])
        except ObjectNotFound:
            return None

    def image(self, cell: qc.PanelCell) -> bytes:
        return self.storage.read(self.bucket, cell.key)[0]

    def add_image(self, version: str, index: int, data: bytes) -> str:
        key = f"{PANELS}{version}/{index:05d}"
        self.storage.write(self.bucket, key, data, if_absent=True)
        return key

    def set_panel(self, panel: qc.Panel) -> None:
        body = panel.to_json()
        self.storage.write(
            self.bucket, f"{PANELS}{panel.version}.json", body, content_type=JSON, if_absent=True
        )
        self.storage.write(self.bucket, PANEL, body, content_type=JSON)

    def state(self) -> qc.QcState | None:
        try:
            return qc.QcState.from_json(self.storage.read(self.bucket, STATE)[0])
        except (ObjectNotFound, MalformedDocument):
            return None

    def last_run_at(self) -> datetime | None:
        state = self.state()
        return None if state is None else datetime.fromisoformat(state.last_run_at)

    def add_run(self, run: qc.QcRun) -> None:
        self.storage.write(
            self.bucket, f"{RUNS}{run.run}.json", run.to_json(), content_type=JSON, if_absent=True
        )
        # the state goes last: it names a run that exists

    def write_state(self, state: qc.QcState) -> None:
        self.storage.write(self.bucket, STATE, state.to_json(), content_type=JSON)

    def runs(self, last: int = 20) -> list[qc.QcRun]:
        names = sorted(info.name for info in self.storage.list(self.bucket, RUNS))[-last:]
        out = []
        for name in names:
            try:
                out.append(qc.QcRun.from_json(self.storage.read(self.bucket, name)[0]))
            except (MalformedDocument, ObjectNotFound):
                continue
        return out


def limits_of(settings: Settings) -> ImageLimits:
    return ImageLimits(max_bytes=settings.max_upload_bytes, max_pixels=settings.max_image_pixels)


def set_panel(
    store: QcStore,
    items: list[tuple[str, str, Loader]],
    limits: ImageLimits,
    source: str,
    origin: str,
    by: str,
) -> qc.Panel:
    """Copy the usable verified white cells into the registry and make them the panel in use."""
    from bloodcell.pipeline import make_tensor

    version = new_version()
    cells: list[qc.PanelCell] = []
    for name, label, load in items:
        if label not in WBC_CLASSES:
            continue  # agreement is about the four types; "other" cells have no single right answer
        data = load()
        try:
            make_tensor(data, limits)
        except RejectedInput as exc:
            log.warning("qc panel: leaving out %s: %s", escape(name), escape(exc.reason))
            continue
        key = store.add_image(version, len(cells), data)
        cells.append(qc.PanelCell(name, label, key, hashlib.sha256(data).hexdigest()))
    if not cells:
        raise RejectedInput("no usable verified white cells were found for the QC panel")
    panel = qc.Panel(version, now_iso(), by, source, origin, tuple(cells))
    store.set_panel(panel)
    log.info("qc panel %s set by %s: %d cells", panel.version, escape(by), len(cells))
    return panel


def recent_unfamiliar(storage: Storage, bucket: str, since: datetime) -> tuple[int, float | None]:
    """How many cells were classified since ``since``, and the share of them that are unfamiliar."""
    infos = [i for i in storage.list(bucket) if i.name.endswith(".json") and i.updated >= since]
    infos.sort(key=lambda i: i.updated, reverse=True)
    flags: list[bool] = []
    for info in infos[:MAX_RECENT]:
        try:
            result = Result.from_json(storage.read(bucket, info.name)[0])
        except (MalformedDocument, ObjectNotFound, RejectedInput):  # not a result, or gone
            continue
        if result.is_classified and result.unfamiliar is not None:
            flags.append(result.unfamiliar)
    if len(flags) < qc.MIN_RECENT_CELLS:
        return len(flags), None
    return len(flags), round(sum(flags) / len(flags), 4)


def run_qc(
    settings: Settings, registry: Registry, trigger: str, by: str, now: datetime | None = None
) -> qc.QcRun | None:
    """One pass over the panel with the active model, judged and stored; None when no panel is set."""
    from bloodcell.model import default_model_dir, load_classifier
    from bloodcell.pipeline import make_tensor

    store = QcStore(registry.storage, registry.bucket)
    panel = store.panel()
    if panel is None:
        log.info("qc: no panel is set (bloodcell qc panel set): nothing to run after %s", trigger)
        return None
    moment = now or datetime.now(UTC)
    base = load_classifier(settings.model_dir or default_model_dir(), settings.model_threads)
    predictor = ActiveModel(base, registry).current()  # what the next event would be answered with
    limits = limits_of(settings)
    answered, flags = [], []
    for cell in panel.cells:
        prediction = predictor.predict(make_tensor(store.image(cell), limits))
        answered.append(prediction.label)
        flags.append(None if prediction.ood_score is None else prediction.unfamiliar)
    measured = qc.measure([c.label for c in panel.cells], answered, flags)
    interval = timedelta(hours=settings.qc_interval_hours)
    recent_cells, recent_share = recent_unfamiliar(
        registry.storage, settings.result_bucket, moment - interval
    )
    previous = store.state()
    run_id = moment.strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(3)
    if previous is None or previous.panel_version != panel.version:
        baseline_run, baseline = run_id, measured.agreement  # the panel's first run
    else:
        baseline_run, baseline = previous.baseline_run, previous.baseline_agreement
    reasons = qc.drift_reasons(
        measured.agreement, baseline, measured.panel_unfamiliar, recent_share, settings.qc_ood_jump
    )
    info = predictor.info
    run = qc.QcRun(
        run_id, iso(moment), trigger, by, panel.version, info.name, info.version, info.calibration,
        len(panel.cells), measured.agreement, measured.per_class, measured.panel_unfamiliar,
        recent_cells, recent_share, baseline_run, baseline, bool(reasons), reasons,
    )  # fmt: skip
    store.add_run(run)  # before the state, which names it
    if qc.moves_baseline(trigger, reasons):
        baseline_run, baseline = run.run, run.agreement
    was_alarm = previous is not None and previous.alarm
    since = (previous.since if previous is not None and was_alarm else run.at) if reasons else ""
    store.write_state(
        qc.QcState(panel.version, baseline_run, baseline, run.run, run.at, bool(reasons), reasons, since)
    )
    log.info(
        "qc run %s (%s): agreement %.1f%% on %d cells, baseline %.1f%%, calibration %s",
        run.run,
        trigger,
        100 * run.agreement,
        run.cells,
        100 * run.baseline_agreement,
        run.calibration,
    )
    _log_change(run, was_alarm)
    if trigger != DAILY:  # the daily runs are in the QC history; the audit trail keeps the actions
        detail = {"run": run.run, "trigger": trigger, "agreement": run.agreement, "alarm": run.alarm}
        registry.audit(
            AuditEntry("qc", run.calibration, None, by, run.at, run.model_name, run.model_version, detail)
        )
    return run


def _log_change(run: qc.QcRun, was_alarm: bool) -> None:
    """One line per change of the alarm's state, whoever ran the QC and however often."""
    model = f"model {escape(run.model_name)} {escape(run.model_version)}, calibration {run.calibration}"
    if run.alarm and not was_alarm:
        log.warning("qc drift alarm raised (%s): %s", model, escape("; ".join(run.reasons)))
    elif was_alarm and not run.alarm:
        log.info("qc drift alarm cleared (%s): panel agreement %.1f%%", model, 100 * run.agreement)


def alarm_message(storage: Storage, bucket: str) -> str | None:
    """What the History page shows while the drift alarm is raised; None otherwise."""
    state = QcStore(storage, bucket).state()
    if state is None or not state.alarm:
        return None
    return f"Drift alarm since {state.since.replace('T', ' ')[:16]} UTC: " + "; ".join(state.reasons) + "."


def promotion_hook(settings: Settings) -> Callable[[Registry, str, str], None]:
    def after_change(registry: Registry, action: str, by: str) -> None:
        try:
            run_qc(settings, registry, action, by)
        except Exception:  # the model has changed already: a failed QC must not undo or hide that
            log.exception("qc after %s failed; the next daily run or `bloodcell qc run` measures it", action)

    return after_change


def open_registry(settings: Settings, storage: Storage | None = None) -> Registry:
    """The registry on the pipeline's storage, running the QC panel after every change of model."""
    from bloodcell.storage import open_storage

    return Registry(storage or open_storage(settings), settings.model_bucket, promotion_hook(settings))
