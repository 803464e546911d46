"""The slide's differential twice, side by side: what the model said and what people confirmed.

Model counts follow the batch page's rule (uncertain cells are not counted).
Reviewed counts take each reviewed cell's label; "not a white cell" and
"unusable" leave the percentages, and cells nobody has reviewed are counted
apart, so an unfinished review never passes for a finished one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bloodcell.review.records import NOT_A_WHITE_CELL, UNUSABLE
from bloodcell.review.slides import CLASSIFIED, REJECTED, WAITING, Cell
from bloodcell.review.state import ReviewedCell
from bloodcell.web.batch import REFERENCE_RANGES, REPORT_ORDER


@dataclass(frozen=True)
class PairRow:
    label: str
    model: int
    model_percent: float | None
    reviewed: int
    reviewed_percent: float | None
    low: float
    high: float


@dataclass(frozen=True)
class ReviewDifferential:
    rows: tuple[PairRow, ...]
    model_counted: int
    model_uncertain: int
    reviewed_counted: int
    not_white: int
    unusable: int
    unreviewed: int  # classified cells nobody has reviewed yet
    rejected: int
    waiting: int
    total: int


def _percent(count: int, total: int) -> float | None:
    return 100.0 * count / total if total else None


def review_differential(
    cells: Sequence[Cell], reviewed: Mapping[tuple[str, str], ReviewedCell]
) -> ReviewDifferential:
    model = dict.fromkeys(REPORT_ORDER, 0)
    people = dict.fromkeys(REPORT_ORDER, 0)
    uncertain = not_white = unusable = unreviewed = 0
    for cell in cells:
        result = cell.result
        if cell.status == CLASSIFIED and result is not None:
            if result.uncertain:
                uncertain += 1
            elif result.label in model:
                model[result.label] += 1
        review = reviewed.get(cell.key)
        if review is None:
            unreviewed += cell.status == CLASSIFIED
        elif review.label == NOT_A_WHITE_CELL:
            not_white += 1
        elif review.label == UNUSABLE:
            unusable += 1
        elif review.label in people:
            people[review.label] += 1
    model_total, people_total = sum(model.values()), sum(people.values())
    rows = tuple(
        PairRow(
            label,
            model[label],
            _percent(model[label], model_total),
            people[label],
            _percent(people[label], people_total),
            *REFERENCE_RANGES[label],
        )
        for label in REPORT_ORDER
    )
    return ReviewDifferential(
        rows=rows,
        model_counted=model_total,
        model_uncertain=uncertain,
        reviewed_counted=people_total,
        not_white=not_white,
        unusable=unusable,
        unreviewed=unreviewed,
        rejected=sum(1 for c in cells if c.status == REJECTED),
        waiting=sum(1 for c in cells if c.status == WAITING),
        total=len(cells),
    )


def gallery_order(cells: Sequence[Cell]) -> list[Cell]:
    """By predicted class in report order; in each, uncertain first, then lowest confidence.

    Rejected images follow the four classes, and images still being processed come last.
    """

    def key(cell: Cell) -> tuple[int, int, float, str]:
        result = cell.result
        if cell.status == CLASSIFIED and result is not None and result.label in REPORT_ORDER:
            group = REPORT_ORDER.index(result.label)
            return (group, 0 if result.uncertain else 1, float(result.confidence or 0.0), cell.upload_name)
        return (len(REPORT_ORDER) + (cell.status == WAITING), 0, 0.0, cell.upload_name)

    return sorted(cells, key=key)


def group_of(cell: Cell) -> str:
    if cell.status == CLASSIFIED and cell.label in REPORT_ORDER:
        return str(cell.label)
    return REJECTED if cell.status == REJECTED else WAITING
