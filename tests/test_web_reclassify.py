"""The slide page's models card (simulated user): which model answered, reclassify, history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from nicegui import ElementFilter
from nicegui.testing import User

from bloodcell.calibration.core import LabCells
from bloodcell.calibration.rerun import history
from bloodcell.pipeline import Pipeline
from bloodcell.review import actions
from bloodcell.review.records import PASSWORD
from bloodcell.settings import Settings
from bloodcell.slides.loader import load_cells
from bloodcell.storage import LocalStorage
from tests.test_reclassify import ANNE, SLIDE, calibrated, make_slide, result
from tests.test_web_user import eventually, texts

pytestmark = [pytest.mark.anyio, pytest.mark.nicegui_main_file("webapp/main.py")]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _button(user: User) -> Any:
    assert user.client is not None
    with user.client:
        [button] = list(ElementFilter(marker="reclassify", local_scope=False))
    return button


async def test_a_reviewer_reclassifies_and_the_page_shows_models_and_history(
    settings: Settings,
    local: LocalStorage,
    lab: list[Any],
    embedded: LabCells,
    calibratable: Path,
    user: User,
) -> None:
    uploads = make_slide(Pipeline(settings, local, archive=local), local, settings, lab)
    version = calibrated(local, settings, calibratable, embedded)
    await user.open(f"/slides/{SLIDE}")
    await eventually(lambda: any("(no calibration)" in t for t in texts(user, "slide-model")), what="models")
    await user.should_see(content="Never reclassified")

    user.find(marker="reclassify").click()

    await eventually(lambda: bool(texts(user, "reclassify-run")), what="the history line")
    [line] = texts(user, "reclassify-run")
    assert "(no calibration) → " in line and "local" in line and f"calibration {version}" in line
    assert f"{len(uploads)} re-run" in line
    await eventually(
        lambda: any(
            f"calibration {version}: {len(uploads)} results" in t for t in texts(user, "slide-model")
        ),
        what="the new model named",
    )
    assert all(result(local, settings, u)["model"]["calibration"] == version for u in uploads)
    assert history(local, settings, SLIDE)[0].by == "local"


async def test_without_the_reviewer_role_there_is_no_button_and_signed_slides_say_reopen(
    settings: Settings,
    local: LocalStorage,
    lab: list[Any],
    user: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bloodcell.web import auth, slide_page

    make_slide(Pipeline(settings, local, archive=local), local, settings, lab)
    for cell in load_cells(local, settings, SLIDE):
        actions.review_cell(local, settings, SLIDE, cell, cell.label or "NEUTROPHIL", ANNE, archive=local)
    actions.sign_off(local, local, settings, SLIDE, ANNE, signature=PASSWORD)

    await user.open(f"/slides/{SLIDE}")
    await user.should_see(content="Signed off: reopen the slide", retries=100)
    assert not _button(user).enabled

    visitor = auth.User("visitor", frozenset({auth.USER}))
    monkeypatch.setattr(slide_page, "current_user", lambda: visitor)
    await user.open(f"/slides/{SLIDE}")
    await user.should_see(content="Signed off: reopen the slide", retries=100)
    assert not _button(user).visible
    assert history(local, settings, SLIDE) == []
