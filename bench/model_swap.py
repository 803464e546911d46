"""Model swaps under load through the real local stack (issue targets of docs/calibration.md).

``bloodcell serve --data-dir D --no-web`` runs as a person starts it, on the model the
bench is given. A calibration is made with ``bloodcell calibrate --labelled`` (forced
active), then rolled back to the shipped model, so the burst starts on the shipped model.
Then N images (default 500) are copied into ``D/uploads`` at once and, while they flow:

- after ``--activate-at`` results, the calibration is activated (``Registry.activate``,
  exactly what ``bloodcell model activate`` writes);
- after ``--rollback-at`` results, it is rolled back (``Registry.rollback``).

Measured:
- lost and duplicated results: the end state is checked with the fault tests' own checks
  (one result per upload, final, for the current generation; exactly one archive image and
  JSON per classified upload; nothing stray);
- every result names a version that was active while its event ran (none names the
  calibration before its activation; the events in flight at the rollback are counted);
- rollback latency: from the rollback's write to the first result classified after it that
  names the shipped model again (the target is at most 10 s), and the same on an idle stack
  (one image dropped right after the rollback), repeated ``--idle-repeats`` times.

    python bench/model_swap.py [--images 500] [--model DIR] [--out bench/out/model_swap.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bloodcell.calibration.registry import Registry

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from common import datasets_dir, machine, model_dir, real_images, summary  # noqa: E402
from e2e import Stack  # noqa: E402

CLASSES = ("EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL")


def _stamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def labelled_folder(dest: Path, per_class: int) -> Path:
    """A lab's verified cells: Kaggle TRAIN images, ``per_class`` of each type."""
    train = datasets_dir() / "kaggle-blood-cells" / "TRAIN"
    for label in CLASSES:
        (dest / label.lower()).mkdir(parents=True)
        for src in sorted((train / label).glob("*.jpeg"))[:per_class]:
            shutil.copyfile(src, dest / label.lower() / src.name)
    return dest


def calibrate(data: Path, model: Path, folder: Path) -> str:
    env = {**os.environ, "MODEL_DIR": str(model), "PYTHONPATH": str(ROOT / "src")}
    argv = [sys.executable, "-m", "bloodcell.cli", "calibrate", "--labelled", str(folder)]
    argv += ["--data-dir", str(data), "--promote", "--json"]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900, check=False)
    if out.returncode != 0:
        raise SystemExit(f"calibrate failed ({out.returncode}): {out.stderr[-2000:]}")
    return str(json.loads(out.stdout)["version"])


def _results(data: Path) -> dict[str, dict[str, Any]]:
    found = {}
    for path in (data / "results").rglob("*.json"):
        if ".tmp" in path.parts:
            continue
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being replaced: read on the next poll
        if document.get("status") in ("classified", "rejected") and "source" in document:
            found[document["source"]["name"]] = document
    return found


def _wait(data: Path, count: int, timeout: float) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _results(data)
        if len(found) >= count:
            return found
        time.sleep(0.02)
    raise SystemExit(f"only {len(_results(data))} of {count} results after {timeout} s")


def _calibration(result: dict[str, Any]) -> str | None:
    return result.get("model", {}).get("calibration")


def burst(
    stack: Stack, registry: Registry, version: str, images: list[Path], at: tuple[int, int]
) -> dict[str, Any]:
    names = [f"rafale été/{i:04d}-{p.name}" for i, p in enumerate(images)]
    staging = stack.data_dir.parent / "staging"
    staging.mkdir(exist_ok=True)
    for name, src in zip(names, images, strict=True):  # copied aside, then renamed in: whole files only
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, staging / name)
    (stack.uploads / "rafale été").mkdir(parents=True, exist_ok=True)
    started = time.time()
    for name in names:
        os.replace(staging / name, stack.uploads / name)
    _wait(stack.data_dir, at[0], 600)
    activated = registry.activate(version, "bench").changed_at
    _wait(stack.data_dir, at[1], 600)
    rolled_back = registry.rollback("bench").changed_at
    found = _wait(stack.data_dir, len(names), 900)
    finished = time.time()

    from tests.support.stack import check_end_state

    check_end_state(stack.data_dir, names)  # raises on any loss, duplicate or stray object
    named = {name: _calibration(found[name]) for name in names}
    after = sorted(
        _stamp(found[n]["timestamps"]["classified"])
        for n in names
        if named[n] is None and _stamp(found[n]["timestamps"]["classified"]) >= _stamp(rolled_back)
    )
    calibrated = sorted(_stamp(found[n]["timestamps"]["classified"]) for n in names if named[n] == version)
    return {
        "images": len(names),
        "results": len(found),
        "lost": len(set(names) - set(found)),
        "duplicated": 0,  # check_end_state passed: exactly one result and one archive copy per upload
        "by_version": {"shipped": sum(v is None for v in named.values()), version: len(calibrated)},
        # must be 0: a result names the calibration only if its event read the pointer after the activation
        "calibrated_before_the_activation": sum(t < _stamp(activated) for t in calibrated),
        # events in flight at the rollback finish on the version they started with
        "calibrated_in_flight_at_the_rollback": sum(t >= _stamp(rolled_back) for t in calibrated),
        "rollback_to_first_shipped_result_s": round(after[0] - _stamp(rolled_back), 3) if after else None,
        "seconds": round(finished - started, 1),
        "images_per_s": round(len(names) / (finished - started), 1),
    }


def idle_rollbacks(
    stack: Stack, registry: Registry, version: str, images: list[Path], repeats: int
) -> list[float]:
    latencies = []
    for i in range(repeats):
        registry.activate(version, "bench")
        changed = _stamp(registry.rollback("bench").changed_at)
        name = f"idle-{i:03d}-{images[i % len(images)].name}"
        shutil.copyfile(images[i % len(images)], stack.uploads / name)
        result = _wait_one(stack.data_dir, name, 60)
        assert _calibration(result) is None, result["model"]
        latencies.append(_stamp(result["timestamps"]["classified"]) - changed)
    return latencies


def _wait_one(data: Path, name: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _results(data).get(name)
        if found:
            return found
        time.sleep(0.01)
    raise SystemExit(f"no result for {name} after {timeout} s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    p.add_argument("--images", type=int, default=500)
    p.add_argument("--activate-at", type=int, default=100, help="results before the activation")
    p.add_argument("--rollback-at", type=int, default=300, help="results before the rollback")
    p.add_argument("--idle-repeats", type=int, default=5)
    p.add_argument("--per-class", type=int, default=20, help="verified cells per class to calibrate on")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "model_swap.json")
    args = p.parse_args()

    from bloodcell.calibration.registry import Registry
    from bloodcell.storage import LocalStorage

    model = model_dir(args.model)
    work = Path(tempfile.mkdtemp(prefix="bloodcell-swap-"))
    data = work / "data"
    data.mkdir()
    started = time.perf_counter()
    version = calibrate(data, model, labelled_folder(work / "verified", args.per_class))
    calibrate_s = time.perf_counter() - started
    registry = Registry(LocalStorage(data), "models")
    registry.rollback("bench")  # the burst starts on the shipped model
    images = real_images(args.images)
    stack = Stack(data, model, work / "serve.log")
    try:
        loaded = burst(stack, registry, version, images, (args.activate_at, args.rollback_at))
        idle = idle_rollbacks(stack, registry, version, images, args.idle_repeats)
    finally:
        stack.stop()
    report = {
        "machine": machine(),
        "calibration": {"version": version, "per_class": args.per_class, "seconds": round(calibrate_s, 1)},
        "burst": loaded,
        "idle_rollback_to_result_s": summary(idle),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.write(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
