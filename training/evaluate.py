"""Calibrate and evaluate the SHIPPED .tflite exactly as the runtime does; write it into metadata.

    PYTHONPATH=src python -m training.evaluate --data ../shared/datasets --model functions/predict/model

Every image goes through ``decode_image`` -> ``cell_tensor`` -> ``Classifier`` (its test-time
views, temperature and uncertainty rule), the path of ``bloodcell classify``; no TensorFlow is
needed (LiteRT, numpy, Pillow only). The temperature and the rule are fitted on the validation
sets only (Kaggle TRAIN smears held out, PBC validation); test sets are only reported.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bloodcell import ood
from bloodcell.cellcrop import cell_tensor
from bloodcell.imaging import decode_image
from bloodcell.model import VIEWS, Classifier
from training import figures, leakage, panel, shifts, stats
from training.calibrate import choose_thresholds
from training.card import write_card
from training.leakage import NEAR_DUPLICATE_BITS
from training.report import draw_confusion
from training.splits import (
    LEGACY_PBC_VAL_FRACTION,
    OTHER_INDEX,
    WBC,
    Item,
    kaggle_items,
    pbc_val_items,
    split_kaggle_train,
    split_pbc,
)

REPO = Path(__file__).resolve().parents[1]

NATIVE_PBC = (360, 363)  # width, height of the original PBC captures
# model 3: the 8 symmetries of the square (it trained on all of them), within the 10 ms budget
DEFAULT_VIEWS = ",".join(VIEWS)
Transform = Callable[[Image.Image], Image.Image] | None


def native(im: Image.Image) -> Image.Image:
    return im.resize(NATIVE_PBC, Image.Resampling.BICUBIC)


@dataclass(frozen=True)
class EvalSet:
    name: str
    items: list[Item]
    transform: Transform
    role: str  # "validation" (fits the rule), "test" or "shift" (reported only)


def bccd_test_items(data: Path) -> list[Item]:
    """BCCD full 640x480 fields whose cell fed Kaggle TEST only (never seen in training in any form)."""
    items = []
    with (data / "bccd" / "labels.csv").open() as fh:
        for row in csv.DictReader(fh):
            category = (row.get("category") or "").strip()
            if row.get("kaggle_side") == "test" and category in WBC:
                path = data / "bccd" / "JPEGImages" / row["image"]
                items.append(Item(path, WBC.index(category), "bccd", path.name))
    return items


def eval_sets(data: Path, lolo: str | None = None) -> list[EvalSet]:
    """The sets a model is judged on; ``lolo`` names the one lab a leave-one-lab-out model learnt."""
    pbc_val = pbc_val_items(data)
    wbc = [it for it in pbc_val if it.label < OTHER_INDEX]
    other = [it for it in pbc_val if it.label == OTHER_INDEX]
    kaggle_val = EvalSet(
        "Kaggle val (held-out TRAIN smears)", split_kaggle_train(data)[1], None, "validation"
    )
    kaggle_tests = [
        EvalSet("Kaggle TEST", kaggle_items(data, "TEST"), None, "test"),
        EvalSet("Kaggle TEST_SIMPLE", kaggle_items(data, "TEST_SIMPLE"), None, "test"),
        EvalSet("BCCD test fields 640x480", bccd_test_items(data), None, "test"),
    ]
    if lolo == "kaggle":  # PBC never seen: every PBC cell is a test cell
        every = split_pbc(data)[0] + pbc_val
        every_wbc = sorted((it for it in every if it.label < OTHER_INDEX), key=lambda it: str(it.path))
        every_other = sorted((it for it in every if it.label == OTHER_INDEX), key=lambda it: str(it.path))
        return [
            kaggle_val,
            *kaggle_tests,
            EvalSet("PBC, every white cell (unseen lab)", every_wbc, None, "test"),
            EvalSet("pbc/other, every cell (unseen lab)", every_other, None, "test"),
        ]
    pbc_sets = [
        EvalSet("PBC val", wbc, None, "validation"),
        EvalSet("pbc/other val", other, None, "validation"),
        EvalSet("PBC val resized to 360x363", wbc, native, "test"),
        EvalSet("pbc/other val resized to 360x363", other, native, "test"),
        EvalSet("PBC val as tight 120 px crops", wbc, shifts.tight(), "test"),
        EvalSet("PBC val inside a 2x field", wbc, shifts.larger_field(), "test"),
    ]
    if lolo == "pbc":
        return [*pbc_sets, *(replace(s, name=f"{s.name} (unseen lab)") for s in kaggle_tests)]
    suite_base = wbc[::2]
    suite = [EvalSet("shift suite: none", suite_base, None, "shift")]
    for name, (moderate, strong) in shifts.SUITE.items():
        suite.append(EvalSet(f"shift suite: {name}, moderate", suite_base, moderate, "shift"))
        suite.append(EvalSet(f"shift suite: {name}, strong", suite_base, strong, "shift"))
    return [kaggle_val, *pbc_sets, *kaggle_tests, *suite]


def raw_outputs(clf: Classifier, s: EvalSet, model_dir: Path, cache_dir: Path) -> np.ndarray:
    """(N, outputs + 1): view-averaged softmax before calibration, then the OOD score (NaN if none).

    Cached per model file, OOD statistics, views and set.
    """
    key = hashlib.sha1((model_dir / "model.tflite").read_bytes())
    if (model_dir / ood.FILE).is_file():
        key.update((model_dir / ood.FILE).read_bytes())
    key.update(f"{clf.info.views}|{s.name}|{len(s.items)}|ood".encode())
    path = cache_dir / f"eval-{key.hexdigest()[:16]}.npy"
    if path.is_file():
        cached: np.ndarray = np.load(path)
        return cached
    out = np.empty((len(s.items), len(clf.info.outputs) + 1))
    scorer = ood.OodModel.load(model_dir / ood.FILE) if (model_dir / ood.FILE).is_file() else None
    start = time.monotonic()
    for i, it in enumerate(s.items):
        rgb = decode_image(it.path.read_bytes())
        fwd = clf.forward(cell_tensor(s.transform(rgb) if s.transform else rgb))
        out[i, :-1] = fwd.probabilities
        has_score = scorer is not None and fwd.embedding is not None
        out[i, -1] = scorer.score(fwd.embedding) if has_score else np.nan  # type: ignore[union-attr,arg-type]
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    print(f"{s.name}: {len(s.items)} images in {time.monotonic() - start:.0f}s", flush=True)
    return out


# The OOD threshold: this percentile of the validation white cells' scores (about 2.5 % of
# familiar cells flagged for it; the rest of the 10 % budget is the softmax rule's).
OOD_PERCENTILE = 97.5


def calibrate(model_dir: Path, raw: dict[str, np.ndarray], sets: list[EvalSet], views: list[str]) -> None:
    """Temperature, the flag rule and the OOD threshold, all fitted on the validation sets; into metadata."""
    val = [s for s in sets if s.role == "validation"]
    probs = np.concatenate([raw[s.name][:, :-1] for s in val])
    scores = np.concatenate([raw[s.name][:, -1] for s in val])
    labels = np.concatenate([[it.label for it in s.items] for s in val])
    sources = [it.source for s in val for it in s.items]
    temperature = stats.fit_temperature(probs, labels)
    rule = choose_thresholds(stats.scale(probs, temperature), labels, sources)
    meta_path = model_dir / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["uncertainty"] = {
        "min_top_probability": rule["min_top_probability"],
        "max_other_probability": rule["max_other_probability"],
        "temperature": temperature,
        "views": views,
    }
    meta["uncertainty_calibration"] = {"fitted_on": [s.name for s in val], "temperature": temperature, **rule}
    familiar = scores[(labels < OTHER_INDEX) & np.isfinite(scores)]
    if len(familiar):
        threshold = round(float(np.percentile(familiar, OOD_PERCENTILE)), 4)
        meta["ood"] = {
            "file": ood.FILE,
            "threshold": threshold,
            "percentile": OOD_PERCENTILE,
            "fitted_on": [s.name for s in val],
            "score": "Mahalanobis distance to the nearest white-cell class mean, per embedding dimension",
        }
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    print(f"calibrated on validation: T={temperature}, rule {rule}", flush=True)


def wbc_metrics(s: EvalSet, preds: list[Any]) -> dict[str, Any]:
    y = np.array([it.label for it in s.items])
    p = np.array([WBC.index(q.label) for q in preds])
    flagged = np.array([q.uncertain for q in preds])
    conf = np.array([q.confidence for q in preds])
    gid = stats.group_ids([it.group if it.source == "kaggle" else str(it.path) for it in s.items])
    correct = (y == p).astype(float)
    cm = np.zeros((len(WBC), len(WBC)), int)
    np.add.at(cm, (y, p), 1)
    recall, recall_ci, f1 = {}, {}, []
    for c, name in enumerate(WBC):
        tp, support, predicted = cm[c, c], cm[c].sum(), cm[:, c].sum()
        r = tp / support if support else float("nan")
        prec = tp / predicted if predicted else 0.0
        recall[name] = round(float(r), 4)
        recall_ci[name] = list(stats.ratio_ci(correct * (y == c), (y == c).astype(float), gid))
        if support:
            f1.append(2 * prec * r / (prec + r) if prec + r else 0.0)
    kept = ~flagged
    unfamiliar = np.array([q.unfamiliar for q in preds])
    score = np.array([max(q.probabilities.values()) * (1 - (q.other_probability or 0.0)) for q in preds])
    curve = stats.risk_coverage(score, correct)
    return {
        "n": len(y),
        "distinct_cells": int(gid.max()) + 1,
        "accuracy": round(float(correct.mean()), 4),
        "accuracy_ci95": list(stats.ratio_ci(correct, np.ones_like(correct), gid)),
        "macro_f1": round(float(np.mean(f1)), 4),
        "recall": recall,
        "recall_ci95": recall_ci,
        "confusion_matrix": cm.tolist(),
        "flag_rate": round(float(flagged.mean()), 4),
        "unfamiliar_rate": round(float(unfamiliar.mean()), 4),
        "accuracy_unflagged": round(float(correct[kept].mean()), 4) if kept.any() else None,
        "accuracy_unflagged_ci95": list(stats.ratio_ci(correct * kept, kept.astype(float), gid)),
        "ece": stats.ece(conf, correct),
        "selective_accuracy": {f"{int(c * 100)} % covered": a for c, a in curve if c in (0.8, 0.9, 0.95)},
        "_curve": curve,
        "_reliability": stats.reliability(conf, correct),
    }


def other_metrics(s: EvalSet, preds: list[Any]) -> dict[str, Any]:
    flagged = np.array([q.uncertain for q in preds])
    groups = [it.group for it in s.items]
    by_type = {g: round(float(flagged[[x == g for x in groups]].mean()), 4) for g in sorted(set(groups))}
    return {"n": len(flagged), "flag_rate": round(float(flagged.mean()), 4), "flag_rate_by_type": by_type}


def legacy_subset(s: EvalSet, data: Path, preds: list[Any]) -> tuple[EvalSet, list[Any]]:
    """The part of a PBC validation set that 1.0.0 held out too: where the two models compare fairly."""
    legacy = {str(it.path) for it in pbc_val_items(data, fraction=LEGACY_PBC_VAL_FRACTION)}
    keep = [i for i, it in enumerate(s.items) if str(it.path) in legacy]
    sub = EvalSet(f"{s.name} (1.0.0's 15 %)", [s.items[i] for i in keep], s.transform, s.role)
    return sub, [preds[i] for i in keep]


def member(model_dir: Path, views: list[str]) -> Classifier:
    """A further ensemble member (``--member``): its own network, seen through the views evaluated."""
    clf = Classifier(model_dir, threads=1)
    clf.info = replace(clf.info, views=tuple(views))
    return clf


def timing(
    model_dir: Path, n: int = 300, members: tuple[Path, ...] = (), member_views: tuple[str, ...] = ()
) -> dict[str, float | str]:
    """CPU time per call, not wall time: the build machine is shared, and waiting for a core is not cost.

    The interpreter runs on one thread (the caller's), so process CPU time is its compute time.
    An ensemble's time is that of all its members, each on its views.
    """
    clf = Classifier(model_dir, threads=1)
    others = [member(d, list(member_views or clf.info.views)) for d in members]
    x = np.random.default_rng(0).random((96, 96, 3), dtype=np.float32)
    runs = []
    for _ in range(3):
        for _ in range(20):
            clf.predict(x)
            for o in others:
                o.raw(x)
        t0 = time.process_time()
        for _ in range(n):
            clf.predict(x)
            for o in others:
                o.raw(x)
        runs.append((time.process_time() - t0) / n * 1000)
    field = Image.new("RGB", (640, 480), (230, 200, 210))
    t0 = time.process_time()
    for _ in range(50):
        cell_tensor(field)
    return {
        "inference_ms_1_thread": round(float(np.median(runs)), 3),
        "views": len(clf.info.views),
        **({"members": 1 + len(others)} if others else {}),
        "cell_tensor_ms_640x480": round((time.process_time() - t0) / 50 * 1000, 3),
        "clock": "process CPU time, median of 3 rounds",
    }


def leakage_report(data: Path, cache_dir: Path) -> dict[str, dict[str, Any]]:
    """Near-duplicates between test and train images; cached by the file lists (it is model-free)."""
    train = [it.path for it in kaggle_items(data, "TRAIN")]
    ptr, pva = split_pbc(data)
    key = hashlib.sha1(str(NEAR_DUPLICATE_BITS).encode())
    for it in [*kaggle_items(data, "TRAIN"), *kaggle_items(data, "TEST"), *ptr, *pva]:
        key.update(str(it.path).encode())
    path = cache_dir / f"leakage-{key.hexdigest()[:16]}.json"
    if path.is_file():
        cached: dict[str, dict[str, Any]] = json.loads(path.read_text())
        return cached
    report = {
        "Kaggle TEST vs TRAIN": leakage.check([it.path for it in kaggle_items(data, "TEST")], train),
        "Kaggle TEST_SIMPLE vs TRAIN": leakage.check(
            [it.path for it in kaggle_items(data, "TEST_SIMPLE")], train
        ),
        "PBC val vs PBC train": leakage.check([it.path for it in pva], [it.path for it in ptr]),
    }
    cache_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report))
    return report


SUMMARY_KEYS = (
    "n",
    "accuracy",
    "accuracy_ci95",
    "recall",
    "recall_ci95",
    "flag_rate",
    "accuracy_unflagged",
    "accuracy_unflagged_ci95",
    "unfamiliar_rate",
    "ece",
)


def predictions(clf: Classifier, raw: np.ndarray) -> list[Any]:
    """Rows of raw_outputs (softmax, then OOD score) to the runtime's predictions."""
    return [clf.interpret(r[:-1], None if np.isnan(r[-1]) else round(float(r[-1]), 4)) for r in raw]


def print_table(metrics: dict[str, dict[str, Any]]) -> None:
    print(
        f"{'dataset':52s} {'n':>5s} {'acc':>6s} {'CI95':>13s} {'flag':>6s} {'sel':>6s} {'ood':>6s}  recalls"
    )
    for name, m in metrics.items():
        if "accuracy" in m:
            ci = "{:.3f}-{:.3f}".format(*m["accuracy_ci95"])
            rec = " ".join(f"{v:.3f}" for v in m["recall"].values())
            sel = m["accuracy_unflagged"] if m["accuracy_unflagged"] is not None else float("nan")
            print(
                f"{name:52s} {m['n']:5d} {m['accuracy']:6.3f} {ci:>13s} {m['flag_rate']:6.3f} "
                f"{sel:6.3f} {m.get('unfamiliar_rate', 0.0):6.3f}  {rec}"
            )
        else:
            print(f"{name:52s} {m['n']:5d} flagged {m['flag_rate']:.3f} {m['flag_rate_by_type']}")


def shift_suite(metrics: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Accuracy under each shift and its drop, in points, from the same cells unshifted."""
    base = metrics.get("shift suite: none")
    if base is None:
        return {}
    out: dict[str, dict[str, float]] = {
        "none": {"accuracy": base["accuracy"], "flag_rate": base["flag_rate"]}
    }
    for name, m in metrics.items():
        if name.startswith("shift suite: ") and name != "shift suite: none":
            out[name.removeprefix("shift suite: ")] = {
                "accuracy": m["accuracy"],
                "drop_points": round(100 * (base["accuracy"] - m["accuracy"]), 1),
                "flag_rate": m["flag_rate"],
                "accuracy_unflagged": m["accuracy_unflagged"],
            }
    return out


def lolo_metrics(model_dir: Path) -> dict[str, dict[str, Any]]:
    """A leave-one-lab-out model's figures on the lab it never saw (written by ``--lolo``)."""
    meta_path = model_dir / "metadata.json"
    if not meta_path.is_file():
        return {}
    meta = json.loads(meta_path.read_text())
    learnt = meta.get("training", {}).get("sources_option", model_dir.name)
    return {
        f"trained on {learnt} only: {name}": {k: m[k] for k in (*SUMMARY_KEYS, "flag_rate_by_type") if k in m}
        for name, m in meta.get("metrics", {}).items()
        if "unseen lab" in name
    }


def lolo_report(model_dir: Path, metrics: dict[str, dict[str, Any]], no_write: bool, t0: float) -> int:
    """A leave-one-lab-out model: its figures go into its own metadata, for the shipped card to show."""
    print(f"evaluated in {time.monotonic() - t0:.0f}s with {model_dir / 'model.tflite'}\n")
    print_table(metrics)
    if not no_write:
        meta_path = model_dir / "metadata.json"
        meta = json.loads(meta_path.read_text())
        for m in metrics.values():
            m.pop("_curve", None)
            m.pop("_reliability", None)
        meta["metrics"] = metrics
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
        print(f"wrote {meta_path}")
    return 0


def summary(meta: dict[str, Any]) -> dict[str, Any]:
    """A model's headline figures per set, kept so that the next version can be shown beside them."""
    metrics = {
        name: {k: m[k] for k in (*SUMMARY_KEYS, "flag_rate_by_type") if k in m}
        for name, m in meta["metrics"].items()
    }
    return {"version": meta["version"], "metrics": metrics, "speed": meta.get("speed", {})}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("BLOODCELL_DATASETS", "../shared/datasets"))
    )
    parser.add_argument("--model", type=Path, default=REPO / "functions" / "predict" / "model")
    parser.add_argument("--cache", type=Path, default=REPO / "training" / "cache")
    parser.add_argument("--views", default=DEFAULT_VIEWS, help="test-time views, comma-separated")
    parser.add_argument("--keep-rule", action="store_true", help="evaluate the shipped rule; do not refit it")
    parser.add_argument("--no-write", action="store_true", help="print only; leave the model folder alone")
    parser.add_argument(
        "--baseline",
        type=Path,
        default=REPO / "training" / "baselines" / "1.0.0.json",
        help="the previous version's figures (from --write-baseline), shown beside these",
    )
    parser.add_argument("--write-baseline", type=Path, help="also save this model's figures as a baseline")
    parser.add_argument(
        "--member",
        type=Path,
        action="append",
        default=[],
        help="a further model folder whose softmax is averaged in (an ensemble tried, evaluation only)",
    )
    parser.add_argument("--member-views", help="the members' test-time views (default: --views)")
    parser.add_argument(
        "--lolo",
        choices=("kaggle", "pbc"),
        help="the model learnt this lab only (train --sources): fit on its validation, test on the other lab",
    )
    parser.add_argument(
        "--lolo-dir",
        type=Path,
        default=REPO / "training" / "lolo",
        help="leave-one-lab-out models (kaggle-only/, pbc-only/) whose figures the card shows",
    )
    args = parser.parse_args()
    t0 = time.monotonic()
    sets = eval_sets(args.data, args.lolo)
    meta_path = args.model / "metadata.json"
    if not args.keep_rule and not args.no_write:
        meta = json.loads(meta_path.read_text())
        meta.setdefault("uncertainty", {})["views"] = args.views.split(",")
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    clf = Classifier(args.model, threads=1)
    raw = {s.name: raw_outputs(clf, s, args.model, args.cache) for s in sets}
    member_views = (args.member_views or args.views).split(",")
    for d in args.member:
        other = member(d, member_views)
        for s in sets:
            raw[s.name] = raw[s.name] + raw_outputs(other, s, d, args.cache)
    if args.member:
        raw = {k: v / (1 + len(args.member)) for k, v in raw.items()}
    if not args.keep_rule and not args.no_write:
        calibrate(args.model, raw, sets, args.views.split(","))
        clf = Classifier(args.model, threads=1)
    metrics: dict[str, dict[str, Any]] = {}
    for s in sets:
        preds = predictions(clf, raw[s.name])
        subsets = [(s, preds)]
        if s.name in ("PBC val", "pbc/other val"):
            subsets.append(legacy_subset(s, args.data, preds))
        for sub, sub_preds in subsets:
            is_wbc = sub.items[0].label < OTHER_INDEX
            metrics[sub.name] = wbc_metrics(sub, sub_preds) if is_wbc else other_metrics(sub, sub_preds)
    if not args.no_write and clf.embedding_size:
        print(f"wrote {panel.build(args.data, args.model)} (the reference panel for a lab's calibration)")
    if args.lolo:
        return lolo_report(args.model, metrics, args.no_write, t0)
    suite = shift_suite(metrics)
    lolo = {name: m for d in sorted(args.lolo_dir.glob("*-only")) for name, m in lolo_metrics(d).items()}
    speed = timing(args.model, members=tuple(args.member), member_views=tuple(member_views))
    leaks = leakage_report(args.data, args.cache)
    print(f"evaluated in {time.monotonic() - t0:.0f}s with {args.model / 'model.tflite'}\n")
    print(
        f"{'dataset':40s} {'n':>5s} {'acc':>6s} {'CI95':>13s} {'flag':>6s} {'sel':>6s} {'ECE':>6s}  recalls"
    )
    print_table(metrics)
    print("\nshift suite (accuracy, drop from none):", json.dumps(suite))
    print(
        "leave one lab out:",
        json.dumps({k: {x: v[x] for x in SUMMARY_KEYS if x in v} for k, v in lolo.items()}),
    )
    print(
        f"\nspeed {speed}; leakage near-duplicates "
        + str({k: v["near_duplicates"] for k, v in leaks.items()})
    )
    if not args.no_write:
        meta = json.loads(meta_path.read_text())
        curves = {k: m.pop("_curve") for k, m in metrics.items() if "_curve" in m}
        reliab = {k: m.pop("_reliability") for k, m in metrics.items() if "_reliability" in m}
        meta.update(metrics=metrics, speed=speed, leakage=leaks, shift_suite=suite, leave_one_lab_out=lolo)
        if args.member:
            meta["ensemble_members"] = {"folders": [str(d) for d in args.member], "views": member_views}
        if args.baseline.is_file() and json.loads(args.baseline.read_text())["version"] != meta["version"]:
            meta["baseline"] = json.loads(args.baseline.read_text())
        if args.write_baseline:
            args.write_baseline.parent.mkdir(parents=True, exist_ok=True)
            args.write_baseline.write_text(json.dumps(summary(meta), indent=2) + "\n")
        meta["file_bytes"] = (args.model / "model.tflite").stat().st_size
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
        draw_confusion(
            metrics,
            ["Kaggle TEST", "PBC val", "PBC val resized to 360x363"],
            args.model / "confusion_matrix.png",
        )
        figures.draw_calibration(reliab, curves, metrics, args.model / "calibration.png")
        figures.draw_errors(sets, {k: v[:, :-1] for k, v in raw.items()}, clf, args.model / "errors.png")
        write_card(meta, args.model / "MODEL_CARD.md")
        print(f"wrote {meta_path}, confusion_matrix.png, calibration.png, errors.png and MODEL_CARD.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
