"""Golden outputs: fixed images must keep their label and probabilities (within 1e-4).

Catches an accidental change to decoding, localisation, cropping or the shipped model.
After a deliberate change (a new model or a new cellcrop), regenerate the expectations:

    PYTHONPATH=src python tests/test_golden.py ../shared/datasets

and commit tests/golden.json together with the change that explains it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from bloodcell.imaging import ImageLimits
from bloodcell.model import Classifier
from bloodcell.pipeline import make_tensor

GOLDEN = Path(__file__).with_name("golden.json")
TOLERANCE = 1e-4
IMAGES = (  # relative to the datasets folder
    "kaggle-blood-cells/TEST_SIMPLE/EOSINOPHIL/_0_5239.jpeg",
    "kaggle-blood-cells/TEST_SIMPLE/LYMPHOCYTE/_0_3975.jpeg",
    "pbc/wbc/monocyte/MO_100695.jpg",
    "pbc/wbc/neutrophil/BNE_101007.jpg",
    "pbc/other/platelet/PLATELET_10233.jpg",
    "bccd/JPEGImages/BloodImage_00001.jpg",
)


def _outputs(classifier: Classifier, datasets: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for rel in IMAGES:
        p = classifier.predict(make_tensor((datasets / rel).read_bytes(), ImageLimits()))
        out[rel] = {
            "label": p.label,
            "uncertain": p.uncertain,
            "probabilities": p.probabilities,
            "other_probability": p.other_probability,
        }
    return out


def test_golden_outputs(datasets: Path, model_dir: Path) -> None:
    expected: dict[str, dict[str, Any]] = json.loads(GOLDEN.read_text())
    if not (model_dir / "model.tflite").is_file():
        pytest.fail(f"no shipped model at {model_dir}")
    got = _outputs(Classifier(model_dir, threads=1), datasets)
    for rel, want in expected.items():
        have = got[rel]
        assert have["label"] == want["label"], f"{rel}: {have['label']} != {want['label']}"
        assert have["uncertain"] == want["uncertain"], f"{rel}: uncertain changed"
        for name, value in want["probabilities"].items():
            assert abs(have["probabilities"][name] - value) <= TOLERANCE, f"{rel} {name}"
        assert abs(have["other_probability"] - want["other_probability"]) <= TOLERANCE, f"{rel} OTHER"


if __name__ == "__main__":
    repo = Path(__file__).resolve().parents[1]
    data = Path(sys.argv[1] if len(sys.argv) > 1 else repo.parent / "shared" / "datasets")
    result = _outputs(Classifier(repo / "functions" / "predict" / "model", threads=1), data)
    GOLDEN.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {GOLDEN}")
