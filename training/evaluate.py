"""Evaluate the SHIPPED .tflite exactly as the runtime does, print the report, write it into metadata.

    PYTHONPATH=src python training/evaluate.py --data ../shared/datasets --model functions/predict/model

Every image goes through ``decode_image`` -> ``cell_tensor`` -> ``Classifier.predict``, the
path of ``bloodcell classify``; no TensorFlow is needed (LiteRT, numpy, Pillow only).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "training"))

from report import draw_confusion, write_card  # noqa: E402
from splits import OTHER_INDEX, WBC, Item, kaggle_items, pbc_val_items  # noqa: E402

from bloodcell.cellcrop import cell_tensor  # noqa: E402
from bloodcell.imaging import decode_image  # noqa: E402
from bloodcell.model import Classifier  # noqa: E402

NATIVE_PBC = (360, 363)  # width, height of the original PBC captures


def classify(
    clf: Classifier, items: Iterable[Item], transform: Callable[[Image.Image], Image.Image] | None = None
) -> tuple[list[int], list[bool]]:
    preds, flags = [], []
    for it in items:
        rgb = decode_image(it.path.read_bytes())
        if transform is not None:
            rgb = transform(rgb)
        p = clf.predict(cell_tensor(rgb))
        preds.append(WBC.index(p.label))
        flags.append(p.uncertain)
    return preds, flags


def wbc_metrics(labels: list[int], preds: list[int], flags: list[bool]) -> dict[str, object]:
    y, p, f = np.array(labels), np.array(preds), np.array(flags)
    cm = np.zeros((len(WBC), len(WBC)), int)
    for t, q in zip(y, p, strict=True):
        cm[t, q] += 1
    recall, f1 = {}, []
    for c, name in enumerate(WBC):
        tp, support, predicted = cm[c, c], cm[c].sum(), cm[:, c].sum()
        r = tp / support if support else float("nan")
        prec = tp / predicted if predicted else 0.0
        recall[name] = round(float(r), 4)
        if support:
            f1.append(2 * prec * r / (prec + r) if prec + r else 0.0)
    kept = ~f
    return {
        "n": len(y),
        "accuracy": round(float((y == p).mean()), 4),
        "macro_f1": round(float(np.mean(f1)), 4),
        "recall": recall,
        "confusion_matrix": cm.tolist(),
        "flag_rate": round(float(f.mean()), 4),
        "accuracy_unflagged": round(float((y[kept] == p[kept]).mean()), 4) if kept.any() else None,
    }


def bccd_test_items(data: Path) -> list[Item]:
    """BCCD full 640x480 fields whose cell fed Kaggle TEST only (never seen in training in any form)."""
    items = []
    with (data / "bccd" / "labels.csv").open() as fh:
        for row in csv.DictReader(fh):
            category = (row.get("category") or "").strip()
            if row.get("kaggle_side") == "test" and category in WBC:
                items.append(
                    Item(data / "bccd" / "JPEGImages" / row["image"], WBC.index(category), "bccd", category)
                )
    return items


def timing(model_dir: Path, n: int = 300) -> dict[str, float]:
    clf = Classifier(model_dir, threads=1)
    x = np.random.default_rng(0).random((96, 96, 3), dtype=np.float32)
    for _ in range(20):
        clf.predict(x)
    t0 = time.perf_counter()
    for _ in range(n):
        clf.predict(x)
    infer = (time.perf_counter() - t0) / n * 1000
    field = Image.new("RGB", (640, 480), (230, 200, 210))
    t0 = time.perf_counter()
    for _ in range(50):
        cell_tensor(field)
    return {
        "inference_ms_1_thread": round(infer, 3),
        "cell_tensor_ms_640x480": round((time.perf_counter() - t0) / 50 * 1000, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("BLOODCELL_DATASETS", "../shared/datasets"))
    )
    parser.add_argument("--model", type=Path, default=REPO / "functions" / "predict" / "model")
    parser.add_argument("--no-write", action="store_true", help="print only; leave metadata.json alone")
    args = parser.parse_args()
    clf = Classifier(args.model, threads=1)
    t0 = time.monotonic()
    pbc_val = pbc_val_items(args.data)
    pbc_wbc = [it for it in pbc_val if it.label < OTHER_INDEX]
    pbc_other = [it for it in pbc_val if it.label == OTHER_INDEX]

    def native(im: Image.Image) -> Image.Image:
        return im.resize(NATIVE_PBC, Image.Resampling.BICUBIC)

    sets: list[tuple[str, list[Item], Callable[[Image.Image], Image.Image] | None]] = [
        ("Kaggle TEST", kaggle_items(args.data, "TEST"), None),
        ("Kaggle TEST_SIMPLE", kaggle_items(args.data, "TEST_SIMPLE"), None),
        ("BCCD test fields 640x480", bccd_test_items(args.data), None),
        ("PBC val", pbc_wbc, None),
        ("PBC val resized to 360x363", pbc_wbc, native),
    ]
    metrics: dict[str, object] = {}
    for name, items, transform in sets:
        preds, flags = classify(clf, items, transform)
        metrics[name] = wbc_metrics([it.label for it in items], preds, flags)
    for name, transform in (("pbc/other val", None), ("pbc/other val resized to 360x363", native)):
        _, flags = classify(clf, pbc_other, transform)
        by_type = {
            g: round(float(np.mean([f for it, f in zip(pbc_other, flags, strict=True) if it.group == g])), 4)
            for g in sorted({it.group for it in pbc_other})
        }
        metrics[name] = {
            "n": len(pbc_other),
            "flag_rate": round(float(np.mean(flags)), 4),
            "flag_rate_by_type": by_type,
        }
    speed = timing(args.model)
    print(f"evaluated in {time.monotonic() - t0:.0f}s with {args.model / 'model.tflite'}\n")
    print(
        f"{'dataset':34s} {'n':>5s} {'acc':>6s} {'mF1':>6s} {'flag':>6s}  "
        + " ".join(f"{c[:4]:>6s}" for c in WBC)
    )
    for name, m in metrics.items():
        if "accuracy" in m:  # type: ignore[operator]
            rec = " ".join(f"{m['recall'][c]:6.3f}" for c in WBC)  # type: ignore[index]
            print(
                f"{name:34s} {m['n']:5d} {m['accuracy']:6.3f} {m['macro_f1']:6.3f} "
                f"{m['flag_rate']:6.3f}  {rec}"
            )  # type: ignore[index]
        else:
            print(f"{name:34s} {m['n']:5d} {'':6s} {'':6s} {m['flag_rate']:6.3f}  {m['flag_rate_by_type']}")  # type: ignore[index]
    print(
        f"\nLiteRT inference {speed['inference_ms_1_thread']:.2f} ms (1 thread); "
        f"cell_tensor on 640x480 {speed['cell_tensor_ms_640x480']:.2f} ms; "
        f"model file {(args.model / 'model.tflite').stat().st_size / 1e6:.2f} MB"
    )
    if not args.no_write:
        meta_path = args.model / "metadata.json"
        meta = json.loads(meta_path.read_text())
        meta["metrics"] = metrics
        meta["speed"] = speed
        meta["file_bytes"] = (args.model / "model.tflite").stat().st_size
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
        draw_confusion(
            metrics,
            ["Kaggle TEST", "PBC val", "PBC val resized to 360x363"],
            args.model / "confusion_matrix.png",
        )
        write_card(meta, args.model / "MODEL_CARD.md")
        print(f"wrote metrics into {meta_path}, confusion_matrix.png and MODEL_CARD.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
