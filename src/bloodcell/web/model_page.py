"""About the model: everything here is read from the model folder's own files, nothing typed in.

Metrics are rendered generically (numbers, nested sections, per-class tables),
so whatever training writes into ``metadata.json`` shows up without a code change.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nicegui import ui

from bloodcell.errors import ConfigurationError
from bloodcell.model import OTHER, default_model_dir, read_model_info
from bloodcell.settings import Settings
from bloodcell.slides.vocabulary import label_words
from bloodcell.web import pages

# a picture beside the model files, by plain name: what /model-files/ serves
MODEL_PICTURE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\.(png|jpg|jpeg|svg|webp)", re.IGNORECASE)
_RELATIVE_IMAGE = re.compile(r"(!\[[^\]]*\]\()([^)\s/:]+)(\))")


def _width(path: Path) -> int:
    """The picture's own width (header only), so it is shown at a size its digits can be read."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return max(320, min(int(image.size[0]), 2400))
    except OSError:
        return 640


def card_markdown(text: str) -> str:
    """The card links its figures by relative name (``confusion_matrix.png``); on /model they must
    point at /model-files/, or the browser asks for /confusion_matrix.png and gets nothing."""

    def fix(match: re.Match[str]) -> str:
        name = match.group(2)
        if not MODEL_PICTURE.fullmatch(name):
            return match.group(0)
        return f"{match.group(1)}/model-files/{name}{match.group(3)}"

    return _RELATIVE_IMAGE.sub(fix, text)


SCALARS = (str, int, float, bool, type(None))
# The pictures evaluation draws into the model folder, with their captions; served under /model-files/.
MODEL_FIGURES = {
    "confusion_matrix.png": "Confusion matrix",
    "calibration.png": "Reliability diagram and risk-coverage curves",
    "errors.png": "Main confusions, with example cells",
}
# Figures shown beside the previous version's, per evaluation set.
COMPARED = ("accuracy", "flag_rate", "accuracy_unflagged", "ece")


def fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower() if value is not None else "–"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, list) and all(isinstance(v, SCALARS) for v in value):
        return ", ".join(fmt(v) for v in value)
    return str(value)


def _title(key: str) -> str:
    return label_words(key) if key.isupper() else key.replace("_", " ")


def _flat(value: Any) -> bool:
    if isinstance(value, list):
        return all(isinstance(v, SCALARS) for v in value)
    return isinstance(value, SCALARS)


def flatten(section: Mapping[str, Any]) -> dict[str, Any]:
    """One level of nesting becomes "recall · Eosinophil" columns; matrices are left to the pictures."""
    flat: dict[str, Any] = {}
    for key, value in section.items():
        if isinstance(value, Mapping):
            flat.update({f"{_title(key)} · {_title(k)}": v for k, v in value.items() if _flat(v)})
        elif _flat(value):
            flat[_title(key)] = value
    return flat


def render_metrics(metrics: Mapping[str, Any], row_heading: str = "Evaluated on") -> None:
    """Loose numbers as a key/value grid; evaluation sets with the same figures share one table."""
    loose = flatten({k: v for k, v in metrics.items() if not isinstance(v, Mapping)})
    if loose:
        with ui.grid(columns="auto 1fr").classes("gap-x-6 gap-y-1"):
            for key, value in loose.items():
                ui.label(key).classes("text-grey-8")
                ui.label(fmt(value)).classes("font-mono")
    groups: dict[tuple[str, ...], list[tuple[str, dict[str, Any]]]] = {}
    for name, section in metrics.items():
        if isinstance(section, Mapping) and (flat := flatten(section)):
            groups.setdefault(tuple(flat), []).append((name, flat))
    for columns, rows in groups.items():
        fields = dict(zip((f"c{i}" for i in range(len(columns))), columns, strict=True))
        table_columns = [{"name": "set", "label": row_heading, "field": "set", "align": "left"}]
        table_columns += [{"name": f, "label": c, "field": f, "align": "right"} for f, c in fields.items()]
        table_rows = [{"set": name, **{f: fmt(flat[c]) for f, c in fields.items()}} for name, flat in rows]
        ui.table(columns=table_columns, rows=table_rows, row_key="set").props(
            "dense flat bordered wrap-cells"
        ).classes("w-full bc-metrics")


def render_comparison(meta: Mapping[str, Any]) -> None:
    """The shipped version's figures beside the previous one's, evaluated the same way."""
    base, metrics = meta.get("baseline"), meta.get("metrics")
    if not isinstance(base, Mapping) or not isinstance(metrics, Mapping):
        return
    old_version, new_version = str(base.get("version", "previous")), str(meta.get("version", "shipped"))
    columns = [{"name": "set", "label": "Evaluated on", "field": "set", "align": "left"}]
    rows = []
    for key in COMPARED:
        for version in (old_version, new_version):
            columns.append(
                {
                    "name": f"{key}-{version}",
                    "label": f"{_title(key)} {version}",
                    "field": f"{key}-{version}",
                    "align": "right",
                }
            )
    for name, old in (base.get("metrics") or {}).items():
        new = metrics.get(name)
        if not isinstance(old, Mapping) or not isinstance(new, Mapping):
            continue
        row = {"set": name}
        for key in COMPARED:
            row[f"{key}-{old_version}"] = fmt(old.get(key))
            row[f"{key}-{new_version}"] = fmt(new.get(key))
        rows.append(row)
    if rows:
        with ui.card().classes("w-full gap-1"):
            ui.label(f"Version {new_version} beside {old_version}").classes("text-subtitle1 font-medium")
            ui.table(columns=columns, rows=rows, row_key="set").props(
                "dense flat bordered wrap-cells"
            ).classes("w-full bc-comparison")


def model_folder(settings: Settings) -> Path | None:
    """MODEL_DIR, else the model shipped with the package; None when neither exists."""
    if settings.model_dir is not None:
        return settings.model_dir
    try:
        return default_model_dir()
    except ConfigurationError:
        return None


@pages.page("/model", "the model", nav="About the model")
def model_page(settings: Settings) -> None:
    ui.label("About the model").classes("text-h5")
    folder = model_folder(settings)
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
        cells = [label_words(label) for label in info.outputs if label != OTHER]
        other = " plus an 'other' output for images that show none of them" if OTHER in info.outputs else ""
        ui.label(f"Classes: {', '.join(cells)}{other}.")
        ui.label(
            f"A prediction is marked uncertain when its top probability is below "
            f"{100 * info.min_top_probability:.0f} %"
            + (
                f" or the 'other' output exceeds {100 * info.max_other_probability:.0f} %."
                if info.max_other_probability < 1.0
                else "."
            )
        ).classes("text-grey-8 text-sm")
        rule = meta.get("uncertainty")
        if isinstance(rule, Mapping) and ("temperature" in rule or "views" in rule):
            views = ", ".join(map(str, rule.get("views") or ["identity"]))
            temperature = fmt(float(rule.get("temperature", 1.0)))
            ui.label(
                f"Each image is classified in these views, averaged: {views}; the probabilities are "
                f"calibrated with temperature {temperature}, fitted on validation data."
            ).classes("text-grey-8 text-sm")
        if info.ood_threshold is not None:
            ui.label(
                "Every result also carries an out-of-distribution score: how far the cell lies from the "
                f"training cells in the model's own features. Above {fmt(info.ood_threshold)} the cell is "
                "marked unfamiliar and uncertain, however confident the probabilities: a stain, camera or "
                "magnification unlike the training labs'. A slide with many unfamiliar cells should be "
                "reviewed cell by cell, or the model calibrated to the lab (bloodcell calibrate)."
            ).classes("text-grey-8 text-sm")
        ui.label(
            "This page describes the model files the web app sees; every result also records the name "
            "and version of the model that actually produced it."
        ).classes("text-xs text-grey-7")
    with ui.card().classes("w-full gap-1"):
        ui.label("Evaluation").classes("text-subtitle1 font-medium")
        metrics = meta.get("metrics")
        if isinstance(metrics, Mapping) and metrics:
            render_metrics(metrics)
        else:
            ui.label("metadata.json holds no metrics for this model yet.").classes("text-grey-7")
        for name, caption in MODEL_FIGURES.items():
            if (folder / name).is_file():
                ui.label(caption).classes("text-subtitle2 mt-2")
                css = "bc-confusion" if name == "confusion_matrix.png" else f"bc-{name.removesuffix('.png')}"
                # at its own size (shrunk to a column a matrix's digits were unreadable); scrolls in its box
                with ui.element("div").classes("w-full overflow-x-auto"):
                    ui.image(f"/model-files/{name}").classes(css).props("fit=contain").style(
                        f"width: {_width(folder / name)}px; max-width: none"
                    )
                ui.link(f"Open the {caption.lower()} on its own", f"/model-files/{name}", new_tab=True)
    render_comparison(meta)
    hidden = ("name", "version", "metrics", "uncertainty", "baseline")
    facts = {k: v for k, v in meta.items() if k not in hidden}
    if facts:
        with ui.card().classes("w-full gap-1"):
            ui.label("Other facts from metadata.json").classes("text-subtitle1 font-medium")
            render_metrics(facts, row_heading="")
    card = folder / "MODEL_CARD.md"
    if card.is_file():
        with ui.expansion("Model card", icon="description").classes("w-full bg-white rounded"):
            ui.markdown(card_markdown(card.read_text(encoding="utf-8", errors="replace")))
    with ui.expansion("All of metadata.json", icon="data_object").classes("w-full bg-white rounded"):
        ui.code(json.dumps(meta, indent=2, ensure_ascii=False), language="json").classes("w-full")
