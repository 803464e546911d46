"""The whole local stack as a person runs it: `bloodcell serve`, files copied into uploads/."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.common import REPO

# A liveness bound, not a speed claim: speed is measured by `nox -s bench`.
WAIT_SECONDS = 120


def _bccd_test_images(datasets: Path, count: int) -> list[Path]:
    with (datasets / "bccd" / "labels.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["kaggle_side"] == "test"]
    return [datasets / "bccd" / "JPEGImages" / r["image"] for r in rows[:count]]


@pytest.fixture
def stack(tmp_path: Path, model_dir: Path) -> Iterator[Path]:
    data = tmp_path / "D"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BLOODCELL_", "ARCHIVE_", "UPLOAD_", "PYTEST_"))
    }
    env |= {"MODEL_DIR": str(model_dir), "PYTHONPATH": str(REPO / "src")}
    process = subprocess.Popen(
        [sys.executable, "-m", "bloodcell.cli", "serve", "--data-dir", str(data), "--no-web"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    ready = process.stdout.readline()
    assert ready.startswith("bloodcell ready"), ready
    yield data
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0
    assert list(cwd.iterdir()) == []  # nothing written outside the data dir


def _wait_for(folder: Path, count: int) -> list[Path]:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        found = sorted(p for p in folder.rglob("*") if p.is_file())
        if len(found) >= count:
            return found
        time.sleep(0.1)
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_real_smears_dropped_into_the_bucket_are_classified_and_archived(stack: Path, datasets: Path) -> None:
    images = _bccd_test_images(datasets, 20)
    bad = {
        "notes.jpg": b"a text file renamed .jpg\n",
        "empty.png": b"",
        "half.jpg": images[0].read_bytes()[:2000],
    }

    for image in images:
        shutil.copy(image, stack / "uploads" / image.name)
    for name, data in bad.items():
        (stack / "uploads" / name).write_bytes(data)
    results = _wait_for(stack / "results", len(images) + len(bad))
    archive = _wait_for(stack / "archive", 2 * len(images))

    by_name = {p.name[: -len(".json")]: json.loads(p.read_text()) for p in results}
    assert set(by_name) == {p.name for p in images} | set(bad)
    assert all(by_name[p.name]["status"] == "classified" for p in images)
    assert all(by_name[name]["status"] == "rejected" and by_name[name]["reason"] for name in bad)
    assert sorted(p.name for p in archive if p.suffix == ".jpg") == sorted(p.name for p in images)
    assert len([p for p in archive if p.suffix == ".json"]) == len(images)
    assert sorted(p.name for p in stack.iterdir()) == [
        ".meta",
        ".tmp",
        "archive",
        "models",  # the lab's calibrations (MODEL_BUCKET), empty until one is made
        "results",
        "tensors",
        "uploads",
    ]


def test_uploads_waiting_before_start_are_processed_at_start_up(
    tmp_path: Path, datasets: Path, model_dir: Path
) -> None:
    data = tmp_path / "D"
    (data / "uploads").mkdir(parents=True)
    images = _bccd_test_images(datasets, 3)
    for image in images:
        shutil.copy(image, data / "uploads" / image.name)
    env = dict(os.environ) | {"MODEL_DIR": str(model_dir), "PYTHONPATH": str(REPO / "src")}
    process = subprocess.Popen(
        [sys.executable, "-m", "bloodcell.cli", "serve", "--data-dir", str(data), "--no-web"],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        results = _wait_for(data / "results", len(images))
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)

    assert sorted(p.name for p in results) == sorted(p.name + ".json" for p in images)
