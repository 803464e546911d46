"""The QC panel with the real model: set and run, re-run on every promotion, the drift alarm, daily runs.

The panel is the stain-shifted "new lab" of tests/support/lab.py; nothing here assumes how good
the model is on it, only what the QC must measure, store and raise whatever it is.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from nicegui.testing import User

from bloodcell import cli
from bloodcell.calibration import cells, qc, qcdaily, qcrun, service
from bloodcell.calibration.core import Calibration, LabCells
from bloodcell.calibration.head import Head
from bloodcell.calibration.registry import Registry, new_version
from bloodcell.model import Prediction, read_model_info
from bloodcell.results import Result, Source, now_iso
from bloodcell.settings import Settings
from bloodcell.storage import LocalStorage, Storage
from bloodcell.storage.s3 import S3Storage
from tests.conftest import LAB_PER_CLASS
from tests.support.common import REPO
from tests.support.lab import archive_verified

WHO = "Zoë Ångström 李明"
WBC = ("EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL")
WBC_PER_LAB = 4 * LAB_PER_CLASS  # the lab's four white-cell folders; its "other" cells are left out


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["local", "s3"])
def where(request: pytest.FixtureRequest, settings: Settings) -> Iterator[tuple[Storage, Settings]]:
    """A registry bucket and a result bucket: folder buckets, or two buckets on moto's S3 server."""
    if request.param == "local":
        yield LocalStorage(settings.data_dir), settings
        return
    import boto3

    endpoint, bucket = request.getfixturevalue("s3_bucket")
    results = f"r-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=results)
    s3 = S3Storage(endpoint_url=endpoint, region="us-east-1")
    yield s3, dataclasses.replace(settings, model_bucket=bucket, result_bucket=results)


def _set_panel(settings: Settings, storage: Storage, lab_folder: Path) -> qc.Panel:
    store = qcrun.QcStore(storage, settings.model_bucket)
    items = cells.labelled_folder(lab_folder)
    return qcrun.set_panel(store, items, qcrun.limits_of(settings), "labelled folder", str(lab_folder), WHO)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "qc" in r.getMessage()]


def test_panel_set_and_run_round_trip(where: tuple[Storage, Settings], lab_folder: Path) -> None:
    storage, settings = where
    registry = Registry(storage, settings.model_bucket)

    panel = _set_panel(settings, storage, lab_folder)
    run = qcrun.run_qc(settings, registry, qc.FIRST, WHO)

    store = qcrun.QcStore(storage, settings.model_bucket)
    assert store.panel() == panel == qc.Panel.from_json(panel.to_json())
    assert len(panel.cells) == WBC_PER_LAB and set(panel.counts()) == set(WBC)
    assert all("血" in c.name and c.key.isascii() for c in panel.cells)
    assert run is not None and store.runs() == [run] and qc.QcRun.from_json(run.to_json()) == run
    assert (run.cells, run.calibration, run.panel_version, run.by) == (WBC_PER_LAB, None, panel.version, WHO)
    assert 0.0 <= run.agreement <= 1.0 and set(run.per_class) == set(panel.counts())
    assert (run.baseline_run, run.baseline_agreement, run.alarm) == (run.run, run.agreement, False)
    assert run.recent_cells == 0 and run.recent_unfamiliar is None
    state = store.state()
    assert state is not None and (state.last_run, state.alarm) == (run.run, False)
    [entry] = registry.audit_trail()
    assert (entry["action"], entry["version"], entry["detail"]["run"]) == ("qc", None, run.run)


def test_every_promotion_path_reruns_the_qc_naming_the_version(
    settings: Settings, local: LocalStorage, lab_folder: Path, embedded: LabCells, calibratable: Path
) -> None:
    registry = qcrun.open_registry(settings, local)
    _set_panel(settings, local, lab_folder)
    qcrun.run_qc(settings, registry, qc.FIRST, WHO)
    where = ["--data-dir", str(settings.data_dir), "--by", WHO]

    version = service.run(registry, calibratable, embedded, "labelled folder", "lab", WHO, force=True)
    registry.rollback(WHO)
    code = cli.main(["model", "activate", version.record.version, *where])

    runs = qcrun.QcStore(local, settings.model_bucket).runs()
    v = version.record.version
    assert code == 0
    assert [(r.trigger, r.calibration) for r in runs] == [
        (qc.FIRST, None),
        ("promote", v),
        ("rollback", None),
        ("activate", v),
    ]
    assert {r.model_version for r in runs} == {version.record.model_version}
    audited = [(e["version"], e["detail"]["trigger"]) for e in registry.audit_trail() if e["action"] == "qc"]
    assert audited == [(None, qc.FIRST), (v, "promote"), (None, "rollback"), (v, "activate")]


@pytest.mark.anyio
@pytest.mark.nicegui_main_file("webapp/main.py")
async def test_a_degraded_calibration_raises_the_alarm_once_and_history_shows_it(
    settings: Settings,
    local: LocalStorage,
    lab_folder: Path,
    embedded: LabCells,
    calibratable: Path,
    user: User,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    registry = qcrun.open_registry(settings, local)
    _set_panel(settings, local, lab_folder)
    qcrun.run_qc(settings, registry, qc.FIRST, WHO)
    good = service.run(registry, calibratable, embedded, "labelled folder", "lab", WHO, force=True).record
    calibration = registry.calibration(good.version)
    k = calibration.head.kernel.shape[1]
    derangement = np.roll(np.arange(k), 1)  # every output answers for another class
    shuffled = Calibration(
        Head(calibration.head.kernel[:, derangement], calibration.head.bias[derangement]),
        calibration.lab_means,
    )
    degraded = dataclasses.replace(good, version=new_version(), origin="shuffled head")
    registry.add(degraded, shuffled)

    registry.activate(degraded.version, WHO)
    again = qcrun.run_qc(settings, registry, "manual", WHO)
    await user.open("/history")

    store = qcrun.QcStore(local, settings.model_bucket)
    promoted, alarmed = store.runs()[1:3]
    assert promoted.baseline_run != promoted.run and not promoted.alarm
    assert alarmed.calibration == degraded.version and alarmed.alarm
    assert alarmed.baseline_agreement == promoted.agreement > alarmed.agreement + qc.AGREEMENT_DROP
    assert again is not None and again.alarm and again.baseline_run == promoted.run
    [warning] = _warnings(caplog)  # one line for the change of state, none for the run that kept it
    assert "drift alarm raised" in warning and degraded.version in warning
    await user.should_see(content="Drift alarm since")
    await user.should_see(content="panel agreement fell to")

    registry.rollback(WHO)  # back to the good calibration: agreement recovers, the alarm clears

    state = store.state()
    assert state is not None and not state.alarm
    assert len(_warnings(caplog)) == 1
    assert any("drift alarm cleared" in r.getMessage() for r in caplog.records)
    assert qcrun.alarm_message(local, settings.model_bucket) is None


def _results(settings: Settings, storage: Storage, unfamiliar: list[bool]) -> None:
    """Classified cells of a new slide, as the predict function writes them."""
    assert settings.model_dir is not None
    model = read_model_info(settings.model_dir)
    for i, flag in enumerate(unfamiliar):
        prediction = Prediction(
            "NEUTROPHIL", 0.9, {"NEUTROPHIL": 0.9}, None, flag, 9.9 if flag else 1.0, flag
        )
        source = Source("uploads", f"lame-été/{i:03d}.jpg", "1")
        result = Result.classified(source, prediction, model, {}, {"classified": now_iso()})
        storage.write(settings.result_bucket, f"lame-été/{i:03d}.jpg.json", result.to_json())


def test_a_jump_in_unfamiliar_new_cells_raises_the_alarm(
    settings: Settings, local: LocalStorage, lab_folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = Registry(local, settings.model_bucket)
    _set_panel(settings, local, lab_folder)
    first = qcrun.run_qc(settings, registry, qc.FIRST, WHO)
    assert first is not None and first.panel_unfamiliar is not None and first.panel_unfamiliar < 0.8
    _results(settings, local, [False] * 19)  # too few to judge, whatever their share

    few = qcrun.run_qc(settings, registry, "manual", WHO)
    _results(settings, local, [True] * qc.MIN_RECENT_CELLS * 2)  # overwrites, then adds
    jumped = qcrun.run_qc(settings, registry, "manual", WHO)

    assert few is not None and (few.recent_cells, few.recent_unfamiliar, few.alarm) == (19, None, False)
    assert jumped is not None and jumped.recent_unfamiliar == 1.0 and jumped.alarm
    assert jumped.recent_cells == qc.MIN_RECENT_CELLS * 2
    assert [r.split(" of recent")[0] for r in jumped.reasons] == ["100.0%"]
    assert len(_warnings(caplog)) == 1


def test_drift_rules() -> None:
    assert qc.drift_reasons(0.90, 0.92, 0.1, None, 0.15) == ()  # 2 points is not more than 2
    assert "fell to 89.0%" in qc.drift_reasons(0.89, 0.92, 0.1, None, 0.15)[0]
    assert qc.drift_reasons(0.92, 0.92, 0.10, 0.25, 0.15) == ()
    assert "26.0% of recent" in qc.drift_reasons(0.92, 0.92, 0.10, 0.26, 0.15)[0]
    assert qc.moves_baseline("promote", ()) and not qc.moves_baseline("daily", ())
    assert not qc.moves_baseline("activate", qc.drift_reasons(0.5, 0.9, None, None, 0.15))


def test_daily_runs_fire_on_an_injected_clock(
    settings: Settings, local: LocalStorage, lab_folder: Path
) -> None:
    hourly = dataclasses.replace(settings, qc_interval_hours=1.0)
    registry = Registry(local, settings.model_bucket)
    store = qcrun.QcStore(local, settings.model_bucket)
    _set_panel(settings, local, lab_folder)
    qcrun.run_qc(hourly, registry, qc.FIRST, WHO)
    started = store.last_run_at()
    assert started is not None
    clock = [started + timedelta(minutes=30)]  # a restart half an hour after the last run
    waits: list[float] = []

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        clock[0] += timedelta(seconds=seconds)
        return len(waits) == 3  # then the stack stops

    def run(now: datetime) -> object:
        return qcrun.run_qc(hourly, registry, qcrun.DAILY, "serve", now)

    daily = qcdaily.DailyQc(run, store.last_run_at, timedelta(hours=1), lambda: clock[0], wait)

    daily.loop()

    runs = store.runs()
    assert waits == [1800.0, 3600.0, 3600.0]
    assert [r.trigger for r in runs] == [qc.FIRST, qcrun.DAILY, qcrun.DAILY]
    assert [datetime.fromisoformat(r.at) - started for r in runs[1:]] == [
        timedelta(hours=1),
        timedelta(hours=2),
    ]
    assert [e["detail"]["trigger"] for e in registry.audit_trail()] == [qc.FIRST]  # daily runs: history only


def test_qc_commands_set_run_and_status_without_tensorflow(
    settings: Settings, lab_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = ["--data-dir", str(settings.data_dir)]
    before = cli.main(["qc", "status", *where])

    set_code = cli.main(["qc", "panel", "set", "--labelled", str(lab_folder), *where, "--by", WHO])
    status_code = cli.main(["qc", "status", "--json", *where])
    out, err = capsys.readouterr()
    # `qc run` in a process of its own, which must never have imported TensorFlow
    script = (
        "import sys; from bloodcell.cli import main; code = main(sys.argv[1:]); "
        "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'; sys.exit(code)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    child = subprocess.run(
        [sys.executable, "-c", script, "qc", "run", *where],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

    assert (before, set_code, status_code, child.returncode) == (1, 0, 0, 0), child.stderr
    assert "no panel is set" in err
    assert f"by {WHO}" in out and "agreement" in out
    status = json.loads(out[out.index("\n{\n") + 1 :])  # after the panel set lines
    assert (status["trigger"], status["cells"], status["by"]) == (qc.FIRST, WBC_PER_LAB, WHO)
    assert "(manual, by" in child.stdout and "calibration none (shipped model)" in child.stdout


def test_a_failed_qc_never_undoes_the_change_of_model(
    settings: Settings, local: LocalStorage, lab_folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = qcrun.open_registry(settings, local)
    panel = _set_panel(settings, local, lab_folder)
    local.delete(settings.model_bucket, panel.cells[0].key)  # the panel can no longer be read whole

    pointer = registry.activate("shipped", WHO)

    assert registry.pointer()[0] == pointer
    assert any("qc after activate failed" in r.getMessage() for r in caplog.records)
    assert qcrun.QcStore(local, settings.model_bucket).runs() == []


def test_serve_s_daily_thread_runs_when_due_and_stops_with_the_stack(
    settings: Settings, local: LocalStorage, lab_folder: Path
) -> None:
    _set_panel(settings, local, lab_folder)  # never run: the first daily run is due at once
    stop = threading.Event()
    stop.set()  # the stack is already stopping: one step, then the wait returns at once

    qcdaily.start_daily_qc(settings, local, stop).join()

    [run] = qcrun.QcStore(local, settings.model_bucket).runs()
    assert (run.trigger, run.by) == (qcrun.DAILY, "bloodcell serve")


def test_a_panel_from_named_slides_stays_fixed_when_the_archive_forgets(
    settings: Settings,
    local: LocalStorage,
    lab: list[tuple[str, str, bytes]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    wanted, other = "lame été 血液-01", "другой-02"
    keys = archive_verified(local, settings, lab, lambda i: wanted if i % 2 else other, WHO)
    where = ["--data-dir", str(settings.data_dir)]

    set_code = cli.main(["qc", "panel", "set", "--slides", wanted, *where])
    for key in keys:  # retention or erasure empties the archive
        local.delete(settings.archive_bucket, key)
    run_code = cli.main(["qc", "run", "--json", *where])

    out = capsys.readouterr().out
    run = json.loads(out[out.index("\n{\n") + 1 :])
    panel = qcrun.QcStore(local, settings.model_bucket).panel()
    assert (set_code, run_code) == (0, 0)
    assert panel is not None and (panel.source, panel.origin) == ("slides", wanted)
    assert all(f"/{wanted}/" in c.name for c in panel.cells) and set(panel.counts()) <= set(WBC)
    expected = [
        k for i, (folder, _, _) in enumerate(lab) if i % 2 and folder.upper() in WBC for k in [keys[i]]
    ]
    assert sorted(c.name for c in panel.cells) == sorted(expected)
    assert run["cells"] == len(expected) and run["panel_version"] == panel.version


def test_a_failed_daily_run_is_tried_again_within_the_hour(caplog: pytest.LogCaptureFixture) -> None:
    def full_disk(now: datetime) -> object:
        raise OSError("No space left on device")

    moment = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    daily = qcdaily.DailyQc(full_disk, lambda: None, timedelta(hours=24), lambda: moment, lambda _: True)

    delay = daily.step()

    assert delay == qcdaily.RETRY_SECONDS
    assert any("daily qc failed" in r.getMessage() for r in caplog.records)
