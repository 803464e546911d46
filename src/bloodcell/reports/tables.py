"""The slide as CSV: one row per cell, and a summary with one row per class.

Both are tidy tables (one header, one kind of row) so a spreadsheet or a LIS import
reads them without special cases; slide-level counts repeat on every summary row.
"""

from __future__ import annotations

from collections.abc import Iterable

from bloodcell.slides.cell import Slide
from bloodcell.slides.differential import Differential
from bloodcell.slides.table import RESULT_COLUMNS, number, result_values, write_csv

CELL_COLUMNS = (
    "slide",
    "name",
    "generation",
    "status",
    *RESULT_COLUMNS,
    "reviewed_label",
    "reviewer",
    "reviewed_at",
    "counted_as",
    "uploaded",
    "finished",
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
    "nucleated_red_per_100_wbc",
    "wbc_1e9_per_l",
    "signed_off_by",
    "signed_off_at",
)


def cells_csv(report: Slide) -> str:
    reviewed = report.reviewed

    def rows() -> Iterable[list[object]]:
        for cell in report.cells:
            review = cell.review
            yield [
                report.slide,
                cell.upload_name,
                cell.generation,
                cell.status,
                *result_values(cell),
                review.label if review else "",
                review.reviewer if review else "",
                review.at if review else "",
                cell.counted_as(reviewed) or "",
                cell.uploaded_at or "",
                cell.finished or "",
            ]

    return write_csv(CELL_COLUMNS, rows())


def summary_csv(report: Slide, diff: Differential) -> str:
    status = "final" if report.sign_off else "preliminary"
    slide_level = [
        diff.counted,
        diff.uncertain,
        diff.rejected,
        diff.excluded_total,
        diff.pending,
        diff.reviewed,
        diff.unreviewed,
        number(diff.nucleated_red_per_100, 1),
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
            number(row.percent, 1),
            number(row.ci_low, 2),
            number(row.ci_high, 2),
            f"{row.ref_low:g}",
            f"{row.ref_high:g}",
            row.flag,
            number(row.absolute, 3),
            *slide_level,
        ]
        for row in diff.rows
    ]
    return write_csv(SUMMARY_COLUMNS, rows)
