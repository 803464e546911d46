"""The batch report: the differential count next to reference ranges, and the CSV download."""

from __future__ import annotations

from datetime import datetime

from nicegui import ui

from bloodcell.web import batch, charts
from bloodcell.web.batch import Differential, Entry

COUNTING_NOTE = (
    "Percentages count only confidently classified cells. Uncertain cells are listed separately and "
    "left out of the differential, as are rejected images. A manual differential counts 100 cells; "
    "with fewer, these percentages are rough."
)


def render_report(diff: Differential, entries: list[Entry]) -> None:
    """Rebuilt whenever a file finishes; cheap, since it is one table and one chart."""
    with ui.card().classes("w-full gap-3 bc-report"):
        with ui.row().classes("w-full items-center"):
            ui.label("Batch report · differential count").classes("text-subtitle1 font-medium")
            ui.space()
            button = ui.button("Download CSV", icon="download", on_click=lambda: download_csv(entries))
            button.props("outline").set_enabled(bool(entries))
        if diff.total == 0:
            ui.label("Add images above; the count fills in as results arrive.").classes("text-grey-7")
            return
        with ui.row().classes("w-full gap-6 items-start"):
            with ui.column().classes("grow basis-96 gap-2"):
                _table(diff)
                _tallies(diff)
            if diff.counted:
                ui.echart(charts.differential_chart(diff)).classes("grow basis-80 h-64")
        ui.label(COUNTING_NOTE).classes("text-xs text-grey-7")


def _table(diff: Differential) -> None:
    with ui.grid(columns="auto auto auto auto auto").classes("gap-x-6 gap-y-1 items-center bc-differential"):
        for heading in ("Cell type", "Count", "Percent", "Reference", ""):
            ui.label(heading).classes("text-xs text-grey-7 uppercase")
        for row in diff.rows:
            ui.label(batch.label_words(row.label)).classes("font-medium")
            ui.label(str(row.count)).mark(f"count-{row.label}")
            ui.label("–" if row.percent is None else f"{row.percent:.1f} %").mark(f"percent-{row.label}")
            ui.label(f"{row.low:g}–{row.high:g} %").classes("text-grey-7")
            if row.flag:
                ui.badge(f"{row.flag} ⚑", color="negative").mark(f"flag-{row.label}").tooltip(
                    f"Outside the typical adult range of {row.low:g}–{row.high:g} %"
                )
            else:
                ui.label("in range" if row.percent is not None else "").classes("text-positive text-xs")


def _tallies(diff: Differential) -> None:
    with ui.row().classes("gap-2"):
        for key, text, colour in (
            ("counted", f"{diff.counted} counted", "primary"),
            ("uncertain", f"{diff.uncertain} uncertain (not counted)", "warning"),
            ("rejected", f"{diff.rejected} rejected", "negative"),
            ("waiting", f"{diff.pending} waiting", "grey-6"),
        ):
            ui.chip(text, color=colour).props("outline dense").mark(f"tally-{key}")


def download_csv(entries: list[Entry]) -> None:
    name = f"bloodcell-batch-{datetime.now():%Y%m%d-%H%M%S}.csv"
    ui.download.content(batch.to_csv(entries).encode("utf-8"), name, media_type="text/csv")
