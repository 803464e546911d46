"""About the model: everything here is read from the model folder's own files, nothing typed in.

Metrics are rendered generically (numbers, nested sections, per-class tables),
so whatever training writes into ``metadata.json`` shows up without a code change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nicegui import ui

from bloodcell.errors import ConfigurationError
from bloodcell.model import read_model_info
from bloodcell.settings import Settings
from bloodcell.web.batch import label_words

SCALARS = (str, int, float, bool, type(None))


def fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower() if value is not None else "–"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, list) and all(isinstance(v, SCALARS) for v in value):
        return ", ".join(fmt(v) for v in value)
    return str(value)


def _is_table(value: Mapping[str, Any]) -> bool:
    """A dict of flat dicts (e.g. per-class precision/recall) reads best as one table."""
    rows = list(value.values())
    return bool(rows) and all(
        isinstance(row, Mapping) and row and all(isinstance(v, SCALARS) for v in row.values()) for row in rows
    )


def _title(key: str) -> str:
    return label_words(key) if key.isupper() else key.replace("_", " ")


def render_mapping(data: Mapping[str, Any]) -> None:
    """Scalars as a key/value grid, tables for dicts of flat dicts, sub-sections for the rest."""
    scalars = {k: v for k, v in data.items() if isinstance(v, (*SCALARS, list))}
    if scalars:
        with ui.grid(columns="auto 1fr").classes("gap-x-6 gap-y-1 bc-metrics"):
            for key, value in scalars.items():
                ui.label(_title(key)).classes("text-grey-8")
                ui.label(fmt(value)).classes("font-mono")
    for key, value in data.items():
        if not isinstance(value, Mapping):
            continue
        ui.label(_title(key)).classes("text-subtitle2 mt-2")
        if _is_table(value):
            columns = list(dict.fromkeys(col for row in value.values() for col in row))
            with ui.grid(columns=f"auto repeat({len(columns)}, auto)").classes("gap-x-6 gap-y-1 bc-metrics"):
                ui.label("")
                for col in columns:
                    ui.label(_title(col)).classes("text-xs text-grey-7 uppercase")
                for name, row in value.items():
                    ui.label(_title(name)).classes("text-grey-8")
                    for col in columns:
                        ui.label(fmt(row.get(col))).classes("font-mono")
        else:
            with ui.column().classes("pl-4 gap-1"):
                render_mapping(value)


def model_page(settings: Settings, folder: Path | None) -> None:
    ui.label("About the model").classes("text-h5")
    if folder is None:
        ui.label("No model folder found: set MODEL_DIR to the folder holding metadata.json.").classes(
            "text-negative"
        )
        return
    try:
        info = read_model_info(folder)
    except (ConfigurationError, KeyError) as exc:
        ui.label(f"The model's metadata cannot be read: {exc}").classes("text-negative")
        return
    meta = info.metadata
    with ui.card().classes("w-full gap-2"):
        with ui.row().classes("items-baseline gap-3"):
            ui.label(info.name).classes("text-h6 bc-model-name")
            ui.label(f"version {info.version}").classes("text-grey-8 bc-model-version")
        ui.label("Classes: " + ", ".join(label_words(label) for label in info.outputs)).classes("bc-classes")
        ui.label(
            f"A prediction is marked uncertain when its top probability is below "
            f"{100 * info.min_top_probability:.0f} %"
            + (f" or the 'other' output exceeds {100 * info.max_other_probability:.0f} %."
               if info.max_other_probability < 1.0 else ".")
        ).classes("text-grey-8 text-sm")
        ui.label(
            "This page describes the model files the web app sees; every result also records the name "
            "and version of the model that actually produced it."
        ).classes("text-xs text-grey-7")
    with ui.card().classes("w-full gap-1"):
        ui.label("Evaluation").classes("text-subtitle1 font-medium")
        metrics = meta.get("metrics")
        if isinstance(metrics, Mapping) and metrics:
            render_mapping(metrics)
        else:
            ui.label("metadata.json holds no metrics for this model yet.").classes("text-grey-7")
        if (folder / "confusion_matrix.png").is_file():
            ui.label("Confusion matrix").classes("text-subtitle2 mt-2")
            ui.image("/model-files/confusion_matrix.png").classes("w-full max-w-xl bc-confusion").props(
                "fit=contain"
            )
    card = folder / "MODEL_CARD.md"
    if card.is_file():
        with ui.expansion("Model card", icon="description").classes("w-full bg-white rounded"):
            ui.markdown(card.read_text(encoding="utf-8", errors="replace"))
    with ui.expansion("All of metadata.json", icon="data_object").classes("w-full bg-white rounded"):
        ui.code(json.dumps(meta, indent=2, ensure_ascii=False), language="json").classes("w-full")
