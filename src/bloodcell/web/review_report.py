"""The slide's differential: model counts and reviewed counts side by side, unreviewed cells marked.

Both columns are ``bloodcell.slides.differential``, once on each basis, against the
lab's reference ranges (``REPORT_REFERENCE_RANGES``), exactly as the reports state
them. Built once; ``update`` only changes texts, so a verdict costs a few text
updates, not a rebuilt table. Rows of the reviewer's extra categories (basophil,
blast, ...) are part of the table from the start, hidden until one is counted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from nicegui import ui

from bloodcell.slides.categories import COUNTED_LABELS, NOT_A_WHITE_CELL, SMUDGE, UNUSABLE, category_words
from bloodcell.slides.cell import Cell, Review
from bloodcell.slides.differential import Differential, Row, differential
from bloodcell.slides.references import DEFAULT_REFERENCES, ReferenceTable
from bloodcell.slides.vocabulary import MODEL, REPORT_ORDER, REVIEWED

NOTE = (
    "Reviewed percentages count the white cells a person confirmed; 'not a white cell', 'unusable' and "
    "smudge cells are left out, nucleated red cells are given per 100 white cells. Model percentages leave "
    "out uncertain cells and are never flagged: nobody has verified them. H/L flags judge the printed value."
)
TALLIES = (
    "unreviewed",
    "reviewed",
    "not-white",
    "unusable",
    "smudge",
    "nrbc",
    "uncertain",
    "rejected",
    "waiting",
)
COLOURS = {"reviewed": "primary", "uncertain": "warning", "rejected": "negative", "waiting": "grey-6"}


def with_reviews(cells: Sequence[Cell], reviewed: Mapping[tuple[str, str], Review]) -> list[Cell]:
    return [replace(c, review=reviewed.get(c.key)) for c in cells]


class ReviewReport:
    def __init__(self, references: ReferenceTable = DEFAULT_REFERENCES, target: int = 100) -> None:
        self.references = references
        self.target = target
        self.cells: dict[tuple[str, str], ui.label] = {}
        self.rows: dict[str, list[ui.label]] = {}
        self.chips: dict[str, ui.chip] = {}
        self.reference_labels: dict[str, ui.label] = {}
        self._last: tuple[Sequence[Cell], Mapping[tuple[str, str], Review]] | None = None
        with ui.card().classes("grow basis-96 gap-2 min-w-0 bc-review-report"):
            ui.label("Differential · model and reviewed").classes("text-subtitle1 font-medium")
            self.counter = ui.label("").classes("text-sm font-medium").mark("count-target")
            self.progress = ui.linear_progress(value=0.0, show_value=False, size="8px")
            with (
                ui.element("div").classes("w-full overflow-x-auto"),
                ui.grid(columns="auto auto auto auto auto auto auto").classes(
                    "gap-x-4 gap-y-1 items-center whitespace-nowrap"
                ),
            ):
                for heading in ("Cell type", "Model", "%", "Reviewed", "%", "Flag", "Reference"):
                    ui.label(heading).classes("text-xs text-grey-7 uppercase")
                for label in COUNTED_LABELS:
                    low, high = references.get(label, (0.0, 100.0))
                    row = [ui.label(category_words(label)).classes("font-medium")]
                    for column, classes in (
                        ("model", ""),
                        ("model-percent", "text-grey-8"),
                        ("reviewed", "font-medium"),
                        ("reviewed-percent", ""),
                        ("flag", "text-negative font-medium"),
                    ):
                        cell = (
                            ui.label("0" if column in ("model", "reviewed") else "")
                            .classes(classes)
                            .mark(
                                f"{column}-count-{label}".replace("-percent-count", "-percent").replace(
                                    "flag-count", "review-flag"
                                )
                            )
                        )
                        self.cells[(column, label)] = cell
                        row.append(cell)
                    reference = (
                        ui.label(f"{low:g}–{high:g} %")
                        .classes("text-grey-7")
                        .mark(f"review-reference-{label}")
                    )
                    self.reference_labels[label] = reference
                    row.append(reference)
                    self.rows[label] = row
                    if label not in REPORT_ORDER:
                        for element in row:
                            element.set_visibility(False)
            with ui.row().classes("gap-2"):
                for key in TALLIES:
                    chip = ui.chip("", color=COLOURS.get(key, "grey-7")).props("outline dense")
                    self.chips[key] = chip.mark(f"review-tally-{key}")
            ui.label(NOTE).classes("text-xs text-grey-7")

    def set_references(self, references: ReferenceTable) -> None:
        """The patient's ranges (age band and sex) once they are known or changed."""
        if dict(references) == dict(self.references):
            return
        self.references = references
        for label, element in self.reference_labels.items():
            low, high = references.get(label, (0.0, 100.0))
            element.set_text(f"{low:g}–{high:g} %")
        if self._last is not None:
            self.update(*self._last)

    def update(self, cells: Sequence[Cell], reviewed: Mapping[tuple[str, str], Review]) -> None:
        self._last = (cells, reviewed)
        cells = with_reviews(cells, reviewed)
        model = differential(cells, MODEL, self.references)
        people = differential(cells, REVIEWED, self.references)
        by_model: dict[str, Row] = {row.label: row for row in model.rows}
        for row in people.rows:
            own = by_model.get(row.label)
            self.cells[("model", row.label)].set_text(str(own.count) if own else "–")
            self.cells[("model-percent", row.label)].set_text(own.shown if own else "–")
            self.cells[("reviewed", row.label)].set_text(str(row.count))
            self.cells[("reviewed-percent", row.label)].set_text(row.shown)
            self.cells[("flag", row.label)].set_text(row.flag)
            for element in self.rows[row.label]:
                element.set_visibility(True)
        self._counter(people)
        self._tallies(model, people)

    def _counter(self, people: Differential) -> None:
        done = min(people.counted, self.target)
        self.counter.set_text(f"{people.counted} of {self.target} white cells counted")
        self.progress.set_value(done / self.target if self.target else 0.0)

    def _tallies(self, model: Differential, people: Differential) -> None:
        texts = {
            "unreviewed": f"{people.unreviewed} not reviewed yet",
            "reviewed": f"{people.counted} reviewed white cells",
            "not-white": f"{people.excluded.get(NOT_A_WHITE_CELL, 0)} not a white cell",
            "unusable": f"{people.excluded.get(UNUSABLE, 0)} unusable",
            "smudge": f"{people.excluded.get(SMUDGE, 0)} smudge",
            "nrbc": f"{people.nucleated_red} nucleated red",
            "uncertain": f"{model.uncertain} uncertain by the model",
            "rejected": f"{model.rejected} rejected",
            "waiting": f"{model.pending} waiting",
        }
        for key, text in texts.items():
            self.chips[key].set_text(text)
        self.chips["unreviewed"].props(f"color={'warning' if people.unreviewed else 'positive'}")
