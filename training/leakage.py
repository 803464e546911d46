"""Perceptual-hash leakage check: is any test image a near-copy of a training image?

A 256-bit difference hash (dHash: is each pixel of a 17x16 grey thumbnail brighter than its
right-hand neighbour) survives JPEG re-encoding, small shifts and colour changes, which is
what a leaked augmented copy looks like. Kaggle's augmentations also flip, so each test
image is hashed in its 4 flips and the smallest Hamming distance to any training hash
counts. Pillow's JPEG draft mode decodes at 1/8 scale, so 10,000 images hash in seconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

HASH_W, HASH_H = 17, 16  # 256 bits: at 64 bits, unrelated centred cells came within 4-6 bits
HASH_BYTES = (HASH_W - 1) * HASH_H // 8
NEAR_DUPLICATE_BITS = 24
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _grey(path: Path) -> Image.Image:
    with Image.open(path) as im:
        im.draft("L", (HASH_W * 4, HASH_H * 4))
        return im.convert("L").resize((HASH_W, HASH_H), Image.Resampling.BOX)


def dhash_bits(grey: np.ndarray) -> np.ndarray:
    """(HASH_BYTES) dHash of a (HASH_H, HASH_W) grey array."""
    bits = grey[:, 1:] > grey[:, :-1]
    return np.packbits(bits.ravel())


def hashes(paths: Iterable[Path], flips: bool = False) -> np.ndarray:
    """(N, HASH_BYTES) uint8 hashes, or (N, 4, HASH_BYTES) with each image's four flips when ``flips``."""
    out = []
    for p in paths:
        g = np.asarray(_grey(p), dtype=np.int16)
        if flips:
            views = (g, g[:, ::-1], g[::-1, :], g[::-1, ::-1])
            out.append(np.stack([dhash_bits(v) for v in views]))
        else:
            out.append(dhash_bits(g))
    return np.array(out, dtype=np.uint8)


def nearest(test: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Smallest Hamming distance from each test hash (any of its flips) to any training hash."""
    t = test.reshape(len(test), -1, HASH_BYTES)
    best = np.full(len(test), 8 * HASH_BYTES, dtype=np.int64)
    for k in range(t.shape[1]):
        for start in range(0, len(test), 256):
            x = t[start : start + 256, k][:, None, :] ^ train[None, :, :]
            d = _POPCOUNT[x].sum(-1, dtype=np.int64).min(1)
            best[start : start + 256] = np.minimum(best[start : start + 256], d)
    return best


def check(test_paths: list[Path], train_paths: list[Path]) -> dict[str, Any]:
    """How many test images have a training image within ``NEAR_DUPLICATE_BITS``; distance summary."""
    d = nearest(hashes(test_paths, flips=True), hashes(train_paths))
    near = [str(p.name) for p, x in zip(test_paths, d, strict=True) if x <= NEAR_DUPLICATE_BITS]
    return {
        "test_images": len(test_paths),
        "train_images": len(train_paths),
        "threshold_bits": NEAR_DUPLICATE_BITS,
        "near_duplicates": len(near),
        "examples": near[:5],
        "min_distance": int(d.min()) if len(d) else None,
        "median_distance": float(np.median(d)) if len(d) else None,
    }
