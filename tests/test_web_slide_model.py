"""The slide modelled once: every view shows the lab's reference ranges; a dropped folder reads right."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

import pytest
from nicegui.testing import User

from bloodcell import settings as settings_module
from bloodcell.reports.render import report_bytes
from bloodcell.settings import Settings
from bloodcell.storage import LocalStorage
from tests.support.common import image_bytes
from tests.support.report_slides import Spec, write_slide
from tests.test_web_user import eventually, texts

pytestmark = [pytest.mark.anyio, pytest.mark.nicegui_main_file("webapp/main.py")]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def lab_ranges(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A lab with its own neutrophil range, set before the app reads its settings."""
    monkeypatch.setenv("REPORT_REFERENCE_RANGES", "NEUTROPHIL=50-70")
    settings_module.get_settings.cache_clear()
    yield settings_module.get_settings()
    settings_module.get_settings.cache_clear()


async def test_the_reference_range_setting_shows_in_every_view(lab_ranges: Settings, user: User) -> None:
    settings = lab_ranges
    storage = LocalStorage(settings.data_dir)
    # a folder copied into uploads/: results without an uploader, one image rejected
    write_slide(
        storage, settings, "S4", [Spec("NEUTROPHIL"), Spec("LYMPHOCYTE"), Spec(None)], [image_bytes()]
    )

    await user.open("/")
    assert texts(user, "reference-NEUTROPHIL") == ["50–70 %"]

    await user.open("/slides/S4")
    await eventually(
        lambda: texts(user, "review-reference-NEUTROPHIL") == ["50–70 %"], what="the slide's range"
    )
    await eventually(lambda: any(texts(user, "cell-model")), what="the selected cell")
    # a finished cell of a folder-dropped slide is not "still being processed"
    assert texts(user, "cell-model")[0].startswith("Model: ")
    await user.should_see(content="rejected: no cell found")

    summary = list(csv.DictReader(io.StringIO(report_bytes(storage, settings, "S4", "summary").decode())))
    assert (summary[0]["label"], summary[0]["ref_low"], summary[0]["ref_high"]) == ("NEUTROPHIL", "50", "70")
    bundle = json.loads(report_bytes(storage, settings, "S4", "fhir"))
    ranges = [
        e["resource"]["referenceRange"][0]
        for e in bundle["entry"]
        if e["resource"].get("code", {}).get("coding", [{}])[0].get("code") == "26511-6"
    ]
    assert ranges and ranges[0]["low"]["value"] == 50.0 and ranges[0]["high"]["value"] == 70.0
