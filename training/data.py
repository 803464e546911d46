"""Decode, localise and crop every image once, into uint8 arrays cached under training/cache/.

The crops come from ``bloodcell.cellcrop.cell_crop`` (the runtime transform) with a
margin, so training can cut scale and shift augmentations from them while the central
``CONTRACT.width`` pixels are what ``cell_tensor`` would give. The cache key covers
the file list and the source of the transform, so editing cellcrop.py rebuilds it.
"""

from __future__ import annotations

import hashlib
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "training"))

from splits import Item  # noqa: E402

from bloodcell import cellcrop  # noqa: E402
from bloodcell.contract import CONTRACT  # noqa: E402
from bloodcell.imaging import decode_image  # noqa: E402

CACHE_SIZE = 128  # cached crop side; CONTRACT.width of it is the nominal crop
MARGIN = CACHE_SIZE / CONTRACT.width


def _crop(path: Path) -> np.ndarray:
    return cellcrop.cell_crop(decode_image(path.read_bytes()), CACHE_SIZE, MARGIN)


def _key(items: list[Item]) -> str:
    h = hashlib.sha1(Path(cellcrop.__file__).read_bytes())
    h.update(f"{CACHE_SIZE}".encode())
    for it in items:
        h.update(f"{it.path.name}|{it.label}|{it.source}\n".encode())
    return h.hexdigest()[:16]


def load_crops(items: list[Item], cache_dir: Path, name: str, workers: int = 2) -> np.ndarray:
    """(N, CACHE_SIZE, CACHE_SIZE, 3) uint8 crops for ``items``, from cache when possible."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"{name}-{_key(items)}.npy"
    if path.is_file():
        cached: np.ndarray = np.load(path)
        return cached
    start = time.monotonic()
    out = np.empty((len(items), CACHE_SIZE, CACHE_SIZE, 3), np.uint8)
    with ProcessPoolExecutor(workers) as pool:
        for i, crop in enumerate(pool.map(_crop, [it.path for it in items], chunksize=64)):
            out[i] = crop
    print(f"cached {len(items)} {name} crops in {time.monotonic() - start:.0f}s -> {path.name}", flush=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, out)
    tmp.rename(path)
    return out


def centre(crops: np.ndarray) -> np.ndarray:
    """The nominal CONTRACT-sized centre of cached crops, as model input (float32, 0..1)."""
    o = (CACHE_SIZE - CONTRACT.width) // 2
    return crops[:, o : o + CONTRACT.height, o : o + CONTRACT.width].astype(np.float32) * np.float32(
        CONTRACT.scale
    )
