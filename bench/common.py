"""Shared helpers: statistics, paths, the model under test and the benchmark images."""

from __future__ import annotations

import hashlib
import json
import math
import os
import statistics
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"


def summary(samples: Sequence[float], digits: int = 3) -> dict[str, float | int]:
    """Median, p95, min, max and count of one figure's samples."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    # nearest-rank p95: with 20 samples it is the 19th, with 200 the 190th
    rank = max(1, math.ceil(0.95 * len(ordered)))
    return {
        "median": round(statistics.median(ordered), digits),
        "p95": round(ordered[rank - 1], digits),
        "min": round(ordered[0], digits),
        "max": round(ordered[-1], digits),
        "n": len(ordered),
    }


def ratio_summary(a: Sequence[float], b: Sequence[float], digits: int = 2) -> dict[str, float | int]:
    """b/a per interleaved pair (i-th run of A beside i-th run of B), summarised."""
    pairs = [y / x for x, y in zip(a, b, strict=True) if x > 0]
    out = summary(pairs, digits)
    out["of_medians"] = round(statistics.median(b) / statistics.median(a), digits)
    return out


def datasets_dir() -> Path:
    return Path(os.environ.get("BLOODCELL_DATASETS", REPO.parent / "shared" / "datasets")).resolve()


def model_dir(explicit: str | None = None) -> Path:
    """--model-dir, else MODEL_DIR, else the shipped model in functions/predict/model."""
    for candidate in (explicit, os.environ.get("MODEL_DIR"), str(REPO / "functions" / "predict" / "model")):
        if candidate and (Path(candidate) / "model.tflite").is_file():
            return Path(candidate).resolve()
    raise SystemExit("bench: no model found; train one into functions/predict/model or set MODEL_DIR")


def model_info(path: Path) -> dict[str, object]:
    data = (path / "model.tflite").read_bytes()
    try:
        meta = json.loads((path / "metadata.json").read_text())
    except (OSError, ValueError):
        meta = {}
    return {
        "dir": str(path),
        "shipped": path == (REPO / "functions" / "predict" / "model").resolve(),
        "name": meta.get("name"),
        "version": meta.get("version"),
        "tflite_bytes": len(data),
        "tflite_sha256": hashlib.sha256(data).hexdigest(),
    }


def spread(items: Sequence[Path], n: int) -> list[Path]:
    """n items spread evenly over a sorted list (so every class folder contributes)."""
    if n >= len(items):
        return list(items)
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def real_images(n: int) -> list[Path]:
    """n real 320x240 JPEG fields from the Kaggle TEST split, across the four classes."""
    root = datasets_dir() / "kaggle-blood-cells" / "TEST"
    files = sorted(root.glob("*/*.jpeg"))
    if not files:
        raise SystemExit(f"bench: no images under {root}; set BLOODCELL_DATASETS")
    picked = spread(files, n)
    while len(picked) < n:  # fewer files than asked: repeat them (names stay unique downstream)
        picked += files[: n - len(picked)]
    return picked


def _make(path: Path, build: callable) -> Path:  # type: ignore[valid-type]
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp" + path.suffix)
        build(tmp)
        tmp.replace(path)
    return path


def size_images(per_size: int) -> dict[str, list[Path]]:
    """The upload sizes people really send, made from real images and cached in bench/out/images."""
    from PIL import Image

    root = datasets_dir()
    kaggle = spread(sorted((root / "kaggle-blood-cells" / "TEST").glob("*/*.jpeg")), per_size)
    bccd = spread(sorted((root / "bccd" / "JPEGImages").glob("*.jpg")), per_size)
    pbc = spread(sorted((root / "pbc" / "wbc").glob("*/*.jpg")), per_size)
    cache = OUT / "images"

    def resized(src: Path, size: tuple[int, int], fmt: str, dest: Path) -> Path:
        def build(tmp: Path) -> None:
            with Image.open(src) as image:
                rgb = image.convert("RGB")
                if rgb.size != size:
                    rgb = rgb.resize(size, Image.Resampling.BICUBIC)
                if fmt == "JPEG":
                    rgb.save(tmp, "JPEG", quality=92)
                else:
                    rgb.save(tmp, "PNG")

        return _make(dest, build)

    return {
        "jpeg_320x240": kaggle,
        "jpeg_640x480": bccd,
        "jpeg_360x363": [resized(p, (360, 363), "JPEG", cache / "360x363" / f"{p.stem}.jpg") for p in pbc],
        "jpeg_4000x3000": [
            resized(p, (4000, 3000), "JPEG", cache / "4000x3000" / f"{p.stem}.jpg") for p in bccd
        ],
        "png_640x480": [resized(p, (640, 480), "PNG", cache / "png640x480" / f"{p.stem}.png") for p in bccd],
    }


def run_json(argv: Sequence[str], env: dict[str, str] | None = None, timeout: float = 600) -> dict:
    """Run a helper process that prints one JSON object on its last stdout line."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, env=env, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def versions(modules: Iterable[str]) -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {}
    for name in modules:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def machine() -> dict[str, object]:
    import platform

    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or None
    mem_kb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1) if mem_kb else None,
        "load_average_at_start": [round(x, 2) for x in load] if load else None,
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "libraries": versions(
            [
                "bloodcell",
                "ai-edge-litert",
                "numpy",
                "pillow",
                "functions-framework",
                "cloudevents",
                "gunicorn",
                "flask",
                "requests",
            ]
        ),
    }
