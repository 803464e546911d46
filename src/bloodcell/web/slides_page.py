"""Slides: every slide in the upload bucket, newest first, and a form to start a new one.

The list is read from the buckets on every visit, so a folder dropped into the
upload bucket appears here as a slide, and nothing depends on a browser tab.
"""

from __future__ import annotations

import logging

from nicegui import run, ui

from bloodcell.errors import BloodcellError
from bloodcell.review import actions, slides
from bloodcell.review.slides import SlideSummary
from bloodcell.settings import Settings
from bloodcell.slides import ids
from bloodcell.web import pages, results_feed
from bloodcell.web.auth import current_user

log = logging.getLogger(__name__)
PER_PAGE = 50

ID_HELP = (
    "Use the sample or accession number from the lab system. Never a patient's name: slide ids "
    "appear in storage paths, logs and the archive."
)
STATUS_COLOURS = {
    "signed off": "positive",
    "in review": "primary",
    "awaiting review": "warning",
    "processing": "grey-7",
}


def slide_url(slide: str) -> str:
    return f"/slides/{slide}"


def _new_slide_form(settings: Settings) -> None:
    user = current_user()
    with ui.card().classes("w-full gap-2"):
        ui.label("Start a slide").classes("text-subtitle1 font-medium")
        with ui.row().classes("w-full items-start gap-2"):
            slide_id = ui.input("Slide id (sample or accession number)").classes("grow min-w-0")
            slide_id.props("outlined dense maxlength=64").mark("new-slide-id")
            ui.button("Generate", icon="casino", on_click=lambda: slide_id.set_value(ids.new_slide_id()))
            ui.button("Open", icon="arrow_forward", on_click=lambda: create()).mark("new-slide-open")
        ui.label(ID_HELP).classes("text-xs text-grey-7")
        warning = ui.label("").classes("text-sm text-negative").mark("new-slide-warning")

    async def create() -> None:
        try:
            slide = ids.check_slide_id(str(slide_id.value or ""))
        except ids.SlideIdError as exc:
            warning.set_text(str(exc))
            return
        if slides.looks_like_a_name(slide) and warning.text != _name_warning(slide):
            warning.set_text(_name_warning(slide))  # a second click confirms
            return
        storage = results_feed.storage_for(settings)
        try:
            await run.io_bound(actions.create_slide, storage, settings, slide, user)
        except BloodcellError as exc:
            warning.set_text(f"The slide could not be recorded ({exc}). Try again shortly.")
            return
        ui.navigate.to(slide_url(slide))

    slide_id.on("keydown.enter", create)


def _name_warning(slide: str) -> str:
    return (
        f"{slide!r} looks like a name. If it is a patient's name, choose another id; else click Open again."
    )


def _row(summary: SlideSummary) -> None:
    with (
        ui.row()
        .classes("w-full items-center gap-x-4 gap-y-1 py-2 bc-slide-row")
        .mark(f"slide-{summary.slide}")
    ):
        link = ui.link(summary.slide, slide_url(summary.slide)).mark("slide-link")
        link.classes("font-medium text-primary break-all")
        ui.badge(summary.status, color=STATUS_COLOURS.get(summary.status, "grey-7")).mark("slide-status")
        ui.space()
        ui.label(f"{summary.images} images · {summary.finished} with results").classes("text-sm text-grey-8")
        who = summary.created_by or "dropped into the bucket"
        ui.label(f"{summary.created:%Y-%m-%d %H:%M} UTC · {who}").classes("text-xs text-grey-7")


@pages.page("/slides", "slides", nav="Slides")
async def slides_page(settings: Settings, page: int = 1) -> None:
    ui.label("Slides").classes("text-h5")
    _new_slide_form(settings)
    try:
        listed = await run.io_bound(slides.list_slides, results_feed.storage_for(settings), settings)
    except BloodcellError as exc:
        log.warning("web: cannot list slides: %s", exc)
        ui.label(f"The buckets cannot be read right now ({exc}). Try again shortly.").classes("text-negative")
        return
    if listed is None:
        return
    if not listed:
        ui.label(
            "No slides yet. Start one above, or drop a folder of images into the upload bucket."
        ).classes("text-grey-7")
        return
    pages_total = max(1, -(-len(listed) // PER_PAGE))
    page = min(max(1, page), pages_total)
    with ui.row().classes("items-center gap-3"):
        if pages_total > 1:
            ui.pagination(
                1,
                pages_total,
                value=page,
                direction_links=True,
                on_change=lambda e: ui.navigate.to(f"/slides?page={e.value}"),
            ).props("boundary-links max-pages=7")
        ui.label(f"{len(listed)} slides, newest first · page {page} of {pages_total}").classes(
            "text-grey-7 text-sm"
        ).mark("slide-count")
    with ui.card().classes("w-full gap-0 divide-y divide-gray-200"):
        for summary in listed[(page - 1) * PER_PAGE : page * PER_PAGE]:
            _row(summary)
