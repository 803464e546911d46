"""3. Preprocess: decode and transform one upload, per input size people really send.

The timed step is exactly preprocess's ``make_tensor(bytes, ImageLimits())`` on bytes
already in memory (reading the file is not part of it). Sizes are timed in
round-robin, so every size sees the same machine load.
"""

from __future__ import annotations

import time
from pathlib import Path

from common import summary


def run(images: dict[str, list[Path]], repeats: int) -> dict[str, object]:
    from bloodcell.imaging import ImageLimits
    from bloodcell.pipeline import make_tensor

    limits = ImageLimits()
    data = {size: [p.read_bytes() for p in paths] for size, paths in images.items()}
    for blobs in data.values():  # warm-up
        make_tensor(blobs[0], limits)
    samples: dict[str, list[float]] = {size: [] for size in data}
    for i in range(repeats):
        for size, blobs in data.items():
            blob = blobs[i % len(blobs)]
            started = time.perf_counter()
            make_tensor(blob, limits)
            samples[size].append((time.perf_counter() - started) * 1000)
    return {
        size: {
            "ms": summary(samples[size]),
            "images": len(data[size]),
            "mean_kb": round(sum(map(len, data[size])) / len(data[size]) / 1024, 1),
        }
        for size in data
    }
