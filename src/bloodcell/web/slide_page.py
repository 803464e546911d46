"""One slide (``/slides/<id>``): add images, review each cell, compare the counts, sign off.

Everything shown is read from the buckets (uploads, results, review records) and
re-read every few seconds, so a reload, a second tab or a second reviewer all
see the same slide; this page keeps no state a restart could lose.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

from nicegui import app, events, run, ui

from bloodcell.calibration.rerun import RerunRecord, history
from bloodcell.errors import BloodcellError
from bloodcell.review import actions
from bloodcell.review.records import PATIENT, ReviewRecord
from bloodcell.review.state import SlideReview, replay, slide_review
from bloodcell.settings import Settings
from bloodcell.slides import ids
from bloodcell.slides.cell import Cell, Patient, Slide
from bloodcell.slides.loader import load_cells
from bloodcell.slides.order import gallery_order
from bloodcell.slides.references import references
from bloodcell.slides.times import lab_time
from bloodcell.storage import open_archive
from bloodcell.web import pages, results_feed
from bloodcell.web.auth import REVIEWER, current_user
from bloodcell.web.review_gallery import ReviewGallery, verdict_words
from bloodcell.web.review_report import ReviewReport
from bloodcell.web.signature import SignatureRefused, reauthenticate
from bloodcell.web.slide_models import SlideModels
from bloodcell.web.slide_signoff import render_signoff
from bloodcell.web.slide_upload import SlideUpload

log = logging.getLogger(__name__)
REFRESH_SECONDS = 2.0
TRAIL_PER_PAGE = 10  # rows sent to the browser: the whole trail of a 500-cell slide would be resent per key
TRAIL_COLUMNS = [
    {"name": name, "label": label, "field": name, "align": "left"}
    for name, label in (
        ("at", "When"),
        ("who", "Who"),
        ("action", "Action"),
        ("cell", "Cell"),
        ("change", "Before → after"),
        ("model", "Model"),
    )
]


def _slide_words(record: ReviewRecord) -> str:
    """What a slide-wide record says beyond its action: the reason, the signature, the patient."""
    if record.reason:
        return f"reason: {record.reason}"
    if record.signature:
        return f"signature: {record.signature}"
    if record.action == PATIENT:
        return f"patient: {Patient(record.age, record.sex).words}"
    return ""


@dataclass(frozen=True)
class Snapshot:
    cells: list[Cell]
    review: SlideReview
    runs: tuple[RerunRecord, ...] = ()  # its reclassifications, oldest first


def load(settings: Settings, slide: str) -> Snapshot:
    storage = results_feed.storage_for(settings)
    return Snapshot(
        gallery_order(load_cells(storage, settings, slide)),
        slide_review(storage, settings, slide),
        tuple(history(storage, settings, slide)),
    )


class SlideView:
    def __init__(self, settings: Settings, slide: str) -> None:
        self.settings = settings
        self.slide = slide
        self.user = current_user()
        self.snapshot: Snapshot | None = None
        self._loading = False
        self._signoff_shown: object = None
        with ui.row().classes("w-full items-center gap-3"):
            ui.link("← Slides", "/slides").classes("text-primary")
            ui.label(f"Slide {slide}").classes("text-h5 break-all").mark("slide-title")
            self.status = ui.badge("").mark("slide-status")
            ui.space()
            self.meta = ui.label("").classes("text-sm text-grey-7")
        with ui.row().classes("w-full items-center gap-2 bc-report-links"):
            from bloodcell.web.report_routes import report_url

            ui.label("Report:").classes("text-sm text-grey-8")
            for kind, words in (
                ("pdf", "PDF"),
                ("fhir", "FHIR R4"),
                ("csv", "cells CSV"),
                ("summary", "summary CSV"),
            ):
                ui.link(words, report_url(slide, kind)).classes("text-sm text-primary").mark(f"report-{kind}")
        # model 3's out-of-distribution verdict: a lab unlike the training data must not pass unnoticed
        self.unfamiliar = (
            ui.label("")
            .classes("w-full p-3 rounded bg-amber-2 text-amber-10 font-medium")
            .mark("slide-unfamiliar")
        )
        self.unfamiliar.set_visibility(False)
        with ui.row().classes("w-full gap-4 items-start"):
            with ui.card().classes("grow basis-72 gap-2 min-w-0"):
                self.uploader = SlideUpload(
                    settings,
                    slide,
                    self.user,
                    lambda: self.snapshot is not None and self.snapshot.review.created_by is None,
                )
                self.signoff = ui.column().classes("w-full gap-2")
            self.report = ReviewReport(references(settings), settings.count_target)
        self.gallery = ReviewGallery(self.on_verdict, results_feed.uncertainty_rule(settings))
        self.models = SlideModels(settings, slide, self.user, self._reload)
        with ui.card().classes("w-full gap-2"):
            ui.label("Audit trail").classes("text-subtitle1 font-medium")
            self.trail_note = ui.label("").classes("text-xs text-grey-7").mark("trail-note")
            self.trail = (
                ui.table(columns=TRAIL_COLUMNS, rows=[], row_key="id", pagination=0)
                .classes("w-full bc-trail")
                .props("flat dense wrap-cells hide-pagination")
            )
            # every record, a page at a time: only the page shown is sent, never the whole trail per key
            self.trail_page = 0
            self.trail_pager = ui.pagination(1, 1, direction_links=True, on_change=self._trail_paged)
            self.trail_pager.props("boundary-links max-pages=7 dense").mark("trail-pager")
        ui.timer(REFRESH_SECONDS, self.refresh)

    # ---- reading ----

    async def refresh(self) -> None:
        if self._loading:
            return
        self._loading = True
        try:
            snapshot = await run.io_bound(load, self.settings, self.slide)
        except BloodcellError as exc:
            log.warning("web: cannot read slide %r: %s", self.slide, exc)
            return
        finally:
            self._loading = False
        if snapshot is not None:
            self.show(snapshot)

    def show(self, snapshot: Snapshot) -> None:
        before = self.snapshot
        if before is not None and {r.id for r in before.review.trail} - {r.id for r in snapshot.review.trail}:
            return  # read before a record this page already shows was written: records are never removed
        self.snapshot = snapshot
        review, cells = snapshot.review, snapshot.cells
        self.models.update(cells, review.status.signed_off, snapshot.runs)
        if before is not None and before.review.trail == review.trail and before.cells == cells:
            return
        status = review.status
        self.status.set_text("signed off" if status.signed_off else "open for review")
        self.status.props(f"color={'positive' if status.signed_off else 'primary'}")
        who = review.created_by or "dropped into the bucket"
        self.meta.set_text(f"{len(cells)} images · created by {who}")
        warning = Slide(self.slide, tuple(cells)).unfamiliar_warning
        self.unfamiliar.set_text(warning or "")
        self.unfamiliar.set_visibility(warning is not None)
        reviewer = self.user.has(REVIEWER)
        self.gallery.lock_text = (
            "Signed off: read-only. Reopen the slide to change labels."
            if status.signed_off
            else f"Read-only: {self.user.name} does not have the reviewer role."
        )
        self.gallery.set_data(cells, review.cells, status.signed_off or not reviewer)
        self.uploader.upload.set_visibility(not status.signed_off)  # a signed-off slide takes no new images
        self.report.update(cells, review.cells)
        self._render_signoff()
        self._render_trail()

    def _render_trail(self) -> None:
        """The trail's page ``trail_page``, newest first; page 1 follows new records as they come."""
        assert self.snapshot is not None
        trail = self.snapshot.review.trail
        pages = max(1, -(-len(trail) // TRAIL_PER_PAGE))
        self.trail_page = min(self.trail_page, pages - 1)
        newest = len(trail) - self.trail_page * TRAIL_PER_PAGE
        shown = trail[max(0, newest - TRAIL_PER_PAGE) : newest][::-1]
        rows = [self._trail_row(r) for r in shown]
        if rows != self.trail.rows:
            self.trail.rows = rows
            self.trail.update()
        self.trail_pager.max = pages
        self.trail_pager.value = self.trail_page + 1
        self.trail_pager.set_visibility(pages > 1)
        first = self.trail_page * TRAIL_PER_PAGE
        self.trail_note.set_text(
            f"{len(trail)} records, newest first"
            + (f" · {first + 1}–{first + len(shown)} shown" if pages > 1 else "")
        )

    def _trail_paged(self, event: events.ValueChangeEventArguments[Any]) -> None:
        page = int(event.value or 1) - 1
        if page != self.trail_page and self.snapshot is not None:
            self.trail_page = page
            self._render_trail()

    def _trail_row(self, record: ReviewRecord) -> dict[str, str]:
        ignored = self.snapshot is not None and record.id in self.snapshot.review.ignored
        change = ""
        if record.after is not None:
            change = f"{verdict_words(record.before) or '–'} → {verdict_words(record.after)}"
        return {
            "id": record.id,
            "at": lab_time(record.at, self.settings.lab_timezone),
            "who": record.reviewer,
            "action": record.action + (" (after sign-off: not counted)" if ignored else ""),
            "cell": ids.image_name(record.cell.upload_name) if record.cell else "",
            "change": change or _slide_words(record),
            "model": f"{record.model.name} {record.model.version}" if record.model else "",
        }

    def _render_signoff(self) -> None:
        """Rebuilt only when the sign-off state or the patient changes, not on every verdict."""
        assert self.snapshot is not None
        review = self.snapshot.review
        shown = (review.status, review.sign_off, review.patient)
        if shown == self._signoff_shown:
            return
        self._signoff_shown = shown
        self.report.set_references(references(self.settings, review.patient))
        self.signoff.clear()
        with self.signoff:
            render_signoff(
                review,
                self.settings.lab_timezone,
                self.user.has(REVIEWER),
                self.sign_off,
                self.reopen,
                self.set_patient,
            )

    # ---- acting ----

    async def _act(self, func: object, *args: object) -> object:
        try:
            return await run.io_bound(func, *args)  # type: ignore[arg-type]
        except actions.ReviewRefused as exc:
            ui.notify(exc.reason, type="warning")
        except BloodcellError as exc:
            log.warning("web: review action on %r failed: %s", self.slide, exc)
            ui.notify(f"Not saved: storage is not reachable ({exc}). Try again.", type="negative")
        return None

    async def _reload(self) -> None:
        snapshot = await run.io_bound(load, self.settings, self.slide)
        if snapshot is not None:
            self.show(snapshot)

    async def on_verdict(self, cell: Cell, label: str) -> bool:
        """Store the verdict, then show it at once from the record itself (no re-read of the slide)."""
        storage = results_feed.storage_for(self.settings)
        archive = open_archive(self.settings)
        record = await self._act(
            partial(actions.review_cell, archive=archive),
            storage,
            self.settings,
            self.slide,
            cell,
            label,
            self.user,
        )
        if not isinstance(record, ReviewRecord) or self.snapshot is None:
            return False
        trail = tuple(sorted((*self.snapshot.review.trail, record), key=lambda r: r.order))
        self.show(Snapshot(self.snapshot.cells, replay(self.slide, trail), self.snapshot.runs))
        return True

    async def sign_off(self, password: str) -> bool:
        """Re-authenticate (the password again, unless the stack has none), then sign off."""
        client = ui.context.client.request.client
        try:
            signature = await run.io_bound(reauthenticate, self.user, password, client.host if client else "")
        except SignatureRefused as exc:
            ui.notify(exc.reason, type="warning")
            return False
        if signature is None:
            return False
        storage = results_feed.storage_for(self.settings)
        archive = open_archive(self.settings)
        done = await self._act(
            partial(actions.sign_off, signature=signature),
            storage,
            archive,
            self.settings,
            self.slide,
            self.user,
        )
        if not isinstance(done, actions.SignOff):
            return False
        note = f"Signed off. {done.verified} verified labels written to the archive."
        if done.not_archived:
            note += f" {done.not_archived} cells have no archive copy yet."
        ui.notify(note, type="positive")
        await self._reload()
        return True

    async def reopen(self, reason: str) -> bool:
        storage = results_feed.storage_for(self.settings)
        archive = open_archive(self.settings)
        done = await self._act(
            partial(actions.reopen, reason=reason), storage, archive, self.settings, self.slide, self.user
        )
        if done:
            await self._reload()
        return bool(done)

    async def set_patient(self, age: int | None, sex: str | None) -> bool:
        storage = results_feed.storage_for(self.settings)
        done = await self._act(actions.set_patient, storage, self.settings, self.slide, self.user, age, sex)
        if done:
            ui.notify("Patient details saved: reference ranges follow them.", type="positive")
            await self._reload()
        return bool(done)


@pages.page("/slides/{slide}", "slide", under="/slides")
async def slide_page(settings: Settings, slide: str) -> None:
    try:
        ids.check_slide_id(slide)
    except ids.SlideIdError as exc:
        ui.label(f"No such slide: {exc}").classes("text-negative")
        return
    view = SlideView(settings, slide)
    await ui.context.client.connected()  # tab storage exists once the browser is connected
    try:
        tab = app.storage.tab
    except RuntimeError:  # the browser left again before the page was ready: nothing to restore
        return
    view.uploader.connected(tab)
    await view.refresh()
