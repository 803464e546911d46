"""What a reviewer does on the calibration page: calibrate from signed-off slides, activate, roll back.

The same functions as ``bloodcell calibrate --slides`` and ``bloodcell model activate |
rollback``, with the signed-in reviewer's name in the audit trail. A calibration runs in the
process's one worker thread (``calibration.job``); this card polls its state, so a reload or
a second tab shows the same progress and the same outcome. People without the reviewer role
see the state and the comparisons, never the buttons, and the handlers check the role again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from nicegui import run, ui

from bloodcell.calibration import qcrun
from bloodcell.calibration.job import JOB, CalibrationBusy, JobState
from bloodcell.calibration.registry import SHIPPED, Registry, VersionRecord
from bloodcell.errors import BloodcellError, RejectedInput
from bloodcell.review.slides import list_slides
from bloodcell.settings import Settings
from bloodcell.storage import open_archive, open_storage
from bloodcell.web.auth import REVIEWER, current_user

log = logging.getLogger(__name__)
POLL_SECONDS = 0.5
CLASS_COLUMNS = [
    {"name": k, "label": label, "field": k, "align": "left"}
    for k, label in (
        ("label", "Class"),
        ("cells", "Held-out cells"),
        ("candidate", "Candidate [95 % interval]"),
        ("active", "Active [95 % interval]"),
    )
]


def comparison(record: VersionRecord) -> dict[str, Any]:
    """The comparison as stored: evaluation (per class, intervals, panel) and the gate's decision."""
    return {
        "version": record.version,
        "evaluation": dict(record.evaluation),
        "decision": dict(record.decision),
    }


def render_comparison(record: VersionRecord) -> None:
    """Per class with intervals, the reference panel, the decision, then the JSON itself."""
    e, d = record.evaluation, record.decision
    verdict = "Promoted" + (" (forced)" if d.get("forced") else "") if d.get("promoted") else "Refused"
    ui.label(
        f"{verdict} · held out: active {e.get('active_accuracy', 0):.1%} → candidate "
        f"{e.get('candidate_accuracy', 0):.1%}"
    ).classes("font-medium").mark("calibration-decision")
    for reason in d.get("reasons", ()):
        ui.label(f"– {reason}").classes("text-sm")
    rows = [
        {
            "label": row["label"],
            "cells": row["cells"],
            "candidate": f"{row['candidate']:.1%} [{row['candidate_interval'][0]:.2f}, "
            f"{row['candidate_interval'][1]:.2f}]",
            "active": f"{row['active']:.1%} [{row['active_interval'][0]:.2f}, "
            f"{row['active_interval'][1]:.2f}]",
        }
        for row in e.get("per_class", ())
    ]
    ui.table(columns=CLASS_COLUMNS, rows=rows, row_key="label").props("flat dense").classes("w-full")
    if e.get("panel_candidate") is not None:
        ui.label(
            f"Reference panel ({e.get('panel_cells')} cells of the training labs): active "
            f"{e.get('panel_active') or 0:.1%} → candidate {e.get('panel_candidate') or 0:.1%}"
        ).classes("text-sm")
    body = json.dumps(comparison(record), indent=2, ensure_ascii=False)
    ui.code(body, language="json").classes("w-full text-xs").mark("calibration-json")


class CalibrationActions:
    """The calibrate and activate cards; ``changed`` re-renders the versions and the trail."""

    def __init__(self, settings: Settings, changed: Callable[[], None]) -> None:
        self.settings = settings
        self.changed = changed
        self.user = current_user()
        self.reviewer = self.user.has(REVIEWER)
        self._shown: JobState | None = None
        with ui.card().classes("w-full gap-2"):
            ui.label("Calibrate from signed-off slides").classes("text-subtitle1 font-medium")
            if self.reviewer:
                signed = self._signed_slides()
                with ui.row().classes("w-full items-center gap-2"):
                    self.slides = (
                        ui.select(signed, multiple=True, label="Slides (none chosen: every signed-off slide)")
                        .classes("grow")
                        .props("use-chips")
                        .mark("calibrate-slides")
                    )
                    self.start_button = ui.button("Calibrate", on_click=self.start).mark("calibrate-start")
            else:
                ui.label(
                    f"Read-only: {self.user.name} does not have the reviewer role. A reviewer can calibrate, "
                    "activate and roll back here."
                ).classes("text-sm text-grey-8").mark("calibration-read-only")
            self.status = ui.label("").classes("text-sm").mark("calibrate-status")
            self.outcome = ui.column().classes("w-full gap-1")
        if self.reviewer:
            with ui.card().classes("w-full gap-2"):
                ui.label("Which model answers").classes("text-subtitle1 font-medium")
                with ui.row().classes("w-full items-center gap-2"):
                    self.version = ui.select([SHIPPED], value=SHIPPED, label="Version").classes("grow")
                    self.version.mark("activate-version")
                    ui.button("Activate", on_click=self.activate).mark("activate")
                    ui.button("Roll back", on_click=self.rollback).props("outline").mark("rollback")
                ui.label(
                    "The next event the predict function handles uses it; each action is in the audit trail "
                    "with your name."
                ).classes("text-xs text-grey-7")
            self.set_versions()
        self.poll()
        ui.timer(POLL_SECONDS, self.poll)

    def _signed_slides(self) -> list[str]:
        try:
            return sorted(
                s.slide for s in list_slides(open_storage(self.settings), self.settings) if s.signed_off
            )
        except BloodcellError as exc:
            log.warning("web: cannot list slides for calibration: %s", exc)
            return []

    def _registry(self) -> Registry:
        return qcrun.open_registry(self.settings)  # activate and rollback re-run the QC panel

    def set_versions(self) -> None:
        if not self.reviewer:
            return
        try:
            versions = [r.version for r in self._registry().versions()]
        except BloodcellError:
            versions = []
        self.version.set_options([SHIPPED, *reversed(versions)], value=self.version.value)

    # ---- the running calibration ----

    def poll(self) -> None:
        state = JOB.state
        if state == self._shown:
            return
        finished = self._shown is not None and self._shown.running and not state.running
        self._shown = state
        self.status.set_text(state.words)
        if self.reviewer:
            self.start_button.set_enabled(not state.running)
        self.outcome.clear()
        if state.record is not None:
            with self.outcome:
                render_comparison(state.record)
        if finished:
            self.set_versions()
            self.changed()

    async def start(self) -> None:
        if not self._allowed():
            return
        chosen = tuple(self.slides.value or ()) or None
        try:
            JOB.start(
                self.settings,
                open_storage(self.settings),
                open_archive(self.settings),
                chosen,
                self.user.name,
            )
        except CalibrationBusy as exc:
            ui.notify(exc.reason, type="warning")
            return
        self.poll()

    # ---- the pointer ----

    async def activate(self) -> None:
        version = str(self.version.value or SHIPPED)
        await self._move(lambda: self._registry().activate(version, self.user.name).version)

    async def rollback(self) -> None:
        await self._move(lambda: self._registry().rollback(self.user.name).version)

    async def _move(self, action: Callable[[], str | None]) -> None:
        if not self._allowed():
            return
        try:
            active = await run.io_bound(action)
        except RejectedInput as exc:
            ui.notify(exc.reason, type="warning")
            return
        except BloodcellError as exc:
            ui.notify(f"Not changed: the model registry is not reachable ({exc}).", type="negative")
            return
        ui.notify(f"Active: {active or SHIPPED}", type="positive")
        self.changed()

    def _allowed(self) -> bool:
        if self.reviewer:
            return True
        ui.notify(f"{self.user.name} does not have the reviewer role.", type="warning")
        return False
