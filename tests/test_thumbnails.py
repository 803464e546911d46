"""Thumbnails: made once per upload version, cached by the browser, and bounded in memory."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from PIL import Image

from tests.support.stack import webapp_process

BUDGET_MB = 400
COPIES = 10
REQUESTS = 20


def _vm(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} for {pid}")


@pytest.fixture
def webapp(tmp_path: Path, model_dir: Path) -> Iterator[tuple[str, int, Path]]:
    uploads = tmp_path / "data" / "uploads"
    uploads.mkdir(parents=True)
    with webapp_process(tmp_path, model_dir, "127.0.0.1") as (base, process):
        yield base, process.pid, uploads


def test_twenty_concurrent_thumbnails_of_the_worst_image_stay_under_400_mb(
    webapp: tuple[str, int, Path],
) -> None:
    base, pid, uploads = webapp
    # the costliest image the decoder accepts: 12 MP WebP with alpha (its decoder holds four copies)
    Image.new("RGBA", (4000, 3000), (200, 120, 180, 128)).save(uploads / "worst-0.webp", method=0)
    for i in range(1, COPIES):
        shutil.copy(uploads / "worst-0.webp", uploads / f"worst-{i}.webp")
    names = [f"worst-{i % COPIES}.webp" for i in range(REQUESTS)]

    with ThreadPoolExecutor(REQUESTS) as pool:
        responses = list(pool.map(lambda n: requests.get(f"{base}/thumb/{n}", timeout=120), names))

    assert {r.status_code for r in responses} == {200}
    assert {r.headers["content-type"] for r in responses} == {"image/jpeg"}
    assert max(Image.open(io.BytesIO(r.content)).size[0] for r in responses) <= 320
    assert _vm(pid, "VmHWM") < BUDGET_MB


def test_a_thumbnail_is_revalidated_by_its_upload_version(webapp: tuple[str, int, Path]) -> None:
    base, _, uploads = webapp
    Image.new("RGB", (640, 480), (200, 120, 180)).save(uploads / "cell.png")

    first = requests.get(f"{base}/thumb/cell.png", timeout=30)
    again = requests.get(
        f"{base}/thumb/cell.png", headers={"If-None-Match": first.headers["etag"]}, timeout=30
    )
    Image.new("RGB", (640, 480), (20, 20, 180)).save(uploads / "cell.png")  # a new version
    changed = requests.get(
        f"{base}/thumb/cell.png", headers={"If-None-Match": first.headers["etag"]}, timeout=30
    )

    assert first.status_code == 200 and "max-age" in first.headers["cache-control"]
    assert again.status_code == 304
    assert changed.status_code == 200 and changed.headers["etag"] != first.headers["etag"]


def test_thumbnails_come_only_from_the_upload_bucket(webapp: tuple[str, int, Path]) -> None:
    base, _, uploads = webapp
    results = uploads.parent / "results"
    results.mkdir()
    Image.new("RGB", (640, 480)).save(results / "secret.png")

    outside = requests.get(f"{base}/thumb/../results/secret.png", timeout=30)

    assert outside.headers["content-type"].startswith("image/svg+xml") or outside.status_code == 404
