"""The confusion-matrix picture (Pillow only) and MODEL_CARD.md, both drawn from the measured metrics.

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


def _table(metrics: dict[str, Any]) -> str:
    head = "| dataset | n | accuracy | macro-F1 | flagged uncertain | " + " | ".join(
        f"recall {c.lower()}" for c in WBC
    )
    lines = [head + " |", "|" + "---|" * (5 + len(WBC))]
    for name, m in metrics.items():
        if "accuracy" in m:
            rec = " | ".join(f"{m['recall'][c]:.3f}" for c in WBC)
            lines.append(
                f"| {name} | {m['n']} | {m['accuracy']:.3f} | {m['macro_f1']:.3f} "
                f"| {m['flag_rate']:.3f} | {rec} |"
            )
    lines.append("")
    lines.append("| cells that are none of the four | n | flagged uncertain | by type |")
    lines.append("|---|---|---|---|")
    for name, m in metrics.items():
        if "accuracy" not in m:
            by_type = ", ".join(f"{k} {v:.2f}" for k, v in m["flag_rate_by_type"].items())
            lines.append(f"| {name} | {m['n']} | {m['flag_rate']:.3f} | {by_type} |")
    return "\n".join(lines)


def write_card(meta: dict[str, Any], path: Path) -> None:
    m = meta["metrics"]
    rule = meta["uncertainty"]
    sources = "\n".join(
        f"| {k} | {v['train']} | {v['val']} |" for k, v in meta["training"]["sources"].items()
    )
    extra = path.parent / "MODEL_CARD_NOTES.md"
    notes = extra.read_text() if extra.is_file() else ""
    text = f"""# Model card: {meta["name"]} {meta["version"]}

**NOT FOR DIAGNOSIS.** A research and teaching aid that names the most likely of four white-blood-cell
types in a stained peripheral-blood image. It has not been validated clinically and must not be used to
make or support medical decisions.

## Intended use
One image of a stained blood smear with a white cell near its centre (a cell crop or a microscope field)
in; one of EOSINOPHIL, LYMPHOCYTE, MONOCYTE, NEUTROPHIL out, with `uncertain: true` when the model is not
confident or judges the cell to be none of the four (e.g. basophil, erythroblast, immature granulocyte,
platelet). It is not a cell counter and does not detect several cells in one field.

## Model
- Depthwise-separable CNN, {meta["params"]:,} parameters, {meta["mflops"]} MFLOPs per image,
  float32 LiteRT, {meta["file_bytes"] / 1e6:.2f} MB; {meta["speed"]["inference_ms_1_thread"]:.2f} ms per image
  at 1 thread on the build machine
  (preprocessing of a 640x480 field: {meta["speed"]["cell_tensor_ms_640x480"]:.2f} ms).
- Input: `bloodcell.cellcrop.cell_tensor`: the white cell is located as the most purple region, a square
  with side proportional to the square root of the nucleus area is cut around it (so the crop follows the
  cell, not the pixel count), resized to 96x96 RGB, scaled to 0..1.
- Outputs: {", ".join(meta["outputs"])} (softmax). `uncertain` when the top white-cell
  probability is below {rule["min_top_probability"]} or the OTHER probability is above
  {rule["max_other_probability"]}; both chosen on validation data only
  (see `uncertainty_calibration` in metadata.json).
- Training: seed {meta["seed"]}, {meta["training"]["epochs"]} epochs x
  {meta["training"]["steps_per_epoch"]} batches of
  {meta["training"]["batch"]}, balanced over (source, class) with OTHER as a fifth class; best epoch
  ({meta["training"]["best_epoch"]}) chosen on validation. Augmentation: scale 0.75-1.33x, shift, the 8
  rotations/flips, hue/stain/saturation/contrast/brightness jitter.

## Data and licences
| source | train | validation |
|---|---|---|
{sources}

- Kaggle "Blood Cell Images" (dhruvp/wbc-classification, derived from BCCD, MIT licence). Validation is
  carved from TRAIN by original smear (file `_<k>_<n>`: class and `k`), so augmentations of one smear never
  straddle the split. TEST and TEST_SIMPLE are reported only, never used to select anything.
- BCCD (Shenggan/BCCD_Dataset, MIT licence): the `test` rows of labels.csv, as full 640x480 fields.
- PBC (CC BY 4.0): Acevedo A, Merino A, Alférez S, Molina Á, Boldú L, Rodellar J. "A dataset of microscopic
  peripheral blood cell images for development of automatic recognition systems". Data in Brief 30 (2020)
  105474. Mendeley Data, doi:10.17632/snkd93bnjr.1. Used at 224x224; split at random per class folder
  (fixed seed, `training/splits.py`).

## Metrics (shipped .tflite through the runtime code path; `nox -s evaluate`)
{_table(m)}

"PBC val resized to 360x363" is the same validation cells upscaled to the native PBC capture size, a check
that localisation and cropping do not depend on pixel scale.

![confusion matrices](confusion_matrix.png)

## Known limits
- Kaggle TEST holds about 70 distinct cells (4 distinct monocytes): one cell moves a class recall by many
  points. Read it with TEST_SIMPLE and per-class recall.
- Two labs only (BCCD/Kaggle and Hospital Clinic Barcelona / CellaVision). Other stains, magnifications
  and cameras are untested; the uncertainty flag is calibrated on these sources only.
- One white cell per image is assumed; with several, the most purple and central one is classified.
- `uncertain` flags but does not identify other cell types; basophils and immature granulocytes look
  like the four classes and are the hardest to flag.
{notes}"""
    path.write_text(text)
