"""`bloodcell classify`: the in-process path people use on their own files."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from bloodcell.results import SCHEMA_VERSION
from tests.support.common import REPO


def test_classify_prints_one_json_line_per_image(tmp_path: Path, datasets: Path, model_dir: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    cells = sorted((datasets / "kaggle-blood-cells" / "TEST_SIMPLE" / "MONOCYTE").iterdir())[:2]
    for cell in cells:
        (folder / cell.name).write_bytes(cell.read_bytes())
    (folder / "fake.jpg").write_bytes(b"not an image")
    env = dict(os.environ) | {"MODEL_DIR": str(model_dir), "PYTHONPATH": str(REPO / "src")}

    run = subprocess.run(
        [sys.executable, "-m", "bloodcell.cli", "classify", str(folder), "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )

    lines = [json.loads(line) for line in run.stdout.splitlines()]
    by_file = {Path(line["source"]["name"]).name: line for line in lines}
    assert set(by_file) == {c.name for c in cells} | {"fake.jpg"}
    assert by_file["fake.jpg"]["status"] == "rejected" and "not an image" in by_file["fake.jpg"]["reason"]
    for cell in cells:
        line = by_file[cell.name]
        assert line["status"] == "classified" and line["schema_version"] == SCHEMA_VERSION
        assert line["source"]["sha256"] == hashlib.sha256(cell.read_bytes()).hexdigest()
        assert abs(sum(line["probabilities"].values()) - 1) < 1e-5
        assert line["label"] == max(line["probabilities"], key=line["probabilities"].get)


def test_classify_plain_output_and_missing_file(tmp_path: Path, datasets: Path, model_dir: Path) -> None:
    cell = next((datasets / "kaggle-blood-cells" / "TEST_SIMPLE" / "NEUTROPHIL").iterdir())
    env = dict(os.environ) | {"MODEL_DIR": str(model_dir), "PYTHONPATH": str(REPO / "src")}

    run = subprocess.run(
        [sys.executable, "-m", "bloodcell.cli", "classify", str(cell), str(tmp_path / "gone.jpg")],
        env=env,
        capture_output=True,
        text=True,
    )

    first, second = run.stdout.splitlines()
    assert run.returncode == 1
    assert first.split("\t")[1] in {"EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"}
    assert "rejected\tcannot read file" in second
