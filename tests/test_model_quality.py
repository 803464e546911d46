"""The shipped model, through the runtime path of ``bloodcell classify``, keeps its measured quality.

Fixed, deterministic samples: all of Kaggle TEST_SIMPLE, every 10th sorted Kaggle TEST file,
every 4th PBC validation white cell and every 2nd ``pbc/other`` validation cell (the split is
rebuilt by ``training/splits.py``, which training used: 25 % of each PBC class folder). Besides
accuracy and recall, the uncertainty flag is held to its job: at most 10 % of white cells flagged,
the cells left unflagged more accurate than the whole, and ``pbc/other`` cells flagged. The
floors are the issue's targets where the shipped model meets them, else the level it does reach;
they are floors to defend, never to loosen. Needs ../shared/datasets (or BLOODCELL_DATASETS).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bloodcell.imaging import ImageLimits
from bloodcell.model import Classifier
from bloodcell.pipeline import make_tensor
from training.splits import OTHER_INDEX, WBC, kaggle_items, pbc_val_items

REPO = Path(__file__).resolve().parents[1]

# Floors: the targets where the shipped model meets them on these samples, else the level it
# reaches here, rounded down, to catch any regression from there. Model 3.0.0 (8 views, trained for labs
# it never saw) on these samples: see MODEL_CARD.md for the full sets. Against 1.0.1 it trades 0.5 to 1
# point in-domain (Kaggle TEST sample 0.872 vs 0.88, PBC 0.986 vs 0.99) for robustness to other labs.
KAGGLE_TEST_ACC = 0.87
KAGGLE_TEST_RECALL = {"EOSINOPHIL": 0.88, "LYMPHOCYTE": 1.0, "MONOCYTE": 0.66, "NEUTROPHIL": 0.91}
KAGGLE_TEST_MAX_FLAG = 0.05  # measured 0.032; the budget is 0.10
KAGGLE_TEST_UNFLAGGED_ACC = 0.87
TEST_SIMPLE_ACC = 0.91
PBC_VAL_ACC = 0.985
PBC_VAL_RECALL = 0.95  # every class
PBC_VAL_MAX_FLAG = 0.08  # measured 0.074; the budget is 0.10
PBC_VAL_UNFLAGGED_ACC = 0.99
OTHER_MIN_FLAG = 0.95


@pytest.fixture(scope="module")
def classifier(model_dir: Path) -> Classifier:
    if not (model_dir / "model.tflite").is_file():
        pytest.fail(f"no shipped model at {model_dir}")
    return Classifier(model_dir, threads=1)


def _run(classifier: Classifier, items: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    limits = ImageLimits()
    labels, preds, flags = [], [], []
    for it in items:
        p = classifier.predict(make_tensor(it.path.read_bytes(), limits))
        labels.append(it.label)
        preds.append(WBC.index(p.label))
        flags.append(p.uncertain)
    return np.array(labels), np.array(preds), np.array(flags)


def _recalls(labels: np.ndarray, preds: np.ndarray) -> dict[str, float]:
    return {
        name: float((preds[labels == c] == c).mean()) for c, name in enumerate(WBC) if (labels == c).any()
    }


def test_kaggle_test_simple(classifier: Classifier, datasets: Path) -> None:
    labels, preds, _ = _run(classifier, kaggle_items(datasets, "TEST_SIMPLE"))
    assert len(labels) == 71
    acc = float((labels == preds).mean())
    assert acc >= TEST_SIMPLE_ACC, f"TEST_SIMPLE accuracy {acc:.3f} < {TEST_SIMPLE_ACC}"


def test_kaggle_test_sample(classifier: Classifier, datasets: Path) -> None:
    items = kaggle_items(datasets, "TEST")[::10]
    labels, preds, flags = _run(classifier, items)
    acc = float((labels == preds).mean())
    recalls = _recalls(labels, preds)
    kept = ~flags
    assert acc >= KAGGLE_TEST_ACC, f"Kaggle TEST sample accuracy {acc:.3f} < {KAGGLE_TEST_ACC}"
    low = {k: round(v, 3) for k, v in recalls.items() if v < KAGGLE_TEST_RECALL[k]}
    assert not low, f"Kaggle TEST sample class recall under its floor {KAGGLE_TEST_RECALL}: {low}"
    assert float(flags.mean()) <= KAGGLE_TEST_MAX_FLAG, f"{flags.mean():.3f} of Kaggle TEST cells flagged"
    unflagged = float((labels[kept] == preds[kept]).mean())
    assert unflagged >= KAGGLE_TEST_UNFLAGGED_ACC, f"unflagged accuracy {unflagged:.3f}"


def test_pbc_validation_sample(classifier: Classifier, datasets: Path) -> None:
    val = pbc_val_items(datasets)
    wbc = [it for it in val if it.label < OTHER_INDEX][::4]
    other = [it for it in val if it.label == OTHER_INDEX][::2]
    labels, preds, flags = _run(classifier, wbc)
    acc = float((labels == preds).mean())
    kept = ~flags
    assert acc >= PBC_VAL_ACC, f"PBC val sample accuracy {acc:.3f} < {PBC_VAL_ACC}"
    low = {k: round(v, 3) for k, v in _recalls(labels, preds).items() if v < PBC_VAL_RECALL}
    assert not low, f"PBC val sample class recall under {PBC_VAL_RECALL}: {low}"
    assert float(flags.mean()) <= PBC_VAL_MAX_FLAG, f"{flags.mean():.3f} of PBC white cells flagged"
    unflagged = float((labels[kept] == preds[kept]).mean())
    assert unflagged >= PBC_VAL_UNFLAGGED_ACC, f"PBC val unflagged accuracy {unflagged:.3f}"
    _, _, other_flags = _run(classifier, other)
    rate = float(other_flags.mean())
    assert rate >= OTHER_MIN_FLAG, f"only {rate:.3f} of pbc/other cells flagged uncertain"
