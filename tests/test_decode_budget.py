"""Memory bounds of decoding, measured on real files in a fresh process.

Each crafted upload goes through the real preprocess step (folder bucket, real
Pillow decode) in a subprocess of its own, which reports its outcome and its peak
resident memory (``VmHWM`` in /proc, no cgroup needed). Preprocess runs in a 512 Mi
container, so every input must end classified or rejected with a reason under
300 MB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from tests.test_imaging import _png_header_only

BUDGET_MB = 300

_PROBE = r"""
import json, sys
from pathlib import Path
from bloodcell.events import ObjectRef
from bloodcell.pipeline import Pipeline
from bloodcell.settings import Settings
from bloodcell.storage import LocalStorage

data_dir, name = Path(sys.argv[1]), sys.argv[2]
settings = Settings.from_env({"BLOODCELL_STORAGE": "local", "BLOODCELL_DATA_DIR": str(data_dir)})
outcome = Pipeline(settings, LocalStorage(data_dir)).preprocess(ObjectRef(settings.upload_bucket, name))
# VmHWM belongs to this process's own address space; ru_maxrss would carry the
# parent's peak across fork+exec
status = Path("/proc/self/status").read_text()
peak_mb = int(next(l for l in status.splitlines() if l.startswith("VmHWM:")).split()[1]) / 1024
print(json.dumps({"status": outcome.status, "detail": outcome.detail, "peak_mb": peak_mb}))
"""


def _save(image: Image.Image, path: Path, fmt: str, **options: object) -> None:
    image.save(path, fmt, **options)
    image.close()


def _gif(size: int, transparent: bool) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        image = Image.new("P", (size, size), 3)
        image.putpalette([(i * 37) % 256 for i in range(768)])
        extra = {"transparency": 0} if transparent else {}
        _save(image, path, "GIF", **extra)

    return make


def _png(size: tuple[int, int], mode: str) -> Callable[[Path], None]:
    color = (200, 120, 180, 128) if mode == "RGBA" else (200, 120, 180)
    return lambda path: _save(Image.new(mode, size, color), path, "PNG", compress_level=1)


def _webp(size: tuple[int, int], mode: str = "RGB") -> Callable[[Path], None]:
    color = (200, 120, 180, 128) if mode == "RGBA" else (200, 120, 180)
    return lambda path: _save(Image.new(mode, size, color), path, "WEBP", method=0)


def _gray16(size: tuple[int, int]) -> Callable[[Path], None]:
    return lambda path: _save(Image.new("I;16", size, 3000), path, "PNG", compress_level=1)


def _jpeg(size: tuple[int, int]) -> Callable[[Path], None]:
    return lambda path: _save(Image.new("RGB", size, (200, 120, 180)), path, "JPEG", quality=80)


def _header(path: Path) -> None:
    path.write_bytes(_png_header_only(30000, 30000))


def _sparse(path: Path) -> None:
    """600 MB that take no disk: a PNG header, then a hole."""
    with path.open("wb") as handle:
        handle.write(_png_header_only(4000, 3000))
        handle.truncate(600 * 1000 * 1000)


CASES: list[tuple[str, Callable[[Path], None], str, str]] = [
    # (name, maker, expected status, words in the reason)
    ("png7000.png", _png((7000, 7000), "RGB"), "rejected", "megapixels"),
    ("gif7000.gif", _gif(7000, transparent=True), "rejected", "megapixels"),
    ("webp7000.webp", _webp((7000, 7000)), "rejected", "megapixels"),
    ("webp5000.webp", _webp((5000, 5000), "RGBA"), "rejected", "over the budget"),
    ("bomb30000.png", _header, "rejected", "megapixels"),
    ("sparse600mb.png", _sparse, "rejected", "over the limit"),
    # the largest images accepted: decoded for real, at the top of the budget
    ("rgba5000.png", _png((5000, 5000), "RGBA"), "preprocessed", ""),
    ("gif5000.gif", _gif(5000, transparent=True), "preprocessed", ""),
    ("webp4000x3000.webp", _webp((4000, 3000), "RGBA"), "preprocessed", ""),
    ("rgb5000.png", _png((5000, 5000), "RGB"), "preprocessed", ""),
    ("gray16.png", _gray16((5000, 5000)), "preprocessed", ""),
    ("camera4000x3000.png", _png((4000, 3000), "RGB"), "preprocessed", ""),
    ("camera4000x3000.jpg", _jpeg((4000, 3000)), "preprocessed", ""),
]


@pytest.mark.parametrize(("name", "make", "status", "words"), CASES, ids=[c[0] for c in CASES])
def test_every_crafted_input_is_answered_within_the_memory_budget(
    tmp_path: Path, name: str, make: Callable[[Path], None], status: str, words: str
) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    make(uploads / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAX_", "BLOODCELL_"))}

    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(tmp_path), name],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )

    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["status"] == status, report
    assert words in report["detail"], report
    assert report["peak_mb"] < BUDGET_MB, report
    if status == "rejected":  # answered once, visibly: the result says why
        result = json.loads((tmp_path / "results" / f"{name}.json").read_text())
        assert result["status"] == "rejected"
        assert words in result["reason"]


_CLASSIFY_PROBE = r"""
import sys
from pathlib import Path
from bloodcell.cli import main

code = main(["classify", "--json", *sys.argv[1:]])
status = Path("/proc/self/status").read_text()
peak_mb = int(next(l for l in status.splitlines() if l.startswith("VmHWM:")).split()[1]) / 1024
print(f"peak_mb={peak_mb:.0f} code={code}")
"""


def test_classify_refuses_a_huge_file_without_reading_it(tmp_path: Path) -> None:
    sparse, gif = tmp_path / "sparse600mb.png", tmp_path / "gif7000.gif"
    _sparse(sparse)
    _gif(7000, transparent=True)(gif)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAX_", "BLOODCELL_"))}

    proc = subprocess.run(
        [sys.executable, "-c", _CLASSIFY_PROBE, str(sparse), str(gif)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )

    assert proc.returncode == 0, proc.stderr[-2000:]
    *records, probe = proc.stdout.strip().splitlines()
    reasons = [json.loads(line)["reason"] for line in records]
    assert "over the limit of 20 MiB" in reasons[0] and "megapixels" in reasons[1]
    assert int(probe.split()[0].removeprefix("peak_mb=")) < BUDGET_MB
