"""The slide's CSV files: one row per cell with the review beside the model, and the summary."""

from __future__ import annotations

import csv
import io
from dataclasses import replace

from bloodcell.reports.loader import load_slide
from bloodcell.reports.stats import report_differential as differential
from bloodcell.reports.tables import CELL_COLUMNS, SUMMARY_COLUMNS, cells_csv, summary_csv
from bloodcell.settings import Settings
from bloodcell.slides.cell import Review, SignOff
from bloodcell.storage import LocalStorage
from tests.support.common import image_bytes
from tests.support.report_slides import Spec, write_slide


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_one_row_per_cell(local: LocalStorage, settings: Settings) -> None:
    specs = [
        Spec("NEUTROPHIL"),
        Spec("MONOCYTE", uncertain=True),
        Spec(None),
        Spec("LYMPHOCYTE", result=False),
    ]
    names = write_slide(local, settings, "s-ü", specs, [image_bytes()])
    report = load_slide(local, settings, "s-ü")
    review = Review("EOSINOPHIL", "Zoë", "2026-12-02T10:00:00.000Z")
    report = replace(report, cells=(replace(report.cells[0], review=review), *report.cells[1:]))

    text = cells_csv(report)
    assert text.splitlines()[0] == ",".join(CELL_COLUMNS)
    table = rows(text)
    assert [r["name"] for r in table] == names
    first, uncertain, rejected, pending = table
    assert first["model_label"] == "NEUTROPHIL" and first["reviewed_label"] == "EOSINOPHIL"
    assert first["reviewer"] == "Zoë" and first["counted_as"] == "EOSINOPHIL"
    assert first["p_neutrophil"] == "0.9100" and first["other_probability"] == "0.0500"
    assert first["generation"] == report.cells[0].generation
    assert first["model"] == "bloodcell-wbc 1.0.0"
    assert uncertain["uncertain"] == "true" and uncertain["counted_as"] == ""
    assert rejected["status"] == "rejected" and rejected["reason"] == "no cell found"
    assert pending["status"] == "pending" and pending["model_label"] == ""


def test_summary_per_class(local: LocalStorage, settings: Settings) -> None:
    specs = [Spec("NEUTROPHIL")] * 3 + [Spec("LYMPHOCYTE")] + [Spec(None)]
    write_slide(local, settings, "s2", specs, [image_bytes()])
    report = replace(
        load_slide(local, settings, "s2"), sign_off=SignOff("=HYPERLINK(1)", "2026-12-02T11:00:00Z")
    )
    table = rows(summary_csv(report, differential(report.cells, wbc=5.0)))
    assert list(table[0]) == list(SUMMARY_COLUMNS)
    assert [r["label"] for r in table] == ["NEUTROPHIL", "LYMPHOCYTE", "MONOCYTE", "EOSINOPHIL"]
    neutrophil = table[0]
    assert (neutrophil["count"], neutrophil["percent"], neutrophil["flag"]) == (
        "3",
        "75.0",
        "",
    )  # model labels: unverified, never flagged
    assert (neutrophil["ci95_low"], neutrophil["ci95_high"]) == ("19.41", "99.37")
    assert neutrophil["absolute_1e9_per_l"] == "3.750"
    assert all(r["counted"] == "4" and r["rejected"] == "1" and r["report_status"] == "final" for r in table)
    assert neutrophil["signed_off_by"] == "'=HYPERLINK(1)"  # a spreadsheet shows it, never runs it
