"""The model card's pictures (Pillow only): reliability and risk-coverage, and the main confusions.

Drawn from what ``evaluate.py`` measured, never by hand. Crops in the error picture are
the 96x96 tensors the model saw, beside the whole image with the cell locator's box, so a
cut-off monocyte or a neighbouring cell in the crop is visible at a glance.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from splits import OTHER_INDEX, WBC

from bloodcell.cellcrop import cell_crop, crop_box, locate_cell
from bloodcell.contract import CONTRACT
from bloodcell.imaging import decode_image
from bloodcell.model import Classifier

PLOT = 260
MARGIN = 40
COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14)]
CALIBRATION_SETS = (
    "Kaggle val (held-out TRAIN smears)",
    "PBC val",
    "Kaggle TEST",
    "PBC val resized to 360x363",
)


def _axes(
    draw: ImageDraw.ImageDraw, x0: int, y0: int, title: str, xlabel: str, ylabel: str, lo: float
) -> None:
    font = ImageFont.load_default()
    draw.rectangle((x0, y0, x0 + PLOT, y0 + PLOT), outline="black")
    draw.text((x0, y0 - 28), title, fill="black", font=font)
    draw.text((x0 + PLOT // 2 - 40, y0 + PLOT + 16), xlabel, fill="black", font=font)
    draw.text((x0 - 36, y0 - 14), ylabel, fill="black", font=font)
    for k in range(6):
        v = lo + (1.0 - lo) * k / 5
        y = y0 + PLOT - PLOT * k / 5
        draw.line((x0 - 3, y, x0, y), fill="black")
        draw.text((x0 - 34, y - 6), f"{v:.2f}", fill="black", font=font)


def draw_calibration(
    reliability: dict[str, list[tuple[float, float, int]]],
    curves: dict[str, list[tuple[float, float]]],
    metrics: dict[str, Any],
    path: Path,
) -> None:
    """Left: reliability diagram (accuracy vs confidence). Right: accuracy vs share of cells kept."""
    font = ImageFont.load_default()
    img = Image.new("RGB", (2 * (PLOT + 2 * MARGIN) + 40, PLOT + 2 * MARGIN + 24 + 14 * 5), "white")
    draw = ImageDraw.Draw(img)
    lx, rx, y0 = MARGIN + 10, 2 * MARGIN + PLOT + 60, MARGIN
    _axes(draw, lx, y0, "reliability (shown confidence)", "confidence", "accuracy", 0.0)
    draw.line((lx, y0 + PLOT, lx + PLOT, y0), fill=(170, 170, 170))
    lo = 0.8
    _axes(draw, rx, y0, "risk-coverage (most confident first)", "coverage 0.5 .. 1.0", "accuracy", lo)
    names = [n for n in CALIBRATION_SETS if n in reliability]
    for k, name in enumerate(names):
        colour = COLOURS[k % len(COLOURS)]
        pts = [(lx + c * PLOT, y0 + PLOT - a * PLOT) for c, a, _ in reliability[name]]
        for (_, _, n), (px, py) in zip(reliability[name], pts, strict=True):
            r = 2 + min(5, int(np.log10(max(n, 1))))
            draw.ellipse((px - r, py - r, px + r, py + r), outline=colour)
        if len(pts) > 1:
            draw.line(pts, fill=colour, width=2)
        curve = [
            (rx + (c - 0.5) / 0.5 * PLOT, y0 + PLOT - (max(a, lo) - lo) / (1 - lo) * PLOT)
            for c, a in curves[name]
        ]
        draw.line(curve, fill=colour, width=2)
        m = metrics[name]
        cov = 1.0 - float(m["flag_rate"])
        op = (
            rx + (cov - 0.5) / 0.5 * PLOT,
            y0 + PLOT - (max(float(m["accuracy_unflagged"]), lo) - lo) / (1 - lo) * PLOT,
        )
        draw.rectangle((op[0] - 4, op[1] - 4, op[0] + 4, op[1] + 4), outline=colour, width=2)
        legend = (
            f"{name}: ECE {m['ece']:.3f}, unflagged accuracy {m['accuracy_unflagged']:.3f} at {cov:.2f} kept"
        )
        draw.text((lx, y0 + PLOT + 34 + 14 * k), legend, fill=colour, font=font)
    draw.text(
        (lx, y0 + PLOT + 34 + 14 * len(names)),
        "square: the shipped uncertainty rule",
        fill="black",
        font=font,
    )
    img.save(path)


def _thumb(rgb: Image.Image, width: int, height: int) -> Image.Image:
    box = crop_box(locate_cell(rgb), rgb.size[0], rgb.size[1])
    f = min(width / rgb.size[0], height / rgb.size[1])
    size = (max(1, round(rgb.size[0] * f)), max(1, round(rgb.size[1] * f)))
    thumb = rgb.resize(size, Image.Resampling.BILINEAR)
    ImageDraw.Draw(thumb).rectangle([v * f for v in box], outline=(255, 230, 0), width=2)
    return thumb


def draw_errors(
    sets: list[Any], raw: dict[str, np.ndarray], clf: Classifier, path: Path, per_pair: int = 4
) -> None:
    """The four most frequent (true -> predicted) confusions on test sets, one distinct cell per example."""
    font = ImageFont.load_default()
    examples: dict[tuple[str, int, int], list[tuple[Any, Any]]] = {}
    counts: Counter[tuple[str, int, int]] = Counter()
    for s in sets:
        if s.name not in ("Kaggle TEST", "PBC val resized to 360x363", "PBC val"):
            continue
        seen: set[str] = set()
        for it, r in zip(s.items, raw[s.name], strict=True):
            if it.label >= OTHER_INDEX:
                continue
            q = clf.interpret(r)
            pred = WBC.index(q.label)
            if pred != it.label:
                key = (s.name, it.label, pred)
                counts[key] += 1
                cell = it.group if it.source == "kaggle" else str(it.path)
                if cell not in seen and len(examples.setdefault(key, [])) < per_pair:
                    seen.add(cell)
                    examples[key].append((it, q))
    pairs = [k for k, _ in counts.most_common(4)]
    row_h, thumb_h = CONTRACT.height + 44, CONTRACT.height
    img = Image.new("RGB", (60 + per_pair * 260, 20 + max(1, len(pairs)) * row_h), "white")
    draw = ImageDraw.Draw(img)
    for r, key in enumerate(pairs):
        name, true, pred = key
        y = 10 + r * row_h
        draw.text(
            (10, y),
            f"{name}: {WBC[true].lower()} taken for {WBC[pred].lower()} ({counts[key]} images)",
            fill="black",
            font=font,
        )
        for k, (it, q) in enumerate(examples[key]):
            rgb = decode_image(it.path.read_bytes())
            if s_transform := next((s.transform for s in sets if s.name == name), None):
                rgb = s_transform(rgb)
            x = 10 + k * 260
            thumb = _thumb(rgb, 150, thumb_h)
            img.paste(thumb, (x, y + 14))
            crop = Image.fromarray(cell_crop(rgb, CONTRACT.width))
            img.paste(crop, (x + 154, y + 14))
            draw.text(
                (x, y + 16 + thumb_h),
                f"{it.path.name[:18]} {100 * q.confidence:.0f} %{' uncertain' if q.uncertain else ''}",
                fill="black",
                font=font,
            )
    img.save(path)
