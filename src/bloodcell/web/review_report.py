"""The slide's differential: model counts and reviewed counts side by side, unreviewed cells marked."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from nicegui import ui

from bloodcell.review.differential import ReviewDifferential, review_differential
from bloodcell.review.slides import Cell
from bloodcell.review.state import ReviewedCell
from bloodcell.web import batch

NOTE = (
    "Reviewed percentages count the cells a person confirmed as one of the four types; "
    "'not a white cell' and 'unusable' are left out. Model percentages leave out uncertain cells. "
    "A manual differential counts 100 cells."
)


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} %"


class ReviewReport:
    def __init__(self) -> None:
        with ui.card().classes("grow basis-96 gap-2 min-w-0 bc-review-report"):
            ui.label("Differential · model and reviewed").classes("text-subtitle1 font-medium")
            self.body = ui.column().classes("w-full gap-2")
            ui.label(NOTE).classes("text-xs text-grey-7")

    def update(self, cells: Sequence[Cell], reviewed: Mapping[tuple[str, str], ReviewedCell]) -> None:
        diff = review_differential(cells, reviewed)
        self.body.clear()
        with self.body:
            _table(diff)
            _tallies(diff)


def _table(diff: ReviewDifferential) -> None:
    with (
        ui.element("div").classes("w-full overflow-x-auto"),
        ui.grid(columns="auto auto auto auto auto auto").classes(
            "gap-x-4 gap-y-1 items-center whitespace-nowrap"
        ),
    ):
        for heading in ("Cell type", "Model", "%", "Reviewed", "%", "Reference"):
            ui.label(heading).classes("text-xs text-grey-7 uppercase")
        for row in diff.rows:
            ui.label(batch.label_words(row.label)).classes("font-medium")
            ui.label(str(row.model)).mark(f"model-count-{row.label}")
            ui.label(_percent(row.model_percent)).classes("text-grey-8")
            ui.label(str(row.reviewed)).classes("font-medium").mark(f"reviewed-count-{row.label}")
            flagged = row.reviewed_percent is not None and not row.low <= row.reviewed_percent <= row.high
            ui.label(_percent(row.reviewed_percent)).classes("text-negative" if flagged else "").mark(
                f"reviewed-percent-{row.label}"
            )
            ui.label(f"{row.low:g}–{row.high:g} %").classes("text-grey-7")


def _tallies(diff: ReviewDifferential) -> None:
    with ui.row().classes("gap-2"):
        for key, text, colour in (
            (
                "unreviewed",
                f"{diff.unreviewed} not reviewed yet",
                "warning" if diff.unreviewed else "positive",
            ),
            ("reviewed", f"{diff.reviewed_counted} reviewed white cells", "primary"),
            ("not-white", f"{diff.not_white} not a white cell", "grey-7"),
            ("unusable", f"{diff.unusable} unusable", "grey-7"),
            ("uncertain", f"{diff.model_uncertain} uncertain by the model", "warning"),
            ("rejected", f"{diff.rejected} rejected", "negative"),
            ("waiting", f"{diff.waiting} waiting", "grey-6"),
        ):
            ui.chip(text, color=colour).props("outline dense").mark(f"review-tally-{key}")
