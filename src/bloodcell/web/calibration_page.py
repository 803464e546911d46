"""The lab's calibrations: which one answers, how each was judged, and what was done when.

Reviewers calibrate, activate and roll back here (``calibration_actions``), exactly as
``bloodcell calibrate`` and ``bloodcell model`` do (docs/calibration.md); everyone sees the
versions, their comparisons and the audit trail, re-rendered after each action.
"""

from __future__ import annotations

from nicegui import ui

from bloodcell.calibration.registry import SHIPPED, Registry
from bloodcell.errors import BloodcellError
from bloodcell.settings import Settings
from bloodcell.storage import open_storage
from bloodcell.web import pages
from bloodcell.web.calibration_actions import CalibrationActions, render_comparison


@pages.page("/calibration", "calibration", nav="Calibration")
def calibration_page(settings: Settings) -> None:
    ui.label("Calibration to this lab").classes("text-h5")
    view = ui.refreshable(registry_view)

    def changed() -> None:
        view.refresh(settings)

    CalibrationActions(settings, changed)
    view(settings)


def registry_view(settings: Settings) -> None:
    registry = Registry(open_storage(settings), settings.model_bucket)
    try:
        pointer, _ = registry.pointer()
        versions = registry.versions()
        trail = registry.audit_trail()
    except BloodcellError as exc:
        ui.label(f"The model registry cannot be read: {exc}").classes("text-negative")
        return
    active = pointer.version or SHIPPED + " (no calibration)"
    ui.label(f"Active: {active}").classes("text-subtitle1").mark("calibration-active")
    rows = [
        {
            "version": r.version,
            "active": "yes" if r.version == pointer.version else "",
            "model": f"{r.model_name} {r.model_version}",
            "cells": sum(r.counts.values()),
            "held out": f"{r.evaluation.get('active_accuracy', 0):.1%} -> "
            f"{r.evaluation.get('candidate_accuracy', 0):.1%}",
            "panel": f"{r.evaluation.get('panel_active') or 0:.1%} -> "
            f"{r.evaluation.get('panel_candidate') or 0:.1%}",
            "gate": "promoted" if r.decision.get("promoted") else "refused",
            "by": r.created_by,
            "when": r.created_at,
            "from": r.origin,
        }
        for r in reversed(versions)
    ]
    columns = [
        {"name": k, "label": k, "field": k, "align": "left"} for k in (rows[0] if rows else {"version": 0})
    ]
    ui.table(columns=columns, rows=rows, row_key="version").classes("w-full")
    for record in list(reversed(versions))[:10]:
        with ui.expansion(f"Comparison of {record.version}").classes("w-full"):
            render_comparison(record)
    ui.label("Audit trail").classes("text-h6 q-mt-md")
    for entry in reversed(trail[-50:]):
        what = entry.get("version") or SHIPPED
        ui.label(f"{entry.get('at')}  {entry.get('action')}  {what}  by {entry.get('by')}").classes("text-sm")
