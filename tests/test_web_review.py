"""Slides and their review through NiceGUI's simulated user, with the real pipeline and model.

The pipeline worker, image fixtures and helpers are those of ``test_web_user``: the
same stand-in for the event source and both functions.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from nicegui import ui
from nicegui.testing import User

from bloodcell.review import state
from bloodcell.review.verified import VerifiedLabel, verified_key
from bloodcell.settings import Settings
from bloodcell.slides.cell import Cell
from bloodcell.slides.loader import load_cells as slide_cells
from bloodcell.slides.vocabulary import PENDING, REPORT_ORDER, label_words
from bloodcell.storage import LocalStorage
from bloodcell.web.cell_view import picture_url
from tests import test_web_user as web
from tests.test_web_user import PipelineWorker, count, eventually, texts, upload

# the same fixtures as the batch page's tests, found by pytest under these names
anyio_backend, errors, images, model_dir, worker = (
    web.anyio_backend,
    web.errors,
    web.images,
    web.model_dir,
    web.worker,
)

pytestmark = [pytest.mark.anyio, pytest.mark.nicegui_main_file("webapp/main.py")]
SLIDE = "HEM-2026-0001"


def key(user: User, name: str) -> None:
    """One key press as the browser's keyboard element reports it."""
    user.find(ui.keyboard).trigger(
        "key",
        {
            "action": "keydown",
            "repeat": False,
            "altKey": False,
            "ctrlKey": False,
            "metaKey": False,
            "shiftKey": False,
            "key": name,
            "code": f"Key{name.upper()}",
            "location": 0,
        },
    )


def one(user: User, marker: str) -> str:
    found = texts(user, marker)
    assert len(found) == 1, (marker, found)
    return found[0]


async def test_a_slide_is_made_reviewed_by_keys_signed_off_and_reopened(
    worker: PipelineWorker,
    user: User,
    images: dict[str, bytes],
    settings: Settings,
    errors: Callable[[], list[str]],
) -> None:
    await user.open("/slides")
    await user.should_see(content="No slides yet", retries=100)
    user.find(marker="new-slide-id").type(SLIDE)
    user.find(marker="new-slide-open").click()
    await user.should_see(f"Slide {SLIDE}", retries=100)
    files = {
        name: images[name]
        for name in ("neutrophil.jpeg", "lymphocyte.jpeg", "monocyte.jpeg", "eosinophil.jpeg")
    }
    await upload(user, {**files, "notes.jpg": b"not a picture"})

    def stored() -> list[Cell]:
        return slide_cells(worker.storage, settings, SLIDE)

    await eventually(lambda: [c.status for c in stored()].count("classified") == 4, what="four results")
    await eventually(lambda: one(user, "review-tally-unreviewed") == "4 not reviewed yet", what="the page")
    cells = [c for c in stored() if c.status == "classified"]
    assert one(user, "review-tally-rejected") == "1 rejected" and count(user, "cell-notes.jpg") == 1

    # keyboard only: the gallery starts on the first cell; approve three, call the fourth unusable
    for name in ("a", "a", "a", "u"):
        before = len(state.read_trail(worker.storage, settings, SLIDE))
        key(user, name)
        await eventually(
            lambda b=before: len(state.read_trail(worker.storage, settings, SLIDE)) == b + 1,  # type: ignore[misc]
            what=f"the record of key {name}",
        )
    await eventually(lambda: one(user, "review-tally-unreviewed") == "0 not reviewed yet", what="the review")
    trail = state.read_trail(worker.storage, settings, SLIDE)
    reviewed = state.reviewed_labels(worker.storage, settings, SLIDE)
    assert [r.action for r in trail] == ["create", "approve", "approve", "approve", "reclassify"]
    assert trail[-1].after == "UNUSABLE" and {r.reviewer for r in trail} == {"local"}
    assert set(reviewed) == {c.key for c in cells}
    for label in REPORT_ORDER:
        expected = sum(1 for r in reviewed.values() if r.label == label)
        assert one(user, f"reviewed-count-{label}") == str(expected)
    model_counts = {
        label: sum(1 for c in cells if c.label == label and c.result is not None and not c.result.uncertain)
        for label in REPORT_ORDER
    }
    assert {label: int(one(user, f"model-count-{label}")) for label in REPORT_ORDER} == model_counts

    crop = user.find(marker="cell-crop").elements.pop().props["src"]
    assert crop.startswith("/cell/")  # the cell-centred crop the model saw, not a centre square
    user.find(marker="cell-crop").trigger("click")
    field = user.find(marker="field-image").elements.pop().props["src"]
    assert field == crop.replace("/cell/", "/field/", 1)  # a click zooms to the whole field
    shown = next(c for c in cells if c.label)
    for kind in ("cell", "field"):
        answer = await user.http_client.get(picture_url(kind, shown.upload_name))
        assert answer.headers["content-type"] == "image/jpeg"

    user.find("Sign off slide").click()  # a dialog: the local user has no password, and is told so
    await user.should_see(marker="sign-no-password", retries=100)
    user.find(marker="sign-confirm").click()
    await user.should_see(content="Signed off by local", retries=100)
    await user.should_see(content="Signature: local user without a password", retries=100)
    archive = LocalStorage(settings.data_dir)
    for cell in cells:
        assert cell.result is not None and cell.result.archive.location
        data, _ = archive.read(settings.archive_bucket, verified_key(cell.result.archive.location))
        assert VerifiedLabel.from_json(data).label == reviewed[cell.key].label
    # the slide's reports read the same review: final once signed off, reviewed labels in the cells CSV
    fhir = (await user.http_client.get(f"/slides/{SLIDE}/report.fhir.json")).json()
    report = next(e["resource"] for e in fhir["entry"] if e["resource"]["resourceType"] == "DiagnosticReport")
    assert report["status"] == "final"
    rows = list(csv.DictReader(io.StringIO((await user.http_client.get(f"/slides/{SLIDE}/report.csv")).text)))
    assert sorted(r["reviewed_label"] for r in rows if r["reviewed_label"]) == sorted(
        r.label for r in reviewed.values()
    )
    key(user, "n")  # read-only now: no record is written
    await user.should_see(content="Signed off: read-only", retries=100)
    assert len(state.read_trail(worker.storage, settings, SLIDE)) == 6

    # a reload (or any other tab) rebuilds the same slide from the buckets
    await user.open(f"/slides/{SLIDE}")
    await user.should_see(content="Signed off by local", retries=100)
    assert one(user, "review-tally-unreviewed") == "0 not reviewed yet"
    assert len(user.find(ui.table).elements.pop().rows) == 6
    await user.open("/slides")
    with user.scope(marker=f"slide-{SLIDE}"):
        await user.should_see("signed off", retries=100)
        await user.should_see(content="5 images · 5 with results", retries=100)
        await user.should_see(content="local", retries=100)

    await user.open(f"/slides/{SLIDE}")
    await user.should_see("Reopen for review", retries=100)
    user.find("Reopen for review").click()
    user.find(marker="reopen-confirm").click()  # no reason: refused, still signed off
    await user.should_see(content="Say why", retries=100)
    user.find(marker="reopen-reason").type("count the eosinophil again")
    user.find(marker="reopen-confirm").click()
    await user.should_see("Sign off slide", retries=100)
    reopened = state.read_trail(worker.storage, settings, SLIDE)[-1]
    assert (reopened.action, reopened.reason) == ("reopen", "count the eosinophil again")
    newest = user.find(ui.table).elements.pop().rows[0]
    assert (newest["action"], newest["change"]) == ("reopen", "reason: count the eosinophil again")
    assert errors() == []


async def test_a_folder_dropped_into_the_bucket_appears_as_a_slide(
    worker: PipelineWorker,
    user: User,
    images: dict[str, bytes],
    settings: Settings,
    errors: Callable[[], list[str]],
) -> None:
    for name in ("neutrophil.jpeg", "lymphocyte.jpeg"):
        worker.storage.write(settings.upload_bucket, f"DROP-7/{name}", images[name])
    await eventually(
        lambda: (
            all(c.status != PENDING for c in slide_cells(worker.storage, settings, "DROP-7"))
            and len(slide_cells(worker.storage, settings, "DROP-7")) == 2
        ),
        what="results of the dropped folder",
    )
    await user.open("/slides")
    with user.scope(marker="slide-DROP-7"):
        await user.should_see("awaiting review", retries=100)
        await user.should_see(content="2 images · 2 with results", retries=100)
        await user.should_see(content="dropped into the bucket", retries=100)
    user.find("DROP-7").click()
    await user.should_see("Slide DROP-7", retries=100)
    await eventually(lambda: count(user, "cell-neutrophil.jpeg") == 1, what="the dropped cells")
    result: dict[str, Any] = worker.result("DROP-7/neutrophil.jpeg")
    shown = f"{label_words(result['label'])} {100 * result['confidence']:.0f} %"
    await user.should_see(content=shown, retries=100)
    assert errors() == []


async def test_bad_slide_ids_are_explained(settings: Settings, user: User) -> None:
    await user.open("/slides")
    user.find(marker="new-slide-id").type("../etc")
    user.find(marker="new-slide-open").click()
    await user.should_see(content="is not a slide id: one is 1 to 64 letters", retries=100)
    user.find(marker="new-slide-id").clear().type("Dupont")
    user.find(marker="new-slide-open").click()
    await user.should_see(content="looks like a name", retries=100)
    await user.open("/slides/_review")
    await user.should_see(content="No such slide", retries=100)


def test_the_model_card_links_its_pictures_through_model_files() -> None:
    from bloodcell.web.model_page import card_markdown

    text = "See ![matrices](confusion_matrix.png), ![x](https://example.org/a.png) and ![y](../secret.png)."
    assert card_markdown(text) == (
        "See ![matrices](/model-files/confusion_matrix.png), ![x](https://example.org/a.png) "
        "and ![y](../secret.png)."
    )


async def test_model_files_serves_pictures_only(settings: Settings, user: User, model_dir: Path) -> None:
    await user.open("/model")
    picture = await user.http_client.get("/model-files/confusion_matrix.png")
    assert picture.status_code == (200 if (model_dir / "confusion_matrix.png").is_file() else 404)
    for name in ("metadata.json", "model.tflite", "..%2Fmodel.tflite", "MODEL_CARD.md"):
        assert (await user.http_client.get(f"/model-files/{name}")).status_code == 404


async def test_files_still_in_flight_at_a_reload_are_reported_as_not_uploaded(
    worker: PipelineWorker, user: User, images: dict[str, bytes], errors: Callable[[], list[str]]
) -> None:
    await user.open("/")
    # the browser chose three files (Quasar's "added"); only the first reaches the server
    user.find(ui.upload).trigger("added", ["neutrophil.jpeg", "Cellule été.jpeg", "monocyte.jpeg"])
    await user.should_see("0 of 3 chosen finished", retries=100)
    await upload(user, {"neutrophil.jpeg": images["neutrophil.jpeg"]})
    await eventually(lambda: count(user, "stage-classified") == 1, what="the one that arrived")
    await user.should_see("1 of 3 chosen finished", retries=100)

    await user.open("/")  # the reload: the other two never arrived
    await eventually(lambda: count(user, "stage-refused") == 2, what="the two reported")
    with user.scope(marker="file-Cellule_ete.jpeg"):
        await user.should_see(
            content="Not uploaded: the page was reloaded or closed while it was uploading", retries=100
        )
    await user.should_see("3 of 3 chosen finished", retries=100)
    assert errors() == []


async def test_slides_are_listed_newest_first_a_page_at_a_time(
    settings: Settings, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bloodcell.web import slides_page

    monkeypatch.setattr(slides_page, "PER_PAGE", 2)
    storage = LocalStorage(settings.data_dir)
    for hour, slide in enumerate(("OLD-1", "MID-2", "NEW-3")):  # an hour apart: file clocks are coarse
        storage.write(settings.upload_bucket, f"{slide}/a.jpg", b"not decoded here")
        moment = 1_780_000_000 + 3600 * hour
        os.utime(settings.data_dir / settings.upload_bucket / slide / "a.jpg", (moment, moment))
    await user.open("/slides")
    await user.should_see(content="3 slides, newest first · page 1 of 2", retries=100)
    assert texts(user, "slide-link") == ["NEW-3", "MID-2"]
    await user.open("/slides?page=2")
    await user.should_see("OLD-1", retries=100)
    await user.should_not_see("NEW-3")


async def test_without_the_reviewer_role_a_slide_is_read_only(
    worker: PipelineWorker,
    user: User,
    images: dict[str, bytes],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    errors: Callable[[], list[str]],
) -> None:
    from bloodcell.web import auth, slide_page

    visitor = auth.User("visitor", frozenset({auth.USER}))
    monkeypatch.setattr(slide_page, "current_user", lambda: visitor)
    worker.storage.write(settings.upload_bucket, "RO-1/neutrophil.jpeg", images["neutrophil.jpeg"])
    await eventually(
        lambda: [c.status for c in slide_cells(worker.storage, settings, "RO-1")] == ["classified"],
        what="the result",
    )
    await user.open("/slides/RO-1")
    await user.should_see(content="visitor does not have the reviewer role", retries=100)
    await user.should_see(content="Only a reviewer can review and sign off", retries=100)
    key(user, "a")
    await user.should_not_see("Sign off slide")
    assert state.read_trail(worker.storage, settings, "RO-1") == ()
    assert errors() == []


async def test_files_lost_to_a_reload_on_a_slide_are_listed_by_name(
    worker: PipelineWorker, user: User, images: dict[str, bytes], errors: Callable[[], list[str]]
) -> None:
    await user.open("/slides/LOST-1")
    await user.should_see("Slide LOST-1", retries=100)
    assert texts(user, "nav-current") == ["Slides"]  # the menu entry this page belongs to
    # the browser chose three files (Quasar's "added"); only the first reaches the server
    user.find(ui.upload).trigger("added", ["neutrophil.jpeg", "Cellule été.jpeg", "monocyte.jpeg"])
    await user.should_see(content="0 of 3 chosen stored", retries=100)
    await upload(user, {"neutrophil.jpeg": images["neutrophil.jpeg"]})
    await user.should_see(content="1 of 3 chosen stored", retries=100)

    await user.open("/slides/LOST-1")  # the reload: the other two never arrived
    await eventually(lambda: count(user, "lost-file") == 2, what="the two lost files")
    lost = texts(user, "lost-file")
    await user.should_see(content="while these 2 files were uploading", retries=100)
    await user.open("/slides/LOST-1")  # said once, not on every later visit
    await user.should_see("Slide LOST-1", retries=100)

    assert lost == ["• Cellule été.jpeg", "• monocyte.jpeg"]
    assert count(user, "lost-file") == 0
    assert errors() == []


async def test_the_trail_lists_every_record_a_page_at_a_time(
    settings: Settings, user: User, errors: Callable[[], list[str]]
) -> None:
    from bloodcell.review import records
    from bloodcell.review.records import CellRef, new_record

    storage = LocalStorage(settings.data_dir)
    storage.write(settings.upload_bucket, "TR-1/a.jpg", b"not decoded here")
    for second in range(23):
        record = new_record(
            "TR-1",
            records.APPROVE,
            f"r{second:02d}",
            cell=CellRef("TR-1/a.jpg", "g"),
            before="MONOCYTE",
            after="MONOCYTE",
            at=f"2026-12-01T10:00:{second:02d}.000000Z",
        )
        state.write_record(storage, settings, record)
    await user.open("/slides/TR-1")
    await user.should_see(content="23 records, newest first · 1–10 shown", retries=100)
    table = user.find(ui.table).elements.pop()
    first_page = [row["who"] for row in table.rows]
    pager = user.find(marker="trail-pager").elements.pop()
    assert isinstance(pager, ui.pagination)
    pager.set_value(3)
    await user.should_see(content="23 records, newest first · 21–23 shown", retries=100)

    assert first_page == [f"r{s:02d}" for s in range(22, 12, -1)]  # newest first
    assert [row["who"] for row in table.rows] == ["r02", "r01", "r00"]  # the oldest are listed too
    assert errors() == []
