"""What a reviewer may call a cell, by key, and what each verdict means for the count and for training.

Each category says where it goes: into the differential's denominator (a white
cell of that type), counted per 100 white cells outside it (nucleated red cells),
tallied apart (smudge cells), or out of the count (not a white cell, unusable).
Each also names the label its verified image gets in the training archive,
chosen here on purpose: a basophil is a basophil there, never "not a white cell".
"""

from __future__ import annotations

from dataclasses import dataclass

COUNTED, PER_100, APART, EXCLUDED = "counted", "per 100 white cells", "apart", "excluded"

NOT_A_WHITE_CELL, UNUSABLE = "NOT_A_WHITE_CELL", "UNUSABLE"
NUCLEATED_RED_CELL, SMUDGE = "NUCLEATED_RED_CELL", "SMUDGE"


@dataclass(frozen=True)
class Category:
    key: str  # what records and CSVs store
    words: str
    shortcut: str  # one key on the review page
    kind: str  # COUNTED, PER_100, APART or EXCLUDED
    training_label: str  # the label a verified image carries in the archive


CATEGORIES: tuple[Category, ...] = (
    Category("NEUTROPHIL", "Neutrophil", "n", COUNTED, "NEUTROPHIL"),
    Category("LYMPHOCYTE", "Lymphocyte", "l", COUNTED, "LYMPHOCYTE"),
    Category("MONOCYTE", "Monocyte", "m", COUNTED, "MONOCYTE"),
    Category("EOSINOPHIL", "Eosinophil", "e", COUNTED, "EOSINOPHIL"),
    Category("BASOPHIL", "Basophil", "b", COUNTED, "BASOPHIL"),
    Category("BAND_NEUTROPHIL", "Band neutrophil", "d", COUNTED, "BAND_NEUTROPHIL"),
    Category("IMMATURE_GRANULOCYTE", "Immature granulocyte", "i", COUNTED, "IMMATURE_GRANULOCYTE"),
    Category("BLAST", "Blast", "t", COUNTED, "BLAST"),
    Category("REACTIVE_LYMPHOCYTE", "Reactive/atypical lymphocyte", "r", COUNTED, "REACTIVE_LYMPHOCYTE"),
    Category("OTHER", "Other white cell", "o", COUNTED, "OTHER_WHITE_CELL"),
    Category(NUCLEATED_RED_CELL, "Nucleated red cell", "c", PER_100, "NUCLEATED_RED_CELL"),
    Category(SMUDGE, "Smudge cell", "s", APART, "SMUDGE_CELL"),
    Category(NOT_A_WHITE_CELL, "Not a white cell", "x", EXCLUDED, NOT_A_WHITE_CELL),
    Category(UNUSABLE, "Unusable", "u", EXCLUDED, UNUSABLE),
)
BY_KEY: dict[str, Category] = {c.key: c for c in CATEGORIES}
BY_SHORTCUT: dict[str, Category] = {c.shortcut: c for c in CATEGORIES}
REVIEW_LABELS: tuple[str, ...] = tuple(BY_KEY)
# Rows of the differential, in the order it is read: the model's four first.
COUNTED_LABELS: tuple[str, ...] = tuple(c.key for c in CATEGORIES if c.kind == COUNTED)


def category_words(key: str | None) -> str:
    category = BY_KEY.get(key or "")
    return category.words if category else (key or "")


def training_label(key: str) -> str:
    """The archive's label for a verdict; KeyError for a key that is no category (never guessed)."""
    return BY_KEY[key].training_label
