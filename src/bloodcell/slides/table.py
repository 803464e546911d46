"""The one CSV writer: every table a person downloads (batch, slide cells, slide summary) goes through it.

Each value is made safe twice: names pass ``printable`` (bytes that were not UTF-8
and bidi controls are escaped, so the file always encodes and reads as it is), and
text a spreadsheet would run as a formula is quoted (CSV injection guard).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from bloodcell.contract import LABELS
from bloodcell.slides.cell import Cell
from bloodcell.slides.ids import printable


def spreadsheet_safe(value: object) -> str:
    """Plain text a spreadsheet won't run as a formula, and that always encodes."""
    text = printable("" if value is None else str(value))
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def number(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def write_csv(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(spreadsheet_safe(value) for value in row)
    return buffer.getvalue()


# What the model said of a cell: the same columns, in the same order, in every cell table.
RESULT_COLUMNS = (
    "model_label",
    "confidence",
    *(f"p_{label.lower()}" for label in LABELS),
    "other_probability",
    "uncertain",
    "ood_score",
    "unfamiliar",
    "reason",
    "model",
)


def result_values(cell: Cell) -> list[object]:
    return [
        cell.label or "",
        number(cell.confidence),
        *(number(cell.probability(label)) for label in LABELS),
        number(cell.other_probability),
        "" if cell.label is None else str(cell.uncertain).lower(),
        number(cell.ood_score),
        "" if cell.unfamiliar is None else str(cell.unfamiliar).lower(),
        cell.reason or "",
        cell.model_words,
    ]
