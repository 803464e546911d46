"""Calibration targets on the leave-one-lab-out proxy: a model trained without a lab, calibrated
with a few of that lab's verified cells, tested on the rest of it (issue 22).

    PYTHONPATH=src:. python bench/calibration.py --model training/lolo/kaggle-only --dataset pbc
    PYTHONPATH=src:. python bench/calibration.py --model training/lolo/pbc-only --dataset kaggle
    PYTHONPATH=src:. python bench/calibration.py --model DIR --labelled my-lab/   (one folder per class)

The lab's cells go through the runtime path once (decode, crop, network) and are cached as
embeddings; then, for 5 and 20 cells per class and several seeds, cells are drawn per class
(Kaggle: whole smears, so no augmented near-copy of a calibration cell is tested on), a
calibration is fitted and judged exactly as ``bloodcell calibrate`` does (``calibrate`` with
its three held-out folds and the gate), and the rest of the lab is classified by the
uncalibrated model and by the calibration. Wall time: the embedding of the calibration cells
plus ``calibrate``, i.e. what the command spends, on this machine's cores.

Targets: 20 per class >= 0.95 and >= 10 points above uncalibrated; 5 per class >= 0.90;
at most 5 minutes. Not a timed test: run it by hand, it prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from bloodcell.calibration import evaluate
from bloodcell.calibration.core import BaseModel, LabCells, calibrate, label_of
from bloodcell.formats import is_image_name
from bloodcell.imaging import ImageLimits
from bloodcell.model import Classifier, default_model_dir
from bloodcell.pipeline import make_tensor

Cell = tuple[Path, str, str]  # path, label, group (cells of one group are drawn together)


def dataset_cells(root: Path, dataset: str) -> list[Cell]:
    cells: list[Cell] = []
    if dataset == "pbc":
        for sub in ("wbc", "other"):
            for folder in sorted((root / "pbc" / sub).iterdir()):
                label = label_of(folder.name)
                cells += [(p, label, p.name) for p in sorted(folder.glob("*.jpg"))]
        return cells
    # Kaggle: TRAIN and TEST are augmented copies of a few hundred cells; copies of one cell
    # share _<k>_ within a class and split, so a group is one distinct cell
    for split in ("TRAIN", "TEST"):
        for folder in sorted((root / "kaggle-blood-cells" / split).iterdir()):
            for p in sorted(folder.glob("*.jpeg")):
                group = p.name.split("_")[1] if p.name.startswith("_") else p.stem
                cells.append((p, label_of(folder.name), f"{split}/{folder.name}/{group}"))
    return cells


def folder_cells(root: Path) -> list[Cell]:
    return [
        (p, label_of(folder.name), str(p))
        for folder in sorted(q for q in root.iterdir() if q.is_dir())
        for p in sorted(folder.rglob("*"))
        if p.is_file() and is_image_name(p.name)
    ]


def subsample(cells: list[Cell], per_class: int, per_group: int = 2, seed: int = 0) -> list[Cell]:
    """At most ``per_class`` cells of each class and ``per_group`` copies of one cell, deterministically."""
    rng = np.random.default_rng(seed)
    by_label: dict[str, dict[str, list[Cell]]] = defaultdict(lambda: defaultdict(list))
    for cell in cells:
        by_label[cell[1]][cell[2]].append(cell)
    out: list[Cell] = []
    for groups in by_label.values():
        keys = sorted(groups)
        taken: list[Cell] = []
        for i in rng.permutation(len(keys)):
            taken += groups[keys[i]][:per_group]
        out += taken[:per_class]
    return out


def embed_all(clf: Classifier, cells: list[Cell]) -> tuple[np.ndarray, np.ndarray, float]:
    embeddings, probabilities = [], []
    started = time.perf_counter()
    for path, _, _ in cells:
        fwd = clf.forward(make_tensor(path.read_bytes(), ImageLimits()))
        assert fwd.embedding is not None, "the model has no embedding output"
        embeddings.append(fwd.embedding)
        probabilities.append(fwd.probabilities)
    per_cell = (time.perf_counter() - started) / max(1, len(cells))
    return np.stack(embeddings), np.stack(probabilities), per_cell


def draw(groups: list[str], labels: list[str], per_class: int, seed: int) -> np.ndarray:
    """Indices of ``per_class`` calibration cells per class: distinct cells (one per group) first."""
    rng = np.random.default_rng(1000 + seed)
    chosen: list[int] = []
    for label in sorted(set(labels)):
        by_group: dict[str, list[int]] = defaultdict(list)
        for i, lab in enumerate(labels):
            if lab == label:
                by_group[groups[i]].append(i)
        order = [sorted(by_group)[k] for k in rng.permutation(len(by_group))]
        taken: list[int] = []
        for depth in range(max(len(v) for v in by_group.values())):
            taken += [by_group[g][depth] for g in order if depth < len(by_group[g])]
            if len(taken) >= per_class:
                break
        chosen += taken[:per_class]
    return np.array(sorted(chosen))


def run(model_dir: Path, cells: list[Cell], sizes: list[int], seeds: int) -> dict[str, object]:
    base = BaseModel.load(model_dir)
    clf = Classifier(model_dir, threads=1)
    x, probs, embed_s = embed_all(clf, cells)
    labels = [c[1] for c in cells]
    groups = [c[2] for c in cells]
    y = np.array([base.outputs.index(label) if label in base.outputs else -1 for label in labels])
    shipped_pred = np.argmax(probs, axis=1)
    report: dict[str, object] = {
        "model": f"{base.name} {base.version}",
        "model_dir": str(model_dir),
        "cells": len(cells),
        "counts": {k: labels.count(k) for k in sorted(set(labels))},
        "embed_seconds_per_cell": round(embed_s, 4),
        "cores": os.cpu_count(),
        "sizes": {},
    }
    for per_class in sizes:
        rows = []
        for seed in range(seeds):
            chosen = draw(groups, labels, per_class, seed)
            chosen_groups = {groups[i] for i in chosen}
            rest = np.array([i for i in range(len(cells)) if groups[i] not in chosen_groups and y[i] >= 0])
            lab = LabCells(
                x[chosen], tuple(labels[i] for i in chosen), tuple(str(cells[i][0]) for i in chosen)
            )
            started = time.perf_counter()
            candidate = calibrate(base, lab, None, "shipped", seed=seed)
            fit_s = time.perf_counter() - started
            decision = evaluate.gate(candidate.evaluation)
            calibrated = candidate.calibration.head.predict(x[rest])
            wbc = y[rest] < 4
            rows.append(
                {
                    "seed": seed,
                    "rest": len(rest),
                    "uncalibrated": float(np.mean(shipped_pred[rest] == y[rest])),
                    "calibrated": float(np.mean(calibrated == y[rest])),
                    "uncalibrated_wbc": float(np.mean(shipped_pred[rest][wbc] == y[rest][wbc])),
                    "calibrated_wbc": float(np.mean(calibrated[wbc] == y[rest][wbc])),
                    "promoted": decision.promoted,
                    "pull": candidate.pull,
                    "calibrate_seconds": round(fit_s, 3),
                    "wall_seconds": round(fit_s + embed_s * len(chosen), 3),
                }
            )
        summary = {
            key: round(statistics.mean(float(str(r[key])) for r in rows), 4)
            for key in ("uncalibrated", "calibrated", "uncalibrated_wbc", "calibrated_wbc", "wall_seconds")
        }
        summary["promoted_share"] = sum(bool(r["promoted"]) for r in rows) / len(rows)
        summary["max_wall_seconds"] = max(float(str(r["wall_seconds"])) for r in rows)
        report["sizes"][str(per_class)] = {"summary": summary, "runs": rows}  # type: ignore[index]
    return report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped model)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", choices=("pbc", "kaggle"), help="a training source as the new lab")
    source.add_argument("--labelled", type=Path, help="a lab's folder, one sub-folder per class")
    p.add_argument(
        "--datasets", type=Path, default=Path(os.environ.get("BLOODCELL_DATASETS", "../shared/datasets"))
    )
    p.add_argument("--max-per-class", type=int, default=300, help="cells of each class to embed (time)")
    p.add_argument("--sizes", type=int, nargs="+", default=[5, 20])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--out", type=Path, help="JSON report (default: bench/out/calibration.json)")
    args = p.parse_args()
    cells = dataset_cells(args.datasets, args.dataset) if args.dataset else folder_cells(args.labelled)
    cells = subsample(cells, args.max_per_class)
    report = run(args.model or default_model_dir(), cells, args.sizes, args.seeds)
    out = args.out or Path(__file__).resolve().parent / "out" / "calibration.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"{report['model']} on {report['cells']} cells {report['counts']}")
    for size, entry in report["sizes"].items():  # type: ignore[attr-defined]
        s = entry["summary"]
        print(
            f"  {size:>3} per class: uncalibrated {s['uncalibrated']:.3f} "
            f"-> calibrated {s['calibrated']:.3f} "
            f"(white cells {s['uncalibrated_wbc']:.3f} -> {s['calibrated_wbc']:.3f}), "
            f"promoted {s['promoted_share']:.0%}, wall {s['max_wall_seconds']:.1f} s at most"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
