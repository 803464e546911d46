"""The batch page: upload many images, watch each one move through the pipeline, read the count.

State lives in one ``BatchView`` per browser tab. Uploads are written to the
upload bucket and then only observed: a timer polls the tensor and result
buckets (through ``run.io_bound``) and each file card is redrawn only when its
stage changes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any

from nicegui import app, events, run, ui

from bloodcell.errors import BloodcellError
from bloodcell.formats import ACCEPTED_SUFFIXES, KINDS, content_type, format_size
from bloodcell.settings import Settings
from bloodcell.slides.references import references
from bloodcell.web import batch, pages, results_feed
from bloodcell.web.auth import current_user
from bloodcell.web.batch import Entry
from bloodcell.web.file_card import FileCard
from bloodcell.web.report import Report

log = logging.getLogger(__name__)
POLL_SECONDS = 0.5


class BatchView:
    """The whole page for one tab: uploader, overall progress, report, and file cards."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.entries: list[Entry] = []
        self.cards: dict[int, FileCard] = {}
        self.store: MutableMapping[str, Any] | None = None
        self._polling = False
        # names the browser has chosen that have not reached on_upload yet: counted in "of N chosen",
        # and reported as not uploaded if the page goes away before they arrive
        self.pending: list[str] = []
        self._guarded = False
        limit = format_size(settings.max_upload_bytes)
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
                    .props(f'accept="{",".join(ACCEPTED_SUFFIXES)}" flat bordered color=primary')
                    .classes("w-full bc-upload")
                )
                with self.upload.add_slot("list"), ui.column().classes("w-full items-center gap-0 py-4"):
                    ui.icon("cloud_upload", size="40px").classes("text-indigo-3")
                    ui.label("Drop a batch of cell images here").classes("text-grey-8")
                    ui.label("or click + to choose files").classes("text-xs text-grey-6")
                ui.label(f"{KINDS} · up to {limit} each · many files at once").classes("text-xs text-grey-7")
                ui.button("Start a new batch", icon="restart_alt", on_click=self.clear).props("flat dense")
            with ui.card().classes("grow basis-80 gap-2"):
                ui.label("2 · Progress").classes("text-subtitle1 font-medium")
                self.progress_label = ui.label("No images yet.").classes("text-grey-8").mark("progress")
                self.progress = ui.linear_progress(value=0.0, show_value=False, size="12px")
                self.progress.props("rounded animation-speed=300")
                self.stage_counts = ui.label("").classes("text-xs text-grey-7")
        self.report = Report(self.entries, references(settings))
        ui.label("3 · Files").classes("text-subtitle1 font-medium")
        self.grid = ui.element("div").classes("w-full grid gap-3 grid-cols-1 md:grid-cols-2 xl:grid-cols-3")
        self.upload.on("added", self.on_chosen, js_handler="(files) => emit(files.map(f => f.name))")
        self.upload.on(
            "rejected", self.on_refused_by_browser, js_handler="(items) => emit(items.map(i => i.file.name))"
        )
        ui.timer(POLL_SECONDS, self.tick)
        self.refresh_summary()

    # ---- uploads ----

    def on_chosen(self, event: events.GenericEventArguments) -> None:
        self.pending.extend(batch.sanitise_name(str(name)) for name in event.args or [])
        self.refresh_summary()
        self._save()

    def on_refused_by_browser(self, event: events.GenericEventArguments) -> None:
        """Files the picker itself refused (too large, not an image) still get their one answer."""
        limit = format_size(self.settings.max_upload_bytes)
        for name in event.args or []:
            entry = Entry(original=batch.sanitise_name(str(name)), stage=batch.REFUSED)
            entry.reason = f"not an accepted image, or over the limit of {limit}"
            self._add(entry)
        self._save()

    async def on_upload(self, event: events.UploadEventArguments) -> None:
        file = event.file
        entry = Entry(original=batch.sanitise_name(file.name))
        if entry.original in self.pending:
            self.pending.remove(entry.original)
        self._add(entry)
        if reason := batch.refusal(file.name, file.size(), self.settings.max_upload_bytes):
            entry.stage, entry.reason = batch.REFUSED, reason
            log.info("web: refused upload %r: %s", entry.original, reason)
            return self._changed(entry)
        data = await file.read()
        entry.name = batch.object_name(file.name, datetime.now(UTC))
        try:
            info = await run.io_bound(
                results_feed.store_upload,
                self.settings,
                entry.name,
                data,
                content_type(entry.original),
                current_user().name,
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
        limit = format_size(self.settings.max_upload_bytes)
        ui.notify(
            f"Some files were not added: only image files up to {limit} are accepted.",
            type="warning",
        )

    def clear(self) -> None:
        self.entries.clear()
        self.pending.clear()
        self.cards.clear()
        self.grid.clear()
        self.upload.reset()
        self.refresh_summary()
        self._save()

    # ---- surviving a reload: the batch's object names live in the tab's storage ----

    def restore(self, store: MutableMapping[str, Any]) -> None:
        """Bring back the files of this tab's batch; their stages come from the buckets again."""
        self.store = store
        for item in store.get("batch", []):
            entry = Entry(str(item["original"]), name=item.get("name"), generation=item.get("generation"))
            if entry.name:
                entry.stage, entry.started = batch.UPLOADED, time.monotonic()
            else:
                entry.stage, entry.reason = batch.REFUSED, item.get("reason")
            self._add(entry)
        for name in store.get("chosen", []):  # chosen, then the page went away before they arrived
            entry = Entry(str(name), stage=batch.REFUSED)
            entry.reason = "the page was reloaded or closed while it was uploading; add it again"
            self._add(entry)
        self._save()

    def _save(self) -> None:
        if self.store is None:
            return
        self.store["batch"] = [
            {"original": e.original, "name": e.name, "generation": e.generation, "reason": e.reason}
            for e in self.entries
            if e.stage != batch.UPLOADING
        ]
        # in flight (chosen or uploading): what a reload would lose
        self.store["chosen"] = [
            *self.pending,
            *(e.original for e in self.entries if e.stage == batch.UPLOADING),
        ]

    def _add(self, entry: Entry) -> None:
        self.entries.append(entry)
        self.cards[id(entry)] = FileCard(entry, self.grid, results_feed.uncertainty_rule(self.settings))
        self.refresh_summary()

    def _changed(self, entry: Entry) -> None:
        if card := self.cards.get(id(entry)):
            card.render()
        self.refresh_summary()
        self._save()

    # ---- polling ----

    async def tick(self) -> None:
        waiting = [e for e in self.entries if e.name and not e.final and e.stage != batch.UPLOADING]
        if self._polling or not waiting:
            return
        self._polling = True
        need_tensors = any(e.stage == batch.UPLOADED for e in waiting)
        try:
            found = await run.io_bound(
                results_feed.poll, self.settings, [str(e.name) for e in waiting], need_tensors
            )
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
        diff = batch.batch_differential(self.entries)
        total = diff.total + len(self.pending)
        self.progress.set_value(diff.finished / total if total else 0.0)
        if total == 0:
            self.progress_label.set_text("No images yet.")
        else:
            self.progress_label.set_text(f"{diff.finished} of {total} chosen finished")
        counts: dict[str, int] = {}
        for entry in self.entries:
            counts[entry.stage] = counts.get(entry.stage, 0) + 1
        if self.pending:
            counts["waiting to upload"] = len(self.pending)
        self.stage_counts.set_text(" · ".join(f"{n} {stage}" for stage, n in counts.items()))
        self.report.update()
        in_flight = bool(self.pending) or counts.get(batch.UPLOADING, 0) > 0
        if in_flight != self._guarded:  # leaving now would drop those files: let the browser ask first
            self._guarded = in_flight
            ui.run_javascript(f"window.onbeforeunload = {'() => true' if in_flight else 'null'}")


@pages.page("/", "batch", nav="Batch")
async def batch_page(settings: Settings) -> None:
    view = BatchView(settings)
    await ui.context.client.connected()  # tab storage exists once the browser is connected
    try:
        tab = app.storage.tab
    except RuntimeError:  # the browser left again before the page was ready: nothing to restore
        return
    view.restore(tab)
