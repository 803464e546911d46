"""Sign-off as a signature, amendments as amendments: the trail, the PDF and FHIR of a re-signed slide."""

from __future__ import annotations

from pathlib import Path

import pytest

from bloodcell.reports import fhir, pdf
from bloodcell.reports.gallery import crop_reader
from bloodcell.reports.loader import load_slide
from bloodcell.reports.render import report_bytes
from bloodcell.reports.stats import report_differential
from bloodcell.review import actions, state
from bloodcell.review.records import NO_PASSWORD, PASSWORD
from bloodcell.settings import Settings
from bloodcell.slides.loader import load_cells
from bloodcell.storage import LocalStorage
from bloodcell.web.auth import REVIEWER, USER, User
from tests.support.pdf import poppler
from tests.support.report_slides import Spec, write_slide
from tests.test_report_pdf import real_images

ANNE = User("anne", frozenset({USER, REVIEWER}))
SLIDE = "HEM-12"


@pytest.fixture
def slide(local: LocalStorage, settings: Settings, datasets: Path) -> str:
    images = real_images(datasets)
    specs = [
        Spec(label, name=f"{label.lower()}-{i}.jpg")
        for label in ("NEUTROPHIL", "LYMPHOCYTE")
        for i in range(3)
    ]
    write_slide(local, settings, SLIDE, specs, images["NEUTROPHIL"])
    for cell in load_cells(local, settings, SLIDE):
        actions.review_cell(local, settings, SLIDE, cell, str(cell.label), ANNE)
    return SLIDE


def _resign(local: LocalStorage, settings: Settings) -> None:
    if not state.slide_status(local, settings, SLIDE).signed_off:
        actions.sign_off(local, local, settings, SLIDE, ANNE, signature=PASSWORD)
    actions.reopen(local, local, settings, SLIDE, ANNE, reason="cell 2 is a smudge cell")
    smudged = next(
        c for c in load_cells(local, settings, SLIDE) if c.upload_name.endswith("/lymphocyte-1.jpg")
    )
    actions.review_cell(local, settings, SLIDE, smudged, "SMUDGE", ANNE)
    actions.sign_off(local, local, settings, SLIDE, ANNE, signature=NO_PASSWORD)


def test_reopening_needs_a_reason_and_the_trail_keeps_it_and_the_signature(
    local: LocalStorage, settings: Settings, slide: str
) -> None:
    with pytest.raises(actions.ReviewRefused, match="re-authentication"):
        actions.sign_off(local, local, settings, slide, ANNE, signature=" ")
    with pytest.raises(actions.ReviewRefused, match="Say why"):
        actions.reopen(local, local, settings, slide, ANNE, reason="  \n ")

    _resign(local, settings)

    trail = state.read_trail(local, settings, slide)
    signs = [r for r in trail if r.action == "sign-off"]
    assert [r.reason for r in trail if r.action == "reopen"] == ["cell 2 is a smudge cell"]
    assert [r.signature for r in signs] == [PASSWORD, NO_PASSWORD]
    review = state.slide_review(local, settings, slide)
    assert review.sign_off is not None and review.sign_off.amends is not None
    assert (review.sign_off.amends.at, review.sign_off.amends.reason) == (
        signs[0].at,
        "cell 2 is a smudge cell",
    )


def test_an_amended_report_says_so_in_fhir_and_the_pdf(
    local: LocalStorage, settings: Settings, slide: str, tmp_path: Path
) -> None:
    actions.sign_off(local, local, settings, slide, ANNE, signature=PASSWORD)
    first = fhir.bundle(
        load_slide(local, settings, slide), report_differential(load_slide(local, settings, slide).cells)
    )
    _resign(local, settings)
    report = load_slide(local, settings, slide)
    zoned = Settings(**{**settings.__dict__, "lab_timezone": "Europe/Paris"})

    bundle = fhir.bundle(report, report_differential(report.cells))
    text = poppler("pdftotext", report_bytes(local, zoned, slide, "pdf"), tmp_path, "-raw")

    resource = bundle["entry"][0]["resource"]
    assert first["entry"][0]["resource"]["status"] == "final" and resource["status"] == "amended"
    earlier = resource["extension"][0]
    assert earlier["url"] == fhir.REPLACES
    assert earlier["valueReference"]["identifier"] in first["entry"][0]["resource"]["identifier"]
    assert "cell 2 is a smudge cell" in earlier["valueReference"]["display"]
    page1 = text.split("\f")[0]
    assert "Amended report" in page1 and "cell 2 is a smudge cell" in page1
    assert report.sign_off is not None and report.sign_off.amends is not None
    assert " CET" in page1 and ".0" not in page1.split("Signed off")[1].split("\n")[0]  # no microseconds
    assert "Cells excluded by review" in text and "lymphocyte-1.jpg Smudge cell anne" in text.replace(
        "\n", " "
    )


def test_an_unsigned_pdf_is_watermarked_on_every_page_and_a_signed_one_is_not(
    local: LocalStorage, settings: Settings, slide: str, tmp_path: Path
) -> None:
    unsigned = load_slide(local, settings, slide)
    data = pdf.render(unsigned, report_differential(unsigned.cells), crop_reader(local, settings))
    actions.sign_off(local, local, settings, slide, ANNE, signature=PASSWORD)
    signed = report_bytes(local, settings, slide, "pdf")

    pages = poppler("pdftotext", data, tmp_path, "-raw").split("\f")[:-1]
    signed_pages = poppler("pdftotext", signed, tmp_path, "-raw").split("\f")[:-1]

    assert len(pages) == pdf.page_count(unsigned) >= 2
    # drawn at 45°, the word comes out of pdftotext -raw one letter per line: that is the watermark
    rotated = "\n".join(pdf.WATERMARK)
    assert all(rotated in page for page in pages)
    assert not any(rotated in page or pdf.WATERMARK in page for page in signed_pages)
