"""History: every result in the result bucket, newest first, a page at a time (``/history?page=N``).

It reads the bucket, not this app's memory, so it also lists files that were
dropped straight into the upload bucket and results from before a restart. With folder
buckets it also says when their disk is full: uploads then wait (nothing is rejected or
dead-lettered for it) and are processed once space is freed.
"""

from __future__ import annotations

import logging

from nicegui import run, ui

from bloodcell.deadletters import DeadLetter, DeadLetters
from bloodcell.errors import BloodcellError
from bloodcell.formats import format_size
from bloodcell.results import Result
from bloodcell.settings import Settings
from bloodcell.slides.ids import display_name, image_name, slide_of
from bloodcell.slides.vocabulary import label_words
from bloodcell.storage.local import free_bytes
from bloodcell.web import pages, results_feed

log = logging.getLogger(__name__)
PER_PAGE = 20
# Below this, the next tensor or result may not fit: the disk is full for the pipeline's purposes.
DISK_FULL_BYTES = 4 * 1024 * 1024


def _when(result: Result) -> str:
    moment = result.finished_at or result.source.uploaded
    return str(moment).replace("T", " ")[:16] + " UTC" if moment else ""


def _row(settings: Settings, result: Result) -> None:
    source = result.source
    name = source.name
    # the name gets its own share of the row and wraps; the outcome goes below it when narrow
    with ui.row().classes("w-full items-center gap-x-4 gap-y-1 py-2 bc-history-row"):
        if source.bucket == settings.upload_bucket:
            ui.image(f"/thumb/{name}").classes("w-16 h-16 rounded shrink-0").props("fit=cover")
        else:
            ui.icon("image", size="40px").classes("w-16 text-grey-5 shrink-0")
        with ui.column().classes("gap-0 grow basis-40 min-w-0"):
            slide = slide_of(name)
            words = f"{slide} / {image_name(name)}" if slide else display_name(name)
            shown = ui.label(words).mark("history-name")
            shown.classes("font-medium break-all w-full")
            shown.tooltip(name)
            ui.label(_when(result)).classes("text-xs text-grey-7")
        with ui.column().classes("gap-0 items-start sm:items-end min-w-0 max-w-full sm:max-w-md"):
            if result.is_classified:
                with ui.row().classes("items-center gap-2"):
                    if result.uncertain:
                        ui.badge("uncertain", color="warning").classes("text-black")
                    ui.label(label_words(result.label)).classes("font-medium bc-label")
                    ui.label(f"{100 * (result.confidence or 0):.0f} %").classes("text-grey-8")
            else:
                reason = ui.label(f"Rejected: {result.reason}")
                reason.classes("text-negative text-sm text-right bc-reason")
            if result.model is not None:
                ui.label(f"model {result.model.name} {result.model.version}").classes("text-xs text-grey-6")


def disk_status(settings: Settings) -> str | None:
    """What to tell people when the folder buckets' disk is full; None when there is room."""
    if settings.storage != "local":
        return None
    free = free_bytes(settings.data_dir)
    if free is None or free >= DISK_FULL_BYTES:
        return None
    return (
        f"The data disk is full ({format_size(free)} free). New uploads wait and are processed, "
        "without a restart, as soon as space is freed: nothing is rejected or lost for it."
    )


def dead_letters(settings: Settings) -> list[DeadLetter]:
    """What the local event source gave up on, newest first (its folder exists only once used)."""
    if settings.storage != "local" or not (settings.data_dir / settings.dead_letter_bucket).is_dir():
        return []
    letters = DeadLetters(results_feed.storage_for(settings), settings.dead_letter_bucket)
    return sorted(letters.list(), key=lambda letter: letter.dead_lettered, reverse=True)


def _dead_letter_section(letters: list[DeadLetter]) -> None:
    title = f"{len(letters)} upload(s) the pipeline could not be reached for (dead letters)"
    with ui.expansion(title, icon="report").classes("w-full bg-red-1 rounded"):
        for letter in letters:
            with ui.row().classes("w-full items-center no-wrap gap-4 py-1"):
                ui.label(f"{letter.bucket}/{letter.name}").classes("grow ellipsis").mark("dead-letter-name")
                ui.label(f"{letter.attempts} attempts, last: {letter.error}").classes("text-sm text-negative")
                ui.label(letter.dead_lettered.replace("T", " ")[:16] + " UTC").classes("text-xs text-grey-7")
        ui.label("Write the file again, or restart bloodcell serve once the cause is fixed.").classes(
            "text-xs text-grey-7"
        )


def drift_alarm(settings: Settings) -> str | None:
    """The QC panel's drift alarm (docs/calibration.md), read from the registry; None when quiet."""
    from bloodcell.calibration.qcrun import alarm_message

    try:
        return alarm_message(results_feed.storage_for(settings), settings.model_bucket)
    except BloodcellError:
        return None  # the registry is unreadable now: the calibration page says so


@pages.page("/history", "history", nav="History")
async def history_page(settings: Settings, page: int = 1) -> None:
    ui.label("History").classes("text-h5")
    full = await run.io_bound(disk_status, settings)
    if full:
        log.warning("web: %s", full)
        with ui.row().classes("w-full items-center gap-2 bg-red-1 rounded p-2"):
            ui.icon("storage", color="negative")
            ui.label(full).classes("text-negative").mark("disk-full")
    alarm = await run.io_bound(drift_alarm, settings)
    if alarm:  # logged once, when the QC run raised it: not here, on every view
        with ui.row().classes("w-full items-center gap-2 bg-orange-1 rounded p-2"):
            ui.icon("warning", color="warning")
            ui.label(alarm).classes("text-negative").mark("qc-alarm")
    letters = await run.io_bound(dead_letters, settings)
    if letters:
        _dead_letter_section(letters)
    try:
        found = await run.io_bound(results_feed.history, settings, page, PER_PAGE)
    except BloodcellError as exc:
        log.warning("web: cannot list results: %s", exc)
        ui.label(f"The result bucket cannot be read right now ({exc}). Try again shortly.").classes(
            "text-negative"
        )
        return
    if found is None:
        return
    if not found.items:
        ui.label("No results yet. Classified and rejected images appear here, newest first.").classes(
            "text-grey-7"
        )
        return

    def pager() -> None:
        with ui.row().classes("items-center gap-3"):
            ui.pagination(
                1,
                found.pages,
                value=found.page,
                direction_links=True,
                on_change=lambda e: ui.navigate.to(f"/history?page={e.value}"),
            ).props("boundary-links max-pages=7")
            ui.label(f"{found.total} results · page {found.page} of {found.pages}").classes(
                "text-grey-7 text-sm"
            )

    pager()
    with ui.card().classes("w-full gap-0 divide-y divide-gray-200"):
        for result in found.items:
            _row(settings, result)
    if found.pages > 1:
        pager()
