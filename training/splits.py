"""Deterministic train/validation splits of the training sources (no TensorFlow needed).

Kaggle TRAIN holds augmentations of a few hundred original smears: files ``_<k>_<n>.jpeg``
sharing ``k`` within a class come from one original, so its validation split is drawn by
(class, k) group; a random split would leak near-copies into validation. PBC images are
distinct cells and are split at random per class folder. Kaggle TEST and TEST_SIMPLE are
only ever listed, never split or selected on.

PBC validation holds 25 % of every class folder (model 2: more held-out cells per class,
so class recalls have usable confidence intervals). Model 1.0.0 held out 15 %; because the
order is fixed, that 15 % is the first part of today's 25 % (``LEGACY_PBC_VAL_FRACTION``), the
cells neither model trained on, where the two are compared.

Order is decided by a SHA-1 of ``seed:name``, so the split is identical on every machine,
Python and numpy version. Tests import this module to rebuild the PBC validation list.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

WBC = ("EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL")
OUTPUTS = (*WBC, "OTHER")
OTHER_INDEX = 4
PBC_WBC_DIRS = ("eosinophil", "lymphocyte", "monocyte", "neutrophil")
PBC_OTHER_DIRS = ("basophil", "erythroblast", "ig", "platelet")
SPLIT_SEED = 20240601
KAGGLE_VAL_FRACTION = 0.2
PBC_VAL_FRACTION = 0.25
LEGACY_PBC_VAL_FRACTION = 0.15  # model 1.0.0's validation: a prefix of today's
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class Item:
    path: Path
    label: int  # index into OUTPUTS
    source: str  # "kaggle", "pbc" or "pbc-other"
    group: str  # class folder (and smear for Kaggle): used for balancing and reporting


def _order(seed: int, name: str) -> str:
    return hashlib.sha1(f"{seed}:{name}".encode()).hexdigest()


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def kaggle_items(data: Path, split: str) -> list[Item]:
    """All images of one Kaggle split (TRAIN, TEST or TEST_SIMPLE), sorted."""
    items = []
    for label, name in enumerate(WBC):
        for path in _images(data / "kaggle-blood-cells" / split / name):
            smear = path.name.split("_")[1] if path.name.startswith("_") else path.stem
            items.append(Item(path, label, "kaggle", f"{name}/{smear}"))
    return items


def split_kaggle_train(data: Path, seed: int = SPLIT_SEED) -> tuple[list[Item], list[Item]]:
    """Kaggle TRAIN into (train, val), whole original smears to one side."""
    train: list[Item] = []
    val: list[Item] = []
    items = kaggle_items(data, "TRAIN")
    for label in range(len(WBC)):
        groups = sorted({it.group for it in items if it.label == label}, key=lambda g: _order(seed, g))
        held = set(groups[: max(1, math.ceil(KAGGLE_VAL_FRACTION * len(groups)))])
        for it in items:
            if it.label == label:
                (val if it.group in held else train).append(it)
    return train, val


def _split_folder(paths: list[Path], seed: int, fraction: float) -> tuple[list[Path], list[Path]]:
    ordered = sorted(paths, key=lambda p: _order(seed, p.name))
    n_val = math.ceil(fraction * len(ordered))
    return sorted(ordered[n_val:]), sorted(ordered[:n_val])


def split_pbc(
    data: Path, seed: int = SPLIT_SEED, fraction: float = PBC_VAL_FRACTION
) -> tuple[list[Item], list[Item]]:
    """PBC wbc/ and other/ into (train, val), a random fixed fraction of every class folder."""
    train: list[Item] = []
    val: list[Item] = []
    folders = [(data / "pbc" / "wbc" / d, i, "pbc", d) for i, d in enumerate(PBC_WBC_DIRS)]
    folders += [(data / "pbc" / "other" / d, OTHER_INDEX, "pbc-other", d) for d in PBC_OTHER_DIRS]
    for folder, label, source, name in folders:
        tr, va = _split_folder(_images(folder), seed, fraction)
        train += [Item(p, label, source, name) for p in tr]
        val += [Item(p, label, source, name) for p in va]
    return train, val


def pbc_val_items(data: Path, seed: int = SPLIT_SEED, fraction: float = PBC_VAL_FRACTION) -> list[Item]:
    """The PBC validation split (white cells and other cells), as training held it out."""
    return split_pbc(data, seed, fraction)[1]
