"""The words of a slide: cell types, review categories and the one set of cell statuses.

Every page, report and CSV takes its words from here, so a cell that one view calls
"pending" is never "waiting" in another.
"""

from __future__ import annotations

from bloodcell.contract import LABELS

# The order a differential is read in; the model's four classes.
REPORT_ORDER: tuple[str, ...] = ("NEUTROPHIL", "LYMPHOCYTE", "MONOCYTE", "EOSINOPHIL")
WORDS: dict[str, str] = {label: label.capitalize() for label in LABELS}

# What became of one upload: no result yet, classified, or rejected by the pipeline.
PENDING, CLASSIFIED, REJECTED = "pending", "classified", "rejected"
STATUSES = (PENDING, CLASSIFIED, REJECTED)
STATUS_WORDS = {
    PENDING: "Still being processed",
    CLASSIFIED: "Classified",
    REJECTED: "Rejected by the pipeline",
}

# Where review records live in the result bucket; no slide may be named like it.
REVIEW_PREFIX = "_review/"

# What the counts rest on: people's verdicts, or the model alone (never flagged: nobody verified it).
REVIEWED, MODEL = "reviewed", "model"
BASIS_WORDS = {REVIEWED: "reviewed labels", MODEL: "model labels (unreviewed)"}

# High and low flags against the reference range.
HIGH, LOW = "H", "L"


def label_words(label: str | None) -> str:
    return WORDS.get(label or "", label or "")
