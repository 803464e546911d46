"""The slide as CSV: one row per cell, and a summary with one row per class.

Both are tidy tables (one header, one kind of row) so a spreadsheet or a LIS import
reads them without special cases; slide-level counts repeat on every summary row.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from bloodcell.contract import LABELS
from bloodcell.reports.model import SlideReport
from bloodcell.reports.stats import Differential
from bloodcell.web.batch import _cell as spreadsheet_safe

CELL_COLUMNS = (
    "slide",
    "name",
    "generation",
    "status",
    "model_label",
    "confidence",
    *(f"p_{label.lower()}" for label in LABELS),
    "other_probability",
    "uncertain",
    "reviewed_label",
    "reviewer",
    "reviewed_at",
    "counted_as",
    "reason",
    "uploaded",
    "finished",
    "model",
)
SUMMARY_COLUMNS = (
    "slide",
    "report_status",
    "basis",
    "label",
    "count",
    "percent",
    "ci95_low",
    "ci95_high",
    "ref_low",
    "ref_high",
    "flag",
    "absolute_1e9_per_l",
    "counted",
    "uncertain",
    "rejected",
    "excluded_by_review",
    "pending",
    "reviewed",
    "unreviewed",
    "wbc_1e9_per_l",
    "signed_off_by",
    "signed_off_at",
)


def _number(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _write(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(spreadsheet_safe(value) for value in row)
    return buffer.getvalue()


def cells_csv(report: SlideReport) -> str:
    def rows() -> Iterable[list[object]]:
        for cell in report.cells:
            review = cell.review
            model = f"{cell.model_name} {cell.model_version}" if cell.model_name else ""
            yield [
                report.slide,
                cell.name,
                cell.generation,
                cell.status,
                cell.label or "",
                _number(cell.confidence),
                *(_number(cell.probability(label)) for label in LABELS),
                _number(cell.other_probability),
                "" if cell.status != "classified" else str(cell.uncertain).lower(),
                review.label if review else "",
                review.reviewer if review else "",
                review.at if review else "",
                cell.counted_label or "",
                cell.reason or "",
                cell.uploaded or "",
                cell.finished or "",
                model,
            ]

    return _write(CELL_COLUMNS, rows())


def summary_csv(report: SlideReport, diff: Differential) -> str:
    status = "final" if report.sign_off else "preliminary"
    slide_level = [
        diff.counted,
        diff.uncertain,
        diff.rejected,
        diff.excluded,
        diff.pending,
        diff.reviewed,
        diff.unreviewed,
        "" if diff.wbc is None else f"{diff.wbc:g}",
        report.sign_off.by if report.sign_off else "",
        report.sign_off.at if report.sign_off else "",
    ]
    rows = [
        [
            report.slide,
            status,
            diff.basis,
            row.label,
            row.count,
            _number(row.percent, 2),
            _number(row.ci_low, 2),
            _number(row.ci_high, 2),
            f"{row.ref_low:g}",
            f"{row.ref_high:g}",
            row.flag,
            _number(row.absolute, 3),
            *slide_level,
        ]
        for row in diff.rows
    ]
    return _write(SUMMARY_COLUMNS, rows)
