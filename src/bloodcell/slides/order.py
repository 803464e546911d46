"""The order cells are reviewed in: by predicted class, doubtful ones first, met early."""

from __future__ import annotations

from collections.abc import Sequence

from bloodcell.slides.cell import Cell
from bloodcell.slides.vocabulary import CLASSIFIED, PENDING, REJECTED, REPORT_ORDER


def gallery_order(cells: Sequence[Cell]) -> list[Cell]:
    """By predicted class in report order; in each, uncertain first, then lowest confidence.

    Rejected images follow the four classes, and images still being processed come last.
    """

    def key(cell: Cell) -> tuple[int, int, float, str]:
        label = cell.label
        if cell.status == CLASSIFIED and label in REPORT_ORDER:
            group = REPORT_ORDER.index(str(label))
            return (group, 0 if cell.uncertain else 1, float(cell.confidence or 0.0), cell.upload_name)
        return (len(REPORT_ORDER) + (cell.status == PENDING), 0, 0.0, cell.upload_name)

    return sorted(cells, key=key)


def group_of(cell: Cell) -> str:
    """The heading a cell is shown under: its predicted class, rejected, or pending."""
    if cell.status == CLASSIFIED and cell.label in REPORT_ORDER:
        return str(cell.label)
    return REJECTED if cell.status == REJECTED else PENDING
