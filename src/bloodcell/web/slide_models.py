"""The slide's models: which model and calibration produced its results, and its reclassifications.

Reviewers reclassify a slide with the active model here (``calibration.reclassify``: the
replaced results are kept in the slide's history); a signed-off slide must be reopened
first, so the button says so instead. Everything shown comes from the snapshot the slide
page reads every few seconds, so a second tab sees a reclassification as it lands.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence

from nicegui import run, ui

from bloodcell.calibration.reclassify import active_predictor, reclassify
from bloodcell.calibration.rerun import NO_TENSOR, NOT_DECODED, PENDING, REPLACED, RerunRecord, model_words
from bloodcell.errors import BloodcellError, NoModelRuntime, RejectedInput
from bloodcell.settings import Settings
from bloodcell.slides.cell import Cell
from bloodcell.slides.times import lab_time
from bloodcell.slides.vocabulary import label_words
from bloodcell.storage import open_storage
from bloodcell.web.auth import REVIEWER, User

log = logging.getLogger(__name__)
HISTORY_SHOWN = 10


def run_words(run: RerunRecord, timezone: str) -> str:
    """One reclassification as a line: when, who, old model -> new model, what changed."""
    changes = ", ".join(f"{label_words(b)} → {label_words(a)} {n}" for b, a, n in run.transitions())
    parts = [
        f"{lab_time(run.at, timezone)} · {run.by}: {', '.join(run.before_models) or 'no result'} → "
        f"{model_words(run.model)}",
        f"{run.count(REPLACED)} re-run, {run.changed} changed class" + (f" ({changes})" if changes else ""),
    ]
    if run.count(NO_TENSOR):
        parts.append(f"{run.count(NO_TENSOR)} kept (tensor gone)")
    if run.count(PENDING):
        parts.append(f"{run.count(PENDING)} still pending")
    if run.count(NOT_DECODED):
        parts.append(f"{run.count(NOT_DECODED)} rejected before the model")
    return " · ".join(parts)


def _reclassify(settings: Settings, slide: str, by: str, progress: Callable[[int, int], None]) -> RerunRecord:
    storage = open_storage(settings)
    return reclassify(storage, settings, slide, by, active_predictor(settings, storage), progress)


class SlideModels:
    def __init__(
        self, settings: Settings, slide: str, user: User, reload: Callable[[], Awaitable[None]]
    ) -> None:
        self.settings = settings
        self.slide = slide
        self.user = user
        self.reload = reload
        self._shown: object = None
        self.running = False
        self.progress = (0, 0)  # cells done, of; written by the worker thread, shown by the timer
        with ui.card().classes("w-full gap-2"):
            with ui.row().classes("w-full items-center gap-2"):
                ui.label("Models").classes("text-subtitle1 font-medium")
                ui.space()
                self.button = ui.button("Reclassify with the active model", on_click=self.run)
                self.button.props("outline dense").mark("reclassify")
                self.button.set_visibility(user.has(REVIEWER))
            self.note = ui.label("").classes("text-xs text-grey-7").mark("reclassify-note")
            self.models = ui.column().classes("w-full gap-0").mark("slide-models")
            ui.label("Reclassifications").classes("text-sm font-medium")
            self.history = ui.column().classes("w-full gap-0").mark("reclassify-history")
        ui.timer(0.5, self._show_progress)

    def _show_progress(self) -> None:
        if self.running and self.progress[1]:
            self.note.set_text(f"Reclassifying… {self.progress[0]} of {self.progress[1]} cells")

    def _progressed(self, done: int, total: int) -> None:
        self.progress = (done, total)

    def update(self, cells: Sequence[Cell], signed_off: bool, runs: Sequence[RerunRecord]) -> None:
        by_model = Counter(c.model_words for c in cells if c.model)
        shown = (tuple(sorted(by_model.items())), signed_off, tuple(r.id for r in runs), self.running)
        if shown == self._shown:
            return
        self._shown = shown
        self.models.clear()
        with self.models:
            for words, n in sorted(by_model.items()):
                words = words if " calibration " in words else f"{words} (no calibration)"
                ui.label(f"{words}: {n} results").classes("text-sm").mark("slide-model")
            if not by_model:
                ui.label("No results yet.").classes("text-sm text-grey-7")
        self.history.clear()
        with self.history:
            for r in list(reversed(runs))[:HISTORY_SHOWN]:
                ui.label(run_words(r, self.settings.lab_timezone)).classes("text-sm").mark("reclassify-run")
            if not runs:
                ui.label("Never reclassified: every result is the pipeline's first answer.").classes(
                    "text-sm text-grey-7"
                )
        self.button.set_enabled(not signed_off and not self.running)
        self.note.set_text(
            "Reclassifying…"
            if self.running
            else "Signed off: reopen the slide (giving the reason) to reclassify it; the signed report stays."
            if signed_off
            else "Re-runs every cell through the active model; the replaced results stay in this history."
        )

    async def run(self) -> None:
        if not self.user.has(REVIEWER):
            ui.notify(f"{self.user.name} does not have the reviewer role.", type="warning")
            return
        if self.running:
            return
        self.running, self.progress = True, (0, 0)
        self.button.set_enabled(False)
        self.note.set_text("Reclassifying…")
        try:
            done = await run.io_bound(
                _reclassify, self.settings, self.slide, self.user.name, self._progressed
            )
        except RejectedInput as exc:
            ui.notify(exc.reason, type="warning")
            return
        except NoModelRuntime as exc:  # the web app's image: `bloodcell reclassify` runs elsewhere
            log.warning("web: reclassify of %r: %s", self.slide, exc)
            ui.notify(f"Not reclassified: {exc}.", type="warning")
            return
        except BloodcellError as exc:
            log.warning("web: reclassify of %r failed: %s", self.slide, exc)
            ui.notify(f"Not reclassified: storage is not reachable ({exc}). Try again.", type="negative")
            return
        finally:
            self.running = False
            self._shown = None
        if done is None:  # the app is shutting down
            return
        ui.notify(
            f"Reclassified with {model_words(done.model)}: {done.count(REPLACED)} re-run, "
            f"{done.changed} changed class.",
            type="positive",
        )
        await self.reload()
