"""The confusion-matrix picture (Pillow only) and the model card's tables, drawn from the measured metrics.

Generated, never hand-edited, so the card always shows what ``evaluate.py`` measured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont
from splits import WBC

CELL = 56
PAD = 120


def draw_confusion(metrics: dict[str, Any], names: list[str], path: Path) -> None:
    """One row-normalised heat map per dataset, counts written in the cells."""
    font = ImageFont.load_default()
    n = len(WBC)
    panel_w = PAD + n * CELL + 20
    img = Image.new("RGB", (panel_w * len(names), PAD + n * CELL + 30), "white")
    draw = ImageDraw.Draw(img)
    for k, name in enumerate(names):
        cm = metrics[name]["confusion_matrix"]
        x0 = k * panel_w
        draw.text((x0 + 10, 8), f"{name} (acc {metrics[name]['accuracy']:.3f})", fill="black", font=font)
        draw.text((x0 + PAD, PAD - 30), "predicted ->", fill="black", font=font)
        for j, label in enumerate(WBC):
            draw.text((x0 + PAD + j * CELL + 4, PAD - 16), label[:4], fill="black", font=font)
            draw.text((x0 + 10, PAD + j * CELL + CELL // 2 - 6), label[:10], fill="black", font=font)
        for i, row in enumerate(cm):
            total = max(1, sum(row))
            for j, count in enumerate(row):
                share = count / total
                shade = int(255 - 200 * share)
                box = (
                    x0 + PAD + j * CELL,
                    PAD + i * CELL,
                    x0 + PAD + (j + 1) * CELL - 2,
                    PAD + (i + 1) * CELL - 2,
                )
                draw.rectangle(box, fill=(shade, shade, 255))
                colour = "white" if share > 0.6 else "black"
                draw.text((box[0] + 8, box[1] + CELL // 2 - 6), str(count), fill=colour, font=font)
        draw.text((x0 + 10, PAD + n * CELL + 8), "rows: true class", fill="black", font=font)
    img.save(path)


def _ci(m: dict[str, Any], key: str) -> str:
    lo, hi = m.get(key) or (float("nan"), float("nan"))
    return f"{lo:.3f}-{hi:.3f}"


def _table(metrics: dict[str, Any]) -> str:
    head = (
        "| dataset | n (cells) | accuracy [95 % CI] | flagged | accuracy unflagged [95 % CI] | ECE | "
        + " | ".join(f"recall {c.lower()}" for c in WBC)
    )
    lines = [head + " |", "|" + "---|" * (6 + len(WBC))]
    for name, m in metrics.items():
        if "accuracy" in m:
            rec = " | ".join(f"{m['recall'][c]:.3f}" for c in WBC)
            lines.append(
                f"| {name} | {m['n']} ({m.get('distinct_cells', m['n'])}) | {m['accuracy']:.3f} "
                f"[{_ci(m, 'accuracy_ci95')}] | {m['flag_rate']:.3f} | {m['accuracy_unflagged']:.3f} "
                f"[{_ci(m, 'accuracy_unflagged_ci95')}] | {m.get('ece', float('nan')):.3f} | {rec} |"
            )
    lines.append("")
    lines.append("| cells that are none of the four | n | flagged uncertain | by type |")
    lines.append("|---|---|---|---|")
    for name, m in metrics.items():
        if "accuracy" not in m:
            by_type = ", ".join(f"{k} {v:.2f}" for k, v in m["flag_rate_by_type"].items())
            lines.append(f"| {name} | {m['n']} | {m['flag_rate']:.3f} | {by_type} |")
    return "\n".join(lines)


def _recall_cis(m: dict[str, Any]) -> str:
    return ", ".join(f"{c.lower()} {m['recall'][c]:.3f} [{_ci(m['recall_ci95'], c)}]" for c in WBC)


def comparison(meta: dict[str, Any]) -> str:
    """New figures beside the baseline's (the previous version, evaluated the same way)."""
    base = meta.get("baseline")
    if not base:
        return ""
    old_v, new_v = base["version"], meta["version"]
    lines = [
        f"| dataset | accuracy {old_v} | accuracy {new_v} | flagged {old_v} | flagged {new_v} "
        f"| unflagged accuracy {old_v} | unflagged accuracy {new_v} |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, old in base["metrics"].items():
        new = meta["metrics"].get(name)
        if not new:
            continue
        if "accuracy" in old:
            lines.append(
                f"| {name} | {old['accuracy']:.3f} | {new['accuracy']:.3f} | {old['flag_rate']:.3f} "
                f"| {new['flag_rate']:.3f} | {old['accuracy_unflagged']:.3f} "
                f"| {new['accuracy_unflagged']:.3f} |"
            )
        else:
            lines.append(f"| {name} | | | {old['flag_rate']:.3f} | {new['flag_rate']:.3f} | | |")
    return "\n".join(lines)
