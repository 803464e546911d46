"""The lab's calibrations: which one answers, how each was judged, and what was done when.

Read-only: calibrating, activating and rolling back are ``bloodcell calibrate`` and
``bloodcell model`` (docs/calibration.md), which record who did it in the audit trail.
"""

from __future__ import annotations

from nicegui import ui

from bloodcell.calibration.registry import SHIPPED, Registry
from bloodcell.errors import BloodcellError
from bloodcell.settings import Settings
from bloodcell.storage import open_storage
from bloodcell.web import pages


@pages.page("/calibration", "calibration", nav="Calibration")
def calibration_page(settings: Settings) -> None:
    ui.label("Calibration to this lab").classes("text-h5")
    registry = Registry(open_storage(settings), settings.model_bucket)
    try:
        pointer, _ = registry.pointer()
        versions = registry.versions()
        trail = registry.audit_trail()
    except BloodcellError as exc:
        ui.label(f"The model registry cannot be read: {exc}").classes("text-negative")
        return
    ui.label(f"Active: {pointer.version or SHIPPED + ' (no calibration)'}").classes("text-subtitle1")
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
    ui.label("Audit trail").classes("text-h6 q-mt-md")
    for entry in reversed(trail[-50:]):
        what = entry.get("version") or SHIPPED
        ui.label(f"{entry.get('at')}  {entry.get('action')}  {what}  by {entry.get('by')}").classes("text-sm")
