"""A slide whose images are unlike the training data says so in every view: the page, the PDF, FHIR, CSV."""

from __future__ import annotations

from pathlib import Path

import pytest

from bloodcell.reports import fhir, pdf
from bloodcell.reports.gallery import crop_reader
from bloodcell.reports.loader import load_slide
from bloodcell.reports.stats import report_differential as differential
from bloodcell.settings import Settings
from bloodcell.slides.cell import Slide
from bloodcell.slides.table import RESULT_COLUMNS, result_values
from bloodcell.storage import LocalStorage
from tests.support.common import image_bytes
from tests.support.pdf import poppler
from tests.support.report_slides import Spec, write_slide


def _slide(local: LocalStorage, settings: Settings, unfamiliar: int, familiar: int) -> Slide:
    specs = [Spec("NEUTROPHIL", unfamiliar=True)] * unfamiliar + [
        Spec("LYMPHOCYTE", unfamiliar=False)
    ] * familiar
    write_slide(local, settings, "LAB-X", specs, [image_bytes()])
    return load_slide(local, settings, "LAB-X")


@pytest.mark.parametrize(("unfamiliar", "familiar", "warned"), [(6, 4, True), (1, 9, False), (2, 1, False)])
def test_the_verdict_follows_the_share_of_unfamiliar_cells(
    local: LocalStorage, settings: Settings, unfamiliar: int, familiar: int, warned: bool
) -> None:
    slide = _slide(local, settings, unfamiliar, familiar)

    assert slide.unfamiliar is warned  # three cells are too few for a verdict
    assert (slide.unfamiliar_warning is not None) is warned


def test_reports_carry_the_warning_and_every_cell_its_score(
    local: LocalStorage, settings: Settings, tmp_path: Path
) -> None:
    slide = _slide(local, settings, 6, 4)
    diff = differential(slide.cells)

    bundle = fhir.bundle(slide, diff)
    first_page = poppler("pdftotext", pdf.render(slide, diff, crop_reader(local, settings)), tmp_path).split(
        "\f"
    )[0]
    rows = [dict(zip(RESULT_COLUMNS, result_values(c), strict=True)) for c in slide.cells]

    (report,) = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DiagnosticReport"
    ]
    assert "unlike the training data" in report["conclusion"]
    assert "unlike the training data" in " ".join(first_page.split())
    assert sorted(str(r["unfamiliar"]) for r in rows) == ["false"] * 4 + ["true"] * 6
    assert {r["ood_score"] for r in rows} == {"5.0000", "1.0000"}


def test_a_model_without_an_ood_score_gives_no_verdict(local: LocalStorage, settings: Settings) -> None:
    write_slide(local, settings, "OLD", [Spec("NEUTROPHIL")] * 8, [image_bytes()])

    slide = load_slide(local, settings, "OLD")

    assert slide.unfamiliar_share is None and not slide.unfamiliar
