"""A synthetic lab for calibration tests: class clusters in an embedding, a shipped head, a shifted lab.

Numpy only, seeded: the training labs' cells sit around five class means; the new lab's cells
are the same classes moved by a stain-like shift, so the shipped head is poor there and a
refitted head is not. Real-model tests build their lab from PBC images under ``training.shifts``.
"""

from __future__ import annotations

import numpy as np

from bloodcell.calibration import head
from bloodcell.calibration.core import BaseModel, LabCells
from bloodcell.calibration.head import Head
from bloodcell.ood import fit as fit_ood

OUTPUTS = ("EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL", "OTHER")
DIM = 24


def _cells(
    rng: np.random.Generator, means: np.ndarray, per_class: int, shift: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    labels = np.repeat(np.arange(len(means)), per_class)
    x = means[labels] + rng.normal(0.0, 1.0, (len(labels), means.shape[1])) + shift
    return np.maximum(x, 0.0), labels


def synthetic_lab(per_class: int = 12, seed: int = 7) -> tuple[BaseModel, LabCells]:
    rng = np.random.default_rng(seed)
    means = rng.normal(3.0, 2.0, (len(OUTPUTS), DIM))
    train_x, train_y = _cells(rng, means, 80, np.zeros(DIM))
    zero = Head(np.zeros((DIM, len(OUTPUTS))), np.zeros(len(OUTPUTS)))
    shipped = head.fit(zero, train_x, train_y, pull=1e-3, steps=600)
    panel = _cells(rng, means, 40, np.zeros(DIM))
    shift = rng.normal(0.0, 2.5, DIM)
    lab_x, lab_y = _cells(rng, means, per_class, shift)
    base = BaseModel("synthetic", "1", OUTPUTS, shipped, fit_ood(train_x, train_y), panel)
    labels = tuple(OUTPUTS[i] for i in lab_y)
    return base, LabCells(lab_x, labels, tuple(f"cell-{i}" for i in range(len(labels))))


def shuffle_half(cells: LabCells, seed: int = 3) -> LabCells:
    """Half the labels permuted among themselves: the mislabelled batch the gate must refuse."""
    rng = np.random.default_rng(seed)
    labels = list(cells.labels)
    chosen = rng.choice(len(labels), len(labels) // 2, replace=False)
    permuted = rng.permutation(chosen)
    for i, j in zip(chosen, permuted, strict=True):
        labels[i] = cells.labels[j]
    return LabCells(cells.embeddings, tuple(labels), cells.names)
