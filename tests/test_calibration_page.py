"""The calibration page through NiceGUI's simulated user: what it shows, and what a reviewer does there."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nicegui import ElementFilter
from nicegui.testing import User

from bloodcell.calibration.job import DONE, FAILED, JOB, CalibrationBusy
from bloodcell.calibration.registry import Registry
from bloodcell.review.records import PASSWORD, SIGN_OFF, new_record
from bloodcell.review.state import write_record
from bloodcell.settings import Settings
from bloodcell.storage import LocalStorage, ObjectInfo
from tests.support.lab import archive_verified
from tests.test_calibration_registry import WHO, _add
from tests.test_web_user import eventually, texts

pytestmark = [pytest.mark.anyio, pytest.mark.nicegui_main_file("webapp/main.py")]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_calibration_page_shows_the_active_version_and_the_audit_trail(
    settings: Settings, user: User
) -> None:
    registry = Registry(LocalStorage(settings.data_dir), settings.model_bucket)
    version = _add(registry)
    registry.activate(version, WHO)

    await user.open("/calibration")

    await user.should_see(f"Active: {version}")
    await user.should_see(content=WHO)
    await user.should_see(content="activate")


# ---- a reviewer acts: calibrate from signed-off slides in the worker thread, activate, roll back ----

SIGNED = "lame-été-血-01"


def _signed_slide(settings: Settings, local: LocalStorage, lab: list[tuple[str, str, bytes]]) -> None:
    """A signed-off slide whose verified labels are in the archive, as a sign-off leaves them."""
    local.write(settings.upload_bucket, f"{SIGNED}/Échantillon été 1.jpg", lab[0][2])
    write_record(local, settings, new_record(SIGNED, SIGN_OFF, WHO, signature=PASSWORD))
    archive_verified(local, settings, lab, lambda i: SIGNED, WHO)


def _element(user: User, marker: str) -> Any:
    assert user.client is not None
    with user.client:
        return list(ElementFilter(marker=marker, local_scope=False))


async def test_a_reviewer_calibrates_activates_and_rolls_back_from_the_page(
    settings: Settings, user: User, lab: list[tuple[str, str, bytes]], calibratable: Path
) -> None:
    local = LocalStorage(settings.data_dir)
    _signed_slide(settings, local, lab)
    registry = Registry(local, settings.model_bucket)
    await user.open("/calibration")
    [chooser] = _element(user, "calibrate-slides")
    chooser.set_value([SIGNED])

    before = JOB.state
    user.find(marker="calibrate-start").click()
    await eventually(lambda: JOB.state is not before, what="the calibration started")
    state = JOB.wait(600)

    assert state.stage == DONE, state.error
    assert state.record is not None
    version = state.record.version
    await eventually(lambda: any("done: version" in t for t in texts(user, "calibrate-status")), what="done")
    await user.should_see(marker="calibration-json")
    [record] = registry.versions()
    assert (record.created_by, record.origin, record.source) == ("local", SIGNED, "slides")
    assert all(f"/{SIGNED}/" in key for key in record.cells)

    [picker] = _element(user, "activate-version")
    picker.set_value(version)
    user.find(marker="activate").click()
    await eventually(lambda: registry.pointer()[0].version == version, what="the activation")
    await eventually(
        lambda: texts(user, "calibration-active") == [f"Active: {version}"], what="the new state"
    )
    user.find(marker="rollback").click()
    await eventually(lambda: registry.pointer()[0].version != version, what="the rollback")

    trail = registry.audit_trail()
    assert [e["action"] for e in trail][-2:] == ["activate", "rollback"]
    assert {e["by"] for e in trail} == {"local"}  # calibrate (and any promotion) too: the signed-in user


async def test_without_the_reviewer_role_the_page_only_reads(
    settings: Settings, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bloodcell.web import auth, calibration_actions

    registry = Registry(LocalStorage(settings.data_dir), settings.model_bucket)
    version = _add(registry)
    visitor = auth.User("visitor", frozenset({auth.USER}))
    monkeypatch.setattr(calibration_actions, "current_user", lambda: visitor)

    await user.open("/calibration")

    await user.should_see(content="visitor does not have the reviewer role")
    await user.should_see(content=f"Comparison of {version}")
    assert _element(user, "activate") == [] and _element(user, "calibrate-start") == []
    assert registry.audit_trail() == [] and registry.pointer()[0].version is None


class _HeldArchive(LocalStorage):
    """An archive whose listing waits for the test: a calibration held running, deterministically."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.entered, self.release = threading.Event(), threading.Event()

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        self.entered.set()
        self.release.wait(60)
        return super().list(bucket, prefix)


def test_one_calibration_at_a_time(settings: Settings) -> None:
    archive = _HeldArchive(settings.data_dir)
    local = LocalStorage(settings.data_dir)
    JOB.start(settings, local, archive, None, "anne")
    assert archive.entered.wait(60)

    with pytest.raises(CalibrationBusy, match="started by anne"):
        JOB.start(settings, local, archive, None, "bruno")

    archive.release.set()
    state = JOB.wait(60)
    assert (state.stage, state.by) == (FAILED, "anne")
    assert state.error == "no usable verified cells were found"
