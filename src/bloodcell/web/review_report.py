"""The slide's differential: model counts and reviewed counts side by side, unreviewed cells marked.

Built once; ``update`` only changes texts, so a verdict costs a few text updates, not a rebuilt table.
"""

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
TALLIES = ("unreviewed", "reviewed", "not-white", "unusable", "uncertain", "rejected", "waiting")
COLOURS = {"reviewed": "primary", "uncertain": "warning", "rejected": "negative", "waiting": "grey-6"}


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} %"


class ReviewReport:
    def __init__(self) -> None:
        self.cells: dict[tuple[str, str], ui.label] = {}
        self.chips: dict[str, ui.chip] = {}
        with ui.card().classes("grow basis-96 gap-2 min-w-0 bc-review-report"):
            ui.label("Differential · model and reviewed").classes("text-subtitle1 font-medium")
            with (
                ui.element("div").classes("w-full overflow-x-auto"),
                ui.grid(columns="auto auto auto auto auto auto").classes(
                    "gap-x-4 gap-y-1 items-center whitespace-nowrap"
                ),
            ):
                for heading in ("Cell type", "Model", "%", "Reviewed", "%", "Reference"):
                    ui.label(heading).classes("text-xs text-grey-7 uppercase")
                for label in batch.REPORT_ORDER:
                    low, high = batch.REFERENCE_RANGES[label]
                    ui.label(batch.label_words(label)).classes("font-medium")
                    for column, classes in (
                        ("model", ""),
                        ("model-percent", "text-grey-8"),
                        ("reviewed", "font-medium"),
                        ("reviewed-percent", ""),
                    ):
                        cell = (
                            ui.label("0")
                            .classes(classes)
                            .mark(f"{column}-count-{label}".replace("-percent-count", "-percent"))
                        )
                        self.cells[(column, label)] = cell
                    ui.label(f"{low:g}–{high:g} %").classes("text-grey-7")
            with ui.row().classes("gap-2"):
                for key in TALLIES:
                    chip = ui.chip("", color=COLOURS.get(key, "grey-7")).props("outline dense")
                    self.chips[key] = chip.mark(f"review-tally-{key}")
            ui.label(NOTE).classes("text-xs text-grey-7")

    def update(self, cells: Sequence[Cell], reviewed: Mapping[tuple[str, str], ReviewedCell]) -> None:
        diff = review_differential(cells, reviewed)
        for row in diff.rows:
            self.cells[("model", row.label)].set_text(str(row.model))
            self.cells[("model-percent", row.label)].set_text(_percent(row.model_percent))
            self.cells[("reviewed", row.label)].set_text(str(row.reviewed))
            shown = self.cells[("reviewed-percent", row.label)]
            shown.set_text(_percent(row.reviewed_percent))
            flagged = row.reviewed_percent is not None and not row.low <= row.reviewed_percent <= row.high
            shown.classes(add="text-negative" if flagged else "", remove="" if flagged else "text-negative")
        self._tallies(diff)

    def _tallies(self, diff: ReviewDifferential) -> None:
        texts = {
            "unreviewed": f"{diff.unreviewed} not reviewed yet",
            "reviewed": f"{diff.reviewed_counted} reviewed white cells",
            "not-white": f"{diff.not_white} not a white cell",
            "unusable": f"{diff.unusable} unusable",
            "uncertain": f"{diff.model_uncertain} uncertain by the model",
            "rejected": f"{diff.rejected} rejected",
            "waiting": f"{diff.waiting} waiting",
        }
        for key, text in texts.items():
            self.chips[key].set_text(text)
        self.chips["unreviewed"].props(f"color={'warning' if diff.unreviewed else 'positive'}")
