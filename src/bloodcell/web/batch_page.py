"""The batch page: upload many images, watch each one move through the pipeline, read the count.

State lives in one ``BatchView`` per browser tab. Uploads are written to the
upload bucket and then only observed: a timer polls the tensor and result
buckets (through ``run.io_bound``) and each file card is redrawn only when its
stage changes.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from nicegui import events, run, ui

from bloodcell.errors import BloodcellError
from bloodcell.settings import Settings
from bloodcell.web import batch, charts, results_feed
from bloodcell.web.batch import Entry
from bloodcell.web.report import render_report

log = logging.getLogger(__name__)
POLL_SECONDS = 0.5
STEPS = (batch.UPLOADED, batch.PREPROCESSED, batch.CLASSIFIED)


class FileCard:
    """One file's card; ``render`` rebuilds it from the entry."""

    def __init__(self, entry: Entry, parent: ui.element) -> None:
        self.entry = entry
        with parent:
            self.card = ui.card().classes("w-full p-3 gap-2").props("flat bordered")
        self.card.mark(f"file-{entry.original}")
        self.render()

    def render(self) -> None:
        entry = self.entry
        self.card.clear()
        with self.card, ui.row().classes("w-full no-wrap gap-3 items-start"):
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
            failed = 2 if (entry.result or {}).get("rejected_by") == "preprocess" else 3
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
        result = entry.result or {}
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
            by = result.get("rejected_by")
            with ui.row().classes("items-start gap-1 no-wrap"):
                ui.icon("block", size="18px").classes("text-negative")
                ui.label(f"Rejected{f' by {by}' if by else ''}: {entry.reason}").classes(
                    "text-negative text-sm bc-reason"
                )
        else:
            self._classified(result)

    def _classified(self, result: dict[str, object]) -> None:
        """A firm answer reads as one; a low-confidence one leads with "Uncertain", not the type."""
        uncertain = bool(result.get("uncertain"))
        confidence = float(result.get("confidence") or 0.0)  # type: ignore[arg-type]
        words = batch.label_words(str(result.get("label")))
        with ui.row().classes("items-baseline gap-x-2 gap-y-0"):
            if uncertain:
                ui.label("Uncertain").classes("text-h6 text-amber-10")
                ui.label("most likely").classes("text-grey-7")
                ui.label(words).classes("font-medium bc-label")
            else:
                ui.label(words).classes("text-h6 bc-label")
            ui.label(f"{100 * confidence:.0f} % confidence").classes("text-grey-8")
        if uncertain:
            note = "Low confidence: check this cell by eye. It is not counted in the differential."
            ui.label(note).classes("text-xs text-amber-10")
        probs = result.get("probabilities") or {}
        ui.echart(charts.probability_chart(probs, uncertain)).classes("w-full h-24")  # type: ignore[arg-type]
        model = result.get("model") or {}
        parts = [f"model {model.get('name')} {model.get('version')}"] if model else []  # type: ignore[union-attr]
        if (ms := batch.processing_ms(result)) is not None:
            parts.append(f"{ms:.0f} ms processing")
        if (seconds := batch.turnaround_s(result)) is not None:
            parts.append(f"{seconds:.1f} s from upload to result")
        ui.label(" · ".join(parts)).classes("text-xs text-grey-6")


class BatchView:
    """The whole page for one tab: uploader, overall progress, report, and file cards."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.entries: list[Entry] = []
        self.cards: dict[int, FileCard] = {}
        self._polling = False
        limit_mb = settings.max_upload_bytes / batch.MB
        kinds = ", ".join(s[1:].upper() for s in batch.ACCEPTED_SUFFIXES if s not in (".jpeg", ".tif"))
        with ui.row().classes("w-full gap-4 items-start"):
            with ui.card().classes("grow basis-80 gap-2"):
                ui.label("1 · Add images of one slide").classes("text-subtitle1 font-medium")
                self.upload = (
                    ui.upload(
                        multiple=True,
                        auto_upload=True,
                        max_file_size=settings.max_upload_bytes,
                        on_upload=self.on_upload,
                        on_rejected=self.on_rejected,
                        label="Cell images",
                    )
                    .props(f'accept="{",".join(batch.ACCEPTED_SUFFIXES)}" flat bordered color=primary')
                    .classes("w-full bc-upload")
                )
                with self.upload.add_slot("list"), ui.column().classes("w-full items-center gap-0 py-4"):
                    ui.icon("cloud_upload", size="40px").classes("text-indigo-3")
                    ui.label("Drop a batch of cell images here").classes("text-grey-8")
                    ui.label("or click + to choose files").classes("text-xs text-grey-6")
                ui.label(f"{kinds} · up to {limit_mb:.0f} MB each · many files at once").classes(
                    "text-xs text-grey-7"
                )
                ui.button("Start a new batch", icon="restart_alt", on_click=self.clear).props("flat dense")
            with ui.card().classes("grow basis-80 gap-2"):
                ui.label("2 · Progress").classes("text-subtitle1 font-medium")
                self.progress_label = ui.label("No images yet.").classes("text-grey-8").mark("progress")
                self.progress = ui.linear_progress(value=0.0, show_value=False, size="12px")
                self.progress.props("rounded animation-speed=300")
                self.stage_counts = ui.label("").classes("text-xs text-grey-7")
        self.report_box = ui.column().classes("w-full")
        ui.label("3 · Files").classes("text-subtitle1 font-medium")
        self.grid = ui.element("div").classes("w-full grid gap-3 grid-cols-1 md:grid-cols-2 xl:grid-cols-3")
        ui.timer(POLL_SECONDS, self.tick)
        self.refresh_summary()

    # ---- uploads ----

    async def on_upload(self, event: events.UploadEventArguments) -> None:
        file = event.file
        entry = Entry(original=batch.sanitise_name(file.name))
        self._add(entry)
        if reason := batch.refusal(file.name, file.size(), self.settings.max_upload_bytes):
            entry.stage, entry.reason = batch.REFUSED, reason
            log.info("web: refused upload %r: %s", entry.original, reason)
            return self._changed(entry)
        data = await file.read()
        entry.name = batch.object_name(file.name, datetime.now(UTC))
        try:
            info = await run.io_bound(
                results_feed.store_upload, self.settings, entry.name, data, batch.content_type(entry.original)
            )
        except BloodcellError as exc:
            log.warning("web: could not store %s: %s", entry.name, exc)
            entry.stage, entry.reason, entry.name = batch.REFUSED, f"could not store the file ({exc})", None
            return self._changed(entry)
        if info is None:  # app shutting down
            return None
        entry.generation, entry.stage, entry.started = info.generation, batch.UPLOADED, time.monotonic()
        log.info("web: stored %s/%s (%d bytes)", self.settings.upload_bucket, entry.name, len(data))
        return self._changed(entry)

    def on_rejected(self) -> None:
        limit = self.settings.max_upload_bytes / batch.MB
        ui.notify(
            f"Some files were not added: only image files up to {limit:.0f} MB are accepted.",
            type="warning",
        )

    def clear(self) -> None:
        self.entries.clear()
        self.cards.clear()
        self.grid.clear()
        self.upload.reset()
        self.refresh_summary()

    def _add(self, entry: Entry) -> None:
        self.entries.append(entry)
        self.cards[id(entry)] = FileCard(entry, self.grid)
        self.refresh_summary()

    def _changed(self, entry: Entry) -> None:
        if card := self.cards.get(id(entry)):
            card.render()
        self.refresh_summary()

    # ---- polling ----

    async def tick(self) -> None:
        waiting = [e for e in self.entries if e.name and not e.final and e.stage != batch.UPLOADING]
        if self._polling or not waiting:
            return
        self._polling = True
        try:
            found = await run.io_bound(results_feed.poll, self.settings, [str(e.name) for e in waiting])
        except BloodcellError as exc:
            log.warning("web: polling the buckets failed, retrying: %s", exc)
            return
        finally:
            self._polling = False
        if not found:
            return
        now, timeout = time.monotonic(), self.settings.result_timeout_seconds
        changed = False
        for entry in waiting:
            progress = found.get(str(entry.name))
            if progress and batch.advance(entry, progress.tensor_exists, progress.result, now, timeout):
                if card := self.cards.get(id(entry)):
                    card.render()
                changed = True
        if changed:
            self.refresh_summary()

    # ---- summary ----

    def refresh_summary(self) -> None:
        diff = batch.differential(self.entries)
        total = diff.total
        self.progress.set_value(diff.finished / total if total else 0.0)
        if total == 0:
            self.progress_label.set_text("No images yet.")
        else:
            self.progress_label.set_text(f"{diff.finished} of {total} finished")
        counts: dict[str, int] = {}
        for entry in self.entries:
            counts[entry.stage] = counts.get(entry.stage, 0) + 1
        self.stage_counts.set_text(" · ".join(f"{n} {stage}" for stage, n in counts.items()))
        self.report_box.clear()
        with self.report_box:
            render_report(diff, self.entries)
