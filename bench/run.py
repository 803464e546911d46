"""The benchmark suite: measures, prints a table, writes bench/results.json. Asserts nothing.

    python bench/run.py            # full run (~10 min on 2 cores)
    python bench/run.py --quick    # smoke run: every figure, tiny counts
    nox -s bench [-- --quick]

See docs/performance.md for what each figure means and the latest results.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import coldstart
import e2e
import inference
import numpy as np
import preprocess
import report
import reviewpage
import scale
import sizes
from common import OUT, REPO, machine, model_dir, model_info, real_images, size_images
from venvs import baseline_requirements, cached_venv, ensure_venv, venv_python

FULL = {
    "cold_repeats": 15,
    "inference_runs": 500,
    "preprocess_repeats": 40,
    "e2e_images": 500,
    "idle_repeats": 20,
    "bursts": 3,
    "review_images": 300,
    "scale": (100, 100_000, 100_000),  # small bucket, large folder bucket, large S3 bucket
}
QUICK = {
    "cold_repeats": 2,
    "inference_runs": 200,
    "preprocess_repeats": 3,
    "e2e_images": 12,
    "idle_repeats": 3,
    "bursts": 1,
    "review_images": 20,
    "scale": (20, 500, 200),
}


def tf_python(explicit: str | None, quick: bool) -> str | None:
    """The TensorFlow baseline's python: given, cached, or (full run) made from training/requirements.txt."""
    if explicit:
        return explicit
    if os.environ.get("BENCH_TF_PYTHON"):
        return os.environ["BENCH_TF_PYTHON"]
    requirements, _ = baseline_requirements()
    if quick:  # never installs TensorFlow; uses the baseline venv if a full run made it
        cached = cached_venv("tf-baseline", requirements)
        return str(venv_python(cached)) if cached else None
    return str(venv_python(ensure_venv("tf-baseline", requirements)))


def _merged(previous: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """`--only` refreshes its steps inside an existing full results file and keeps the others.

    Each step keeps the time and load it was measured at (``measured``), so a file
    assembled step by step says which figure came from which run.
    """
    if previous.get("mode") != "full":
        return new
    merged = dict(previous)
    merged["figures"] = {**previous.get("figures", {}), **new["figures"]}
    whole_run = {
        "generated": previous.get("generated"),
        "load_average_at_start": previous.get("machine", {}).get("load_average_at_start"),
    }
    old_measured = previous.get("measured") or dict.fromkeys(previous.get("figures", {}), whole_run)
    merged["measured"] = {**old_measured, **new["measured"]}
    for key in ("generated", "machine", "model", "config"):
        merged[key] = new[key]
    merged["command"] = "python bench/run.py (steps refreshed with --only: see measured)"
    merged["duration_s"] = round(previous.get("duration_s", 0) + new["duration_s"], 1)
    return merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: every figure, tiny counts")
    parser.add_argument("--out", default=str(REPO / "bench" / "results.json"), help="results JSON path")
    parser.add_argument("--model-dir", help="model folder (default: MODEL_DIR, else functions/predict/model)")
    parser.add_argument(
        "--tf-python",
        help="python of a TensorFlow env for the baseline (default: made from "
        "training/requirements.txt under bench/out/venvs; env BENCH_TF_PYTHON)",
    )
    parser.add_argument("--images", type=int, help="images in the end-to-end burst (default 500)")
    parser.add_argument(
        "--only", help="comma list of: coldstart,inference,preprocess,e2e,sizes,scale,reviewpage"
    )
    args = parser.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    if args.images:
        cfg["e2e_images"] = args.images
    only = (
        set(args.only.split(","))
        if args.only
        else {"coldstart", "inference", "preprocess", "e2e", "sizes", "scale", "reviewpage"}
    )
    OUT.mkdir(parents=True, exist_ok=True)

    from bloodcell.imaging import ImageLimits
    from bloodcell.pipeline import make_tensor

    started = time.perf_counter()
    mdir = model_dir(args.model_dir)
    tf_py = tf_python(args.tf_python, args.quick) if {"coldstart", "sizes"} & only else None
    images = real_images(cfg["e2e_images"])
    tensor = make_tensor(images[0].read_bytes(), ImageLimits())
    work = Path(tempfile.mkdtemp(prefix="run-", dir=OUT))  # this run's scratch: buckets, tensor, logs
    tensor_path = work / "tensor.npy"
    np.save(tensor_path, tensor)

    figures: dict[str, object] = {}
    measured: dict[str, object] = {}  # when and under what load each step ran
    steps = [
        ("inference", lambda: inference.run(mdir, tensor, cfg["inference_runs"])),
        (
            "preprocess",
            lambda: preprocess.run(size_images(3 if args.quick else 5), cfg["preprocess_repeats"]),
        ),
        ("coldstart", lambda: coldstart.run(mdir, tensor_path, cfg["cold_repeats"], tf_py)),
        ("e2e", lambda: e2e.run(mdir, images, cfg["idle_repeats"], cfg["bursts"], work)),
        ("sizes", lambda: sizes.run(args.quick, tf_py)),
        ("reviewpage", lambda: reviewpage.run(mdir, real_images(cfg["review_images"]), work)),
        ("scale", lambda: scale.run(*cfg["scale"], work)),  # type: ignore[misc]
    ]
    for name, step in steps:
        if name not in only:
            continue
        t = time.perf_counter()
        print(f"bench: {name}...", file=sys.stderr, flush=True)
        measured[name] = {
            "generated": datetime.now(UTC).isoformat(timespec="seconds"),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        }
        figures[name] = step()
        print(f"bench: {name} done in {time.perf_counter() - t:.0f}s", file=sys.stderr, flush=True)

    tf_version = None
    if tf_py:
        try:
            from common import run_json

            tf_version = run_json(
                [
                    tf_py,
                    "-c",
                    "import json, importlib.metadata as m; print(json.dumps(m.version('tensorflow-cpu')))",
                ]
            )
        except Exception:
            tf_version = None
    results = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "command": "python bench/run.py" + (" --quick" if args.quick else ""),
        "machine": machine() | {"tensorflow_baseline": tf_version},
        "model": model_info(mdir),
        "config": cfg,
        "figures": figures,
        "measured": measured,
        "duration_s": round(time.perf_counter() - started, 1),
    }
    out = Path(args.out)
    if args.only and out.is_file() and not args.quick:
        results = _merged(json.loads(out.read_text()), results)
    results["targets"] = report.judge(results["figures"])  # type: ignore[arg-type]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(report.table(results))
    shutil.rmtree(work, ignore_errors=True)  # kept when a step failed, for its serve.log
    print(f"\nbench: wrote {out} in {results['duration_s']}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
