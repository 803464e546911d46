"""The batch report: the differential count next to reference ranges, and the CSV download."""

from __future__ import annotations

from datetime import datetime

from nicegui import ui

from bloodcell.slides.differential import Differential
from bloodcell.slides.references import DEFAULT_REFERENCES, ReferenceTable
from bloodcell.slides.vocabulary import label_words
from bloodcell.web import batch, charts
from bloodcell.web.batch import Entry, batch_differential

COUNTING_NOTE = (
    "Percentages count only confidently classified cells. Uncertain cells are listed separately and "
    "left out of the differential, as are rejected images. These are the model's labels, unverified, "
    "so nothing is flagged high or low: review them on a slide for a count a lab can sign. "
    "A manual differential counts 100 cells; with fewer, these percentages are rough."
)


class Report:
    """Built once per page; ``update`` rewrites the table in place and feeds the chart new options.

    The chart element is kept rather than recreated: ECharts loads asynchronously, and
    unmounting one before it has initialised raises an error in the browser.
    """

    def __init__(self, entries: list[Entry], references: ReferenceTable = DEFAULT_REFERENCES) -> None:
        self.entries = entries
        self.references = references
        with ui.card().classes("w-full gap-3 bc-report"):
            with ui.row().classes("w-full items-center"):
                ui.label("Batch report · differential count").classes("text-subtitle1 font-medium")
                ui.space()
                self.button = ui.button("Download CSV", icon="download", on_click=self.download)
                self.button.props("outline")
            self.empty = ui.label("Add images above; the count fills in as results arrive.").classes(
                "text-grey-7"
            )
            with ui.row().classes("w-full gap-6 items-start") as self.body:
                self.figures = ui.column().classes("grow basis-96 gap-2")
                self.chart = ui.echart(charts.differential_chart(batch_differential([], references)))
                self.chart.classes("grow basis-80 h-64")
            self.note = ui.label(COUNTING_NOTE).classes("text-xs text-grey-7")
        self.update()

    def update(self) -> None:
        diff = batch_differential(self.entries, self.references)
        self.button.set_enabled(bool(self.entries))
        for element in (self.body, self.note):
            element.set_visibility(diff.total > 0)
        self.empty.set_visibility(diff.total == 0)
        self.figures.clear()
        with self.figures:
            _table(diff)
            _tallies(diff)
        self.chart.set_visibility(diff.counted > 0)
        self.chart.options.clear()
        self.chart.options.update(charts.differential_chart(diff))
        self.chart.update()

    def download(self) -> None:
        name = f"bloodcell-batch-{datetime.now():%Y%m%d-%H%M%S}.csv"
        ui.download.content(batch.to_csv(self.entries).encode("utf-8"), name, media_type="text/csv")


def _table(diff: Differential) -> None:
    with ui.grid(columns="auto auto auto auto auto").classes("gap-x-6 gap-y-1 items-center bc-differential"):
        for heading in ("Cell type", "Count", "Percent", "Reference", ""):
            ui.label(heading).classes("text-xs text-grey-7 uppercase")
        for row in diff.rows:
            ui.label(label_words(row.label)).classes("font-medium")
            ui.label(str(row.count)).mark(f"count-{row.label}")
            ui.label(row.shown).mark(f"percent-{row.label}")
            ui.label(f"{row.ref_low:g}–{row.ref_high:g} %").classes("text-grey-7").mark(
                f"reference-{row.label}"
            )
            if row.flag:
                ui.badge(f"{row.flag} ⚑", color="negative").mark(f"flag-{row.label}").tooltip(
                    f"Outside the reference range of {row.ref_low:g}–{row.ref_high:g} %"
                )
            else:
                ui.label(
                    "in range" if row.flag == "" and row.verified and row.percent is not None else ""
                ).classes("text-positive text-xs")


def _tallies(diff: Differential) -> None:
    with ui.row().classes("gap-2"):
        for key, text, colour in (
            ("counted", f"{diff.counted} counted", "primary"),
            ("uncertain", f"{diff.uncertain} uncertain (not counted)", "warning"),
            ("rejected", f"{diff.rejected} rejected", "negative"),
            ("waiting", f"{diff.pending} waiting", "grey-6"),
        ):
            ui.chip(text, color=colour).props("outline dense").mark(f"tally-{key}")
