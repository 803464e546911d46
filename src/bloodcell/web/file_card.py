"""One file's card on the batch page: thumbnail, pipeline steps, and the outcome in words.

Redrawn from its ``Entry`` only when the stage changes, so a batch of many files
costs one small rebuild per transition, not a page refresh.
"""

from __future__ import annotations

from nicegui import ui

from bloodcell.results import Result
from bloodcell.slides.vocabulary import label_words
from bloodcell.web import batch, charts
from bloodcell.web.batch import Entry

STEPS = (batch.UPLOADED, batch.PREPROCESSED, batch.CLASSIFIED)


class FileCard:
    """One file's card; ``render`` rebuilds it from the entry."""

    def __init__(
        self, entry: Entry, parent: ui.element, rule: tuple[float | None, float | None] = (None, None)
    ) -> None:
        self.entry = entry
        self.rule = rule
        with parent:
            self.card = ui.card().classes("w-full p-3 gap-2").props("flat bordered")
        self.card.mark(f"file-{entry.original}")
        with self.card:
            self._body()

    def render(self) -> None:
        self._body.refresh()

    @ui.refreshable_method
    def _body(self) -> None:
        entry = self.entry
        with ui.row().classes("w-full no-wrap gap-3 items-start"):
            if entry.name and entry.stage != batch.REFUSED:
                ui.image(f"/thumb/{entry.name}").classes("w-24 h-24 rounded shrink-0").props("fit=cover")
            else:
                ui.icon("image_not_supported", size="48px").classes("w-24 text-grey-5 shrink-0")
            with ui.column().classes("grow gap-1 min-w-0").mark("stage-" + entry.stage.replace(" ", "-")):
                name = ui.label(entry.original).classes("font-medium text-sm ellipsis w-full")
                name.tooltip(entry.original)
                self._steps()
                self._outcome()

    def _steps(self) -> None:
        """uploaded > preprocessed > classified, with a red mark on the step that rejected the file."""
        entry = self.entry
        if entry.stage in (batch.REFUSED, batch.UPLOADING):
            return
        reached = {batch.UPLOADED: 1, batch.PREPROCESSED: 2, batch.TIMED_OUT: 1}.get(entry.stage, 3)
        failed = None
        if entry.stage == batch.REJECTED:
            failed = 2 if entry.result and entry.result.rejected_by == "preprocess" else 3
            reached = failed - 1
        with ui.row().classes("gap-1 items-center text-xs text-grey-7 bc-steps"):
            for index, step in enumerate(STEPS, start=1):
                if index == failed:
                    icon, colour = "cancel", "text-negative"
                elif index <= reached:
                    icon, colour = "check_circle", "text-positive"
                elif index == reached + 1 and failed is None:
                    icon, colour = "pending", "text-primary"
                else:
                    icon, colour = "radio_button_unchecked", "text-grey-5"
                ui.icon(icon, size="14px").classes(colour)
                ui.label(step)
                if index < len(STEPS):
                    ui.icon("chevron_right", size="14px").classes("text-grey-5")

    def _outcome(self) -> None:
        entry = self.entry
        result = entry.result
        if entry.stage == batch.UPLOADING:
            with ui.row().classes("items-center gap-2"):
                ui.spinner(size="sm")
                ui.label("uploading…").classes("text-grey-7")
        elif entry.stage in (batch.UPLOADED, batch.PREPROCESSED):
            ui.label("waiting for the classifier…").classes("text-grey-7 text-sm")
        elif entry.stage == batch.REFUSED:
            ui.label(f"Not uploaded: {entry.reason}").classes("text-negative text-sm bc-reason")
        elif entry.stage == batch.TIMED_OUT:
            ui.label(f"Still waiting: {entry.reason}").classes("text-orange-9 text-sm bc-reason")
        elif entry.stage == batch.REJECTED:
            by = result.rejected_by if result else None
            with ui.row().classes("items-start gap-1 no-wrap"):
                ui.icon("block", size="18px").classes("text-negative")
                ui.label(f"Rejected{f' by {by}' if by else ''}: {entry.reason}").classes(
                    "text-negative text-sm bc-reason"
                )
        elif result is not None:
            self._classified(result)

    def _classified(self, result: Result) -> None:
        """A firm answer reads as one; a low-confidence one leads with "Uncertain", not the type."""
        uncertain = bool(result.uncertain)
        confidence = result.confidence or 0.0
        words = label_words(str(result.label))
        with ui.row().classes("items-baseline gap-x-2 gap-y-0"):
            if uncertain:
                ui.label("Uncertain").classes("text-h6 text-amber-10")
                ui.label("most likely").classes("text-grey-7")
                ui.label(words).classes("font-medium bc-label")
            else:
                ui.label(words).classes("text-h6 bc-label")
            ui.label(f"{100 * confidence:.0f} % confidence").classes("text-grey-8")
        if uncertain:
            why = batch.uncertain_reason(result.confidence, result.other_probability, *self.rule)
            note = f"{why}. Check this cell by eye; it is not counted in the differential."
            ui.label(note).classes("text-xs text-amber-10")
        ui.echart(charts.probability_chart(dict(result.probabilities or {}), uncertain)).classes(
            "w-full h-24"
        )
        model = result.model
        parts = [f"model {model.name} {model.version}"] if model else []
        if (ms := batch.processing_ms(result)) is not None:
            parts.append(f"{ms:.0f} ms processing")
        if (seconds := batch.turnaround_s(result)) is not None:
            parts.append(f"{seconds:.1f} s from upload to result")
        ui.label(" · ".join(parts)).classes("text-xs text-grey-6")
