"""One slide to one file, by format: what the command and the web routes both call."""

from __future__ import annotations

from bloodcell.reports import fhir, pdf, tables
from bloodcell.reports.gallery import crop_reader
from bloodcell.reports.kinds import FORMATS
from bloodcell.reports.loader import load_slide
from bloodcell.reports.stats import report_differential
from bloodcell.settings import Settings
from bloodcell.slides.references import references
from bloodcell.storage import Storage


def report_bytes(
    storage: Storage, settings: Settings, slide: str, kind: str, wbc: float | None = None
) -> bytes:
    """The slide's report in ``kind`` (a key of ``FORMATS``); RejectedInput for a bad slide or WBC."""
    if kind not in FORMATS:
        raise ValueError(f"unknown report format {kind!r}")
    report = load_slide(storage, settings, slide)
    if kind == "csv":
        return tables.cells_csv(report).encode("utf-8")
    diff = report_differential(report.cells, references(settings, report.patient), wbc)
    if kind == "summary":
        return tables.summary_csv(report, diff).encode("utf-8")
    if kind == "fhir":
        return fhir.encode(fhir.bundle(report, diff))
    return pdf.render(report, diff, crop_reader(storage, settings), settings.lab_timezone)
