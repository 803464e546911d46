"""Train the 5-output white-blood-cell CNN on Kaggle TRAIN + PBC, export LiteRT, calibrate the flag.

    PYTHONPATH=src python -m training.train --data ../shared/datasets --out functions/predict/model

The default recipe (``--recipe shipped``) rebuilds the network of the shipped model; the
2.0.0 candidate stays runnable as ``--recipe candidate-2`` (see recipes.py).
Selection (best epoch) and the uncertainty thresholds use validation data carved from
the training sources only (see splits.py); Kaggle TEST is touched once, at the end, to
check that the .tflite agrees with Keras. Metrics are written by evaluate.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bloodcell import ood
from bloodcell.contract import CONTRACT
from training import data as cache
from training.archive import archive_items
from training.augment import Sampler, augment_fn
from training.calibrate import choose_thresholds
from training.recipes import DEFAULT_RECIPE, RECIPES
from training.splits import OTHER_INDEX, OUTPUTS, SPLIT_SEED, kaggle_items, split_kaggle_train, split_pbc

REPO = Path(__file__).resolve().parents[1]
HEAD_FILE = "head.npz"  # bloodcell.calibration reads it: softmax(embedding @ kernel + bias) is the output


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--data", type=Path, default=Path(os.environ.get("BLOODCELL_DATASETS", "../shared/datasets"))
    )
    p.add_argument("--out", type=Path, default=REPO / "functions" / "predict" / "model")
    p.add_argument("--cache", type=Path, default=REPO / "training" / "cache")
    p.add_argument("--recipe", choices=sorted(RECIPES), default=DEFAULT_RECIPE, help="see recipes.py")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--runs", type=Path, default=REPO / "training" / "runs", help="best weights, progress")
    p.add_argument(
        "--archive",
        type=Path,
        action="append",
        default=[],
        help="archive folder (<date>/<LABEL>/<generation>/<name>); only person-verified entries are used",
    )
    p.add_argument(
        "--export-only", action="store_true", help="export the best weights saved in --runs; no training"
    )
    p.add_argument("--epochs", type=int, help="default: the recipe's")
    p.add_argument("--steps", type=int, default=120, help="batches per epoch")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--version", help="default: the recipe's")
    p.add_argument(
        "--sources",
        choices=("all", "kaggle", "pbc"),
        default="all",
        help="train on one lab only (leave-one-lab-out: the other lab is the test); default both",
    )
    return p.parse_args()


def build_model(keras: Any, stain_standardise: bool = False) -> Any:
    """A depthwise-separable CNN: ~0.2 M parameters, ~30 M multiply-adds at 96x96.

    The shipped recipe rescales the input to [-1, 1]. The 2.0.0 candidate standardises each
    image per colour channel (zero mean, unit spread over the crop) before the first
    convolution instead: a stain or camera that shifts or scales a
    channel then feeds the network the same numbers, so BatchNorm's running statistics,
    learnt on two labs, are not met by a third lab's colours. GroupNorm, the usual
    cross-lab fix, measured 2x the inference time and 1.5x the training step here.
    """
    layers = keras.layers
    ops = keras.ops

    class StainStandardise(layers.Layer):  # type: ignore[misc,name-defined]
        def call(self, x: Any) -> Any:
            mean = ops.mean(x, axis=(1, 2), keepdims=True)
            var = ops.mean(ops.square(x - mean), axis=(1, 2), keepdims=True)
            return (x - mean) * ops.rsqrt(var + 1e-3)

    inputs = keras.Input(CONTRACT.shape, name="cell")
    if stain_standardise:
        x = StainStandardise(name="stain_standardise")(inputs)
    else:
        x = layers.Rescaling(2.0, offset=-1.0)(inputs)
    x = layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False)(x)
    x = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(x))
    for filters, stride in [(64, 1), (96, 2), (96, 1), (160, 2), (160, 1), (160, 1), (256, 2), (256, 1)]:
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(x))
        x = layers.Conv2D(filters, 1, use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(x))
    embedding = layers.GlobalAveragePooling2D(name="embedding")(x)
    x = layers.Dropout(0.25)(embedding)
    outputs = layers.Dense(len(OUTPUTS), activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="bloodcell_wbc")


def with_embedding(keras: Any, model: Any) -> Any:
    """The same network with its penultimate embedding as a second output (runtime and calibration)."""
    return keras.Model(model.input, [model.output, model.get_layer("embedding").output], name=model.name)


def per_source_scores(
    probs: np.ndarray, labels: np.ndarray, sources: list[str], worst_class: bool = False
) -> dict[str, float]:
    """Balanced accuracy per lab present in validation (one lab when leaving the other out)."""
    pred = probs.argmax(1)
    src = np.array(sources)
    out = {}
    parts = []
    for name in ("kaggle", "pbc"):
        m = src == name
        if not m.any():
            out[name] = out[f"{name}_worst"] = float("nan")
            continue
        recalls = [float((pred[m & (labels == c)] == c).mean()) for c in range(OTHER_INDEX)]
        out[name] = float(np.mean(recalls))  # balanced accuracy: Kaggle val is class-skewed
        out[f"{name}_worst"] = float(min(recalls))
        parts.append(name)
    other = src == "pbc-other"
    out["other"] = float((pred[other] == OTHER_INDEX).mean()) if other.any() else float("nan")
    terms = [out[p] for p in parts] + ([out["other"]] if other.any() else [])
    if worst_class:  # a model must not buy balanced accuracy with one class
        terms.append(min(out[f"{p}_worst"] for p in parts))
    out["score"] = float(np.mean(terms))
    return out


def main() -> int:
    args = parse_args()
    recipe = RECIPES[args.recipe]
    args.epochs = args.epochs or recipe.epochs
    args.version = args.version or recipe.version
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    keras.utils.set_random_seed(args.seed)
    t0 = time.monotonic()
    ktr, kva = split_kaggle_train(args.data, SPLIT_SEED)
    ptr, pva = split_pbc(args.data, SPLIT_SEED, recipe.pbc_val_fraction)
    if args.sources == "kaggle":  # no PBC cell, not even pbc/other: PBC is the unseen lab
        ptr, pva = [], []
    elif args.sources == "pbc":
        ktr, kva = [], []
    atr = archive_items(args.archive)
    train_items, val_items = ktr + ptr + atr, kva + pva
    x_train = cache.load_crops(train_items, args.cache, "train", args.threads)
    x_val = cache.centre(cache.load_crops(val_items, args.cache, "val", args.threads))
    y_train = np.array([it.label for it in train_items])
    y_val = np.array([it.label for it in val_items])
    val_sources = [it.source for it in val_items]
    print(
        f"data ready in {time.monotonic() - t0:.0f}s: train {len(train_items)}, val {len(val_items)}",
        flush=True,
    )

    sampler = Sampler(y_train, [it.source for it in train_items], args.seed)

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        while True:
            idx = sampler.batch(args.batch)
            yield x_train[idx], keras.utils.to_categorical(y_train[idx], len(OUTPUTS)).astype(np.float32)

    spec = (
        tf.TensorSpec([None, cache.CACHE_SIZE, cache.CACHE_SIZE, 3], tf.uint8),
        tf.TensorSpec([None, len(OUTPUTS)], tf.float32),
    )
    ds = tf.data.Dataset.from_generator(batches, output_signature=spec)
    ds = ds.map(augment_fn(tf, args.seed, recipe.blur_noise, recipe.lab_shift), num_parallel_calls=1)
    ds = ds.prefetch(4)

    model = build_model(keras, recipe.stain_standardise)
    total = args.epochs * args.steps
    schedule = keras.optimizers.schedules.CosineDecay(
        args.lr * 0.1, total - args.steps, alpha=0.01, warmup_target=args.lr, warmup_steps=args.steps
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=5e-4),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.05),
    )
    print(f"model: {model.count_params()} parameters", flush=True)

    best: dict[str, object] = {"score": -1.0}
    history: list[dict[str, float]] = []
    fit_start = time.monotonic()
    args.runs.mkdir(parents=True, exist_ok=True)
    best_weights, progress = args.runs / "best.weights.h5", args.runs / "progress.json"

    class Progress(keras.callbacks.Callback):  # type: ignore[misc]
        """Validation score, best-epoch weights and an ETA after every epoch."""

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.e0 = time.monotonic()

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            loss = float((logs or {}).get("loss", float("nan")))
            probs = self.model.predict(x_val, batch_size=256, verbose=0)
            sc = per_source_scores(probs, y_val, val_sources, recipe.worst_class_score)
            history.append(
                {"epoch": epoch + 1, "loss": round(loss, 4), **{k: round(v, 4) for k, v in sc.items()}}
            )
            if sc["score"] > float(best["score"]):  # type: ignore[arg-type]
                best.update(score=sc["score"], epoch=epoch + 1, weights=self.model.get_weights())
                self.model.save_weights(best_weights)  # a stopped run can still be exported
            progress.write_text(
                json.dumps({"best": {k: best[k] for k in ("score", "epoch")}, "history": history})
            )
            done = epoch + 1
            eta = (time.monotonic() - fit_start) / done * (args.epochs - done)
            print(
                f"epoch {done:2d}/{args.epochs} loss {loss:.3f} val kaggle {sc['kaggle']:.3f} "
                f"pbc {sc['pbc']:.3f} other {sc['other']:.3f} score {sc['score']:.3f} "
                f"({time.monotonic() - self.e0:.0f}s, ETA {eta / 60:.1f} min)",
                flush=True,
            )

    if args.export_only:
        saved = json.loads(progress.read_text())
        best.update(saved["best"])
        history[:] = saved["history"]
        model.load_weights(best_weights)
    else:
        model.fit(ds, steps_per_epoch=args.steps, epochs=args.epochs, verbose=0, callbacks=[Progress()])
        model.set_weights(best["weights"])
    print(f"best epoch {best['epoch']} (val score {best['score']:.4f})", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    exported = with_embedding(keras, model)
    tflite = tf.lite.TFLiteConverter.from_keras_model(exported).convert()
    (args.out / "model.tflite").write_bytes(tflite)
    interpreter = tf.lite.Interpreter(model_content=tflite, num_threads=1)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = next(o for o in interpreter.get_output_details() if int(o["shape"][-1]) == len(OUTPUTS))
    _, train_embeddings = exported.predict(cache.centre(x_train), batch_size=256, verbose=0)
    ood.fit(train_embeddings, y_train).save(args.out / ood.FILE)
    kernel, bias = model.get_layer("probabilities").get_weights()
    with (args.out / HEAD_FILE).open("wb") as fh:  # the output layer, for a lab's calibration to start from
        np.savez(fh, kernel=kernel.astype(np.float32), bias=bias.astype(np.float32))

    def run_tflite(x: np.ndarray) -> np.ndarray:
        res = []
        for row in x:
            interpreter.set_tensor(inp["index"], row[None])
            interpreter.invoke()
            res.append(interpreter.get_tensor(out["index"])[0].copy())
        return np.array(res)

    val_probs = run_tflite(x_val)
    test_items = kaggle_items(args.data, "TEST")
    x_test = cache.centre(cache.load_crops(test_items, args.cache, "test", args.threads))
    keras_test = model.predict(x_test, batch_size=256, verbose=0)
    lite_test = run_tflite(x_test)
    agreement = float((keras_test.argmax(1) == lite_test.argmax(1)).mean())
    max_diff = float(np.abs(keras_test - lite_test).max())
    print(f"tflite vs keras on Kaggle TEST: argmax agreement {agreement:.4f}, max |dp| {max_diff:.2e}")

    rule = choose_thresholds(val_probs, y_val, val_sources)
    print(f"uncertainty rule (validation): {rule}", flush=True)
    macs = sum(_layer_macs(layer) for layer in model.layers)
    meta = {
        "name": "bloodcell-wbc",
        "version": args.version,
        "outputs": list(OUTPUTS),
        "uncertainty": {k: rule[k] for k in ("min_top_probability", "max_other_probability")},
        "uncertainty_calibration": rule,
        "input": {
            "shape": list(CONTRACT.shape),
            "dtype": CONTRACT.dtype,
            "scale": CONTRACT.scale,
            "preprocessing": "bloodcell.cellcrop.cell_tensor (white-cell localisation + crop)",
        },
        "seed": args.seed,
        "split_seed": SPLIT_SEED,
        "training": {
            "sources_option": args.sources,
            "sources": {
                "kaggle-blood-cells/TRAIN (grouped by smear)": {"train": len(ktr), "val": len(kva)},
                "pbc/wbc": {
                    "train": sum(it.source == "pbc" for it in ptr),
                    "val": sum(it.source == "pbc" for it in pva),
                },
                "pbc/other (as OTHER)": {
                    "train": sum(it.source == "pbc-other" for it in ptr),
                    "val": sum(it.source == "pbc-other" for it in pva),
                },
                **({"archive (person-verified labels)": {"train": len(atr), "val": 0}} if atr else {}),
            },
            "epochs": args.epochs,
            "steps_per_epoch": args.steps,
            "batch": args.batch,
            "best_epoch": best["epoch"],
            "recipe": recipe.name,
            "augmentation": recipe.augmentation,
            "history": history,
            "minutes": round((time.monotonic() - t0) / 60, 1),
        },
        "embedding": {"output": "embedding", "size": int(train_embeddings.shape[1]), "ood": ood.FILE},
        "params": int(model.count_params()),
        "mflops": round(2 * macs / 1e6, 1),
        "file_bytes": len(tflite),
        "tflite_keras_agreement_kaggle_test": agreement,
    }
    (args.out / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
    (args.out / "labels.txt").write_text("\n".join(OUTPUTS) + "\n")
    (args.out / "contract.json").write_text(json.dumps(CONTRACT.to_json(), indent=2) + "\n")
    print(
        f"wrote {args.out} ({len(tflite) / 1e6:.2f} MB, {2 * macs / 1e6:.0f} MFLOPs) "
        f"in {(time.monotonic() - t0) / 60:.1f} min total, {time.process_time() / 60:.1f} min CPU (user+sys)",
        flush=True,
    )
    return 0


def _layer_macs(layer: Any) -> int:
    """Multiply-adds of the convolution and dense layers (the rest is negligible)."""
    name = type(layer).__name__
    if name not in ("Conv2D", "DepthwiseConv2D", "Dense"):
        return 0
    out_shape = layer.output.shape
    spatial = int(np.prod(out_shape[1:-1])) if len(out_shape) > 2 else 1
    kernel = layer.get_weights()[0]
    per_position = int(np.prod(kernel.shape)) if name != "DepthwiseConv2D" else int(np.prod(kernel.shape[:3]))
    return spatial * per_position


if __name__ == "__main__":
    sys.exit(main())
