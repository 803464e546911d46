"""The slide loader and the FHIR export: a slide read from a bucket becomes a valid R4 Bundle."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle

from bloodcell.errors import RejectedInput
from bloodcell.names import result_name
from bloodcell.reports import fhir
from bloodcell.reports.loader import load_slide
from bloodcell.reports.stats import report_differential as differential
from bloodcell.settings import Settings
from bloodcell.slides.cell import Review, SignOff
from bloodcell.slides.ids import check_slide_id
from bloodcell.slides.vocabulary import PENDING, REJECTED
from bloodcell.storage import LocalStorage
from tests.support.common import image_bytes
from tests.support.report_slides import Spec, specs, write_slide

SLIDE = "lame-é-01"


@pytest.fixture
def slide(local: LocalStorage, settings: Settings) -> str:
    cells = [
        *specs(neutrophil=14, lymphocyte=3, monocyte=2, eosinophil=1),
        Spec("MONOCYTE", uncertain=True),
        Spec(None),
        Spec("NEUTROPHIL", result=False),
    ]
    write_slide(local, settings, SLIDE, cells, [image_bytes()])
    return SLIDE


def resources(data: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    entries = data["entry"]
    assert isinstance(entries, list)
    return [e["resource"] for e in entries if e["resource"]["resourceType"] == kind]


def test_loader_reads_every_upload_with_its_result(
    local: LocalStorage, settings: Settings, slide: str
) -> None:
    report = load_slide(local, settings, slide)
    assert len(report.cells) == 23
    assert [c.status for c in report.cells].count(PENDING) == 1
    assert [c.status for c in report.cells].count(REJECTED) == 1
    assert report.models == ("bloodcell-wbc 1.0.0",)
    assert report.sign_off is None
    assert report.first_upload == "2026-12-01T09:00:00.000Z"


def test_a_result_of_an_older_upload_version_is_pending(local: LocalStorage, settings: Settings) -> None:
    write_slide(local, settings, "s1", [Spec("NEUTROPHIL")], [image_bytes()])
    local.write(
        settings.upload_bucket, "s1/cell-000.jpg", image_bytes((64, 64))
    )  # replaced, not yet classified
    assert load_slide(local, settings, "s1").cells[0].status == PENDING


def test_slide_ids_never_escape_the_bucket(local: LocalStorage, settings: Settings) -> None:
    for bad in ("..", "a/b", "", "x\x00"):
        with pytest.raises(RejectedInput):
            check_slide_id(bad)
    with pytest.raises(RejectedInput, match="no uploads"):
        load_slide(local, settings, "nothing-here")


def test_bundle_validates_and_matches_the_slide(local: LocalStorage, settings: Settings, slide: str) -> None:
    report = load_slide(local, settings, slide)
    data = fhir.bundle(report, differential(report.cells))
    Bundle.model_validate(data)  # raises on any structural error
    (diagnostic,) = resources(data, "DiagnosticReport")
    observations = resources(data, "Observation")
    assert diagnostic["status"] == "preliminary"
    assert all(o["status"] == "preliminary" for o in observations)
    assert diagnostic["code"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "24318-8",
        "display": "Manual Differential panel - Blood",
    }
    by_code = {o["code"]["coding"][0]["code"]: o for o in observations}
    assert set(by_code) == {"26511-6", "26478-8", "26485-3", "26450-7"}
    assert all(o["code"]["coding"][0]["system"] == "http://loinc.org" for o in observations)
    # 20 counted: N 14 (70 %, H), L 3 (15 %, L), M 2 (10 %, H), E 1 (5 %, H)
    assert by_code["26511-6"]["valueQuantity"] == {
        "value": 70.0,
        "unit": "%",
        "system": "http://unitsofmeasure.org",
        "code": "%",
    }
    # nobody reviewed these cells: a model-only count carries no high/low flags
    assert all("interpretation" not in o for o in observations)
    reviewed = replace(
        report,
        cells=tuple(
            replace(c, review=Review(str(c.label), "Zoë", "t")) if c.counted_as(False) else c
            for c in report.cells
        ),
    )
    by_code = {
        o["code"]["coding"][0]["code"]: o
        for o in resources(fhir.bundle(reviewed, differential(reviewed.cells)), "Observation")
    }
    flags = {code: o["interpretation"][0]["coding"][0]["code"] for code, o in by_code.items()}
    assert flags == {"26511-6": "H", "26478-8": "L", "26485-3": "H", "26450-7": "H"}
    assert all(
        o["interpretation"][0]["coding"][0]["system"]
        == "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
        for o in by_code.values()
    )
    assert "14 of 20 cells counted" in by_code["26511-6"]["note"][0]["text"]
    assert "1 uncertain, 1 rejected" in diagnostic["conclusion"]
    assert "1 pending" in diagnostic["conclusion"]
    assert [r["reference"] for r in diagnostic["result"]] == [f"urn:uuid:{o['id']}" for o in observations]
    assert "subject" not in diagnostic and "performer" not in diagnostic


def test_final_only_after_sign_off_with_the_performer(
    local: LocalStorage, settings: Settings, slide: str
) -> None:
    report = replace(
        load_slide(local, settings, slide), sign_off=SignOff("Dr Zoë Hernández", "2026-12-02T08:00:00Z")
    )
    data = fhir.bundle(report, differential(report.cells))
    Bundle.model_validate(data)
    (diagnostic,) = resources(data, "DiagnosticReport")
    assert diagnostic["status"] == "final"
    assert diagnostic["performer"] == [{"display": "Dr Zoë Hernández"}]
    assert diagnostic["issued"] == "2026-12-02T08:00:00Z"
    assert all(o["status"] == "final" for o in resources(data, "Observation"))


def test_absolute_counts_get_their_own_codes_in_ucum(
    local: LocalStorage, settings: Settings, slide: str
) -> None:
    report = load_slide(local, settings, slide)
    data = fhir.bundle(report, differential(report.cells, wbc=8.0))
    Bundle.model_validate(data)
    by_code = {o["code"]["coding"][0]["code"]: o for o in resources(data, "Observation")}
    assert by_code["26499-4"]["valueQuantity"] == {
        "value": 5.6,
        "unit": "10^9/L",
        "system": "http://unitsofmeasure.org",
        "code": "10*9/L",
    }
    assert {"26474-7", "26484-6", "26449-9"} <= set(by_code)


def test_the_same_slide_gives_the_same_bytes(local: LocalStorage, settings: Settings, slide: str) -> None:
    def export() -> bytes:
        report = load_slide(local, settings, slide)
        return fhir.encode(fhir.bundle(report, differential(report.cells)))

    first = export()
    assert first == export()
    assert json.loads(first)["type"] == "collection"


def test_a_slide_with_nothing_counted_still_validates(local: LocalStorage, settings: Settings) -> None:
    write_slide(local, settings, "empty", [Spec(None), Spec("LYMPHOCYTE", uncertain=True)], [image_bytes()])
    report = load_slide(local, settings, "empty")
    data = fhir.bundle(report, differential(report.cells))
    Bundle.model_validate(data)
    (diagnostic,) = resources(data, "DiagnosticReport")
    assert resources(data, "Observation") == []
    assert "result" not in diagnostic  # FHIR JSON has no empty arrays
    assert diagnostic["conclusion"].startswith("0 cells counted")


def test_review_state_plugs_in_through_the_review_package(local: LocalStorage, settings: Settings) -> None:
    """Reviews and the sign-off bloodcell.review writes (real records in the result bucket) reach it."""
    from bloodcell.review import records, state

    names = write_slide(local, settings, "rv", specs(neutrophil=2), [image_bytes()])
    generation = load_slide(local, settings, "rv").cells[0].generation
    cell = records.CellRef(names[0], generation)
    for record in (
        records.new_record(
            "rv",
            records.RECLASSIFY,
            "Zoë",
            cell=cell,
            before="NEUTROPHIL",
            after="EOSINOPHIL",
            at="2026-12-02T00:00:00.000000Z",
        ),
        records.new_record("rv", records.SIGN_OFF, "Dr 李", at="2026-12-02T09:00:00.000000Z"),
    ):
        state.write_record(local, settings, record)

    report = load_slide(local, settings, "rv")
    assert report.cells[0].review is not None and report.cells[0].counted_as(True) == "EOSINOPHIL"
    assert report.cells[0].review.reviewer == "Zoë"
    assert report.cells[1].review is None
    assert report.sign_off == SignOff("Dr 李", "2026-12-02T09:00:00.000000Z")
    (diagnostic,) = resources(fhir.bundle(report, differential(report.cells)), "DiagnosticReport")
    assert diagnostic["status"] == "final"


def test_a_slide_over_the_limit_is_refused_whole(
    local: LocalStorage, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bloodcell.slides import loader

    monkeypatch.setattr(loader, "MAX_CELLS", 3)
    write_slide(local, settings, "huge", specs(neutrophil=4), [image_bytes()])
    with pytest.raises(RejectedInput, match="more than 3 uploads"):
        load_slide(local, settings, "huge")
    write_slide(local, settings, "ok", specs(neutrophil=3), [image_bytes()])
    assert len(load_slide(local, settings, "ok").cells) == 3


def test_an_unprocessable_name_is_reported_with_its_rejection(
    local: LocalStorage, settings: Settings
) -> None:
    """Its one answer lives in the reserved rejected folder, not beside it (bloodcell.names)."""
    names = write_slide(
        local, settings, "s3", [Spec("NEUTROPHIL"), Spec(None, name="vue.npy/cellule-é.jpg")], [image_bytes()]
    )
    assert not result_name(names[1]).startswith("s3/")
    cells = load_slide(local, settings, "s3").cells
    assert [(c.upload_name, c.status) for c in cells] == [
        ("s3/cell-000.jpg", "classified"),
        ("s3/vue.npy/cellule-é.jpg", REJECTED),
    ]
