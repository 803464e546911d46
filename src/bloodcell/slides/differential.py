"""The differential count: the one computation every page and report shows.

Its basis is always stated. On the ``MODEL`` basis the model's confident labels
are counted (uncertain cells are listed apart, never counted as firm ones). On the
``REVIEWED`` basis only people's verdicts count, and cells nobody reviewed are
counted apart, so an unfinished review never passes for a finished one.

Flags (H/L) are computed from the percentage as printed (one decimal), so a
report never shows "4.0 % (1–4) H"; and a model-only count gets none: nobody has
verified it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from bloodcell.errors import RejectedInput
from bloodcell.slides.categories import APART, BY_KEY, COUNTED_LABELS, EXCLUDED, NUCLEATED_RED_CELL, PER_100
from bloodcell.slides.cell import Cell
from bloodcell.slides.references import DEFAULT_REFERENCES, ReferenceTable
from bloodcell.slides.vocabulary import HIGH, LOW, MODEL, PENDING, REJECTED, REPORT_ORDER, REVIEWED

DIGITS = 1  # percentages are printed, compared and flagged with one decimal
# White-cell counts from an analyser, in 10^9/L: anything outside is a typing error.
WBC_RANGE = (0.01, 1000.0)

Interval = Callable[[int, int], tuple[float, float]]


@dataclass(frozen=True)
class Row:
    label: str
    count: int
    percent: float | None  # None when nothing was counted
    ref_low: float
    ref_high: float
    verified: bool  # counted from reviewed labels: only then is it flagged
    ci_low: float | None = None  # percent, when the caller asked for intervals
    ci_high: float | None = None
    absolute: float | None = None  # 10^9/L, when the white-cell count is known

    @property
    def shown(self) -> str:
        """The percentage exactly as every view prints it."""
        return "–" if self.percent is None else f"{self.percent:.{DIGITS}f} %"

    @property
    def flag(self) -> str:
        """H or L against the reference range, from the printed value; a value on a limit is in range."""
        if self.percent is None or not self.verified:
            return ""
        value = round(self.percent, DIGITS)
        if value > self.ref_high:
            return HIGH
        return LOW if value < self.ref_low else ""


@dataclass(frozen=True)
class Differential:
    basis: str  # MODEL or REVIEWED
    rows: tuple[Row, ...]
    counted: int  # the denominator
    uncertain: int  # model basis: classified but uncertain
    rejected: int  # rejected by the pipeline (and not reviewed)
    pending: int  # no result yet
    unreviewed: int  # reviewed basis: results nobody has given a verdict on
    excluded: dict[str, int]  # reviewed basis: verdicts outside the count, by category
    nucleated_red: int  # nucleated red cells, per 100 white cells outside the denominator
    reviewed: int  # cells with a verdict
    total: int
    wbc: float | None = None

    @property
    def nucleated_red_per_100(self) -> float | None:
        return 100.0 * self.nucleated_red / self.counted if self.counted else None

    @property
    def excluded_total(self) -> int:
        return sum(self.excluded.values())

    @property
    def finished(self) -> int:
        return self.total - self.pending


def check_wbc(wbc: float | None) -> float | None:
    """A white-cell count typed by a person: a clear refusal, not a silently absurd report."""
    if wbc is not None and not WBC_RANGE[0] <= wbc <= WBC_RANGE[1]:
        raise RejectedInput(
            f"white-cell count must be {WBC_RANGE[0]:g}-{WBC_RANGE[1]:g} x10^9/L, got {wbc:g}"
        )
    return wbc


def rows_for(basis: str, counts: Mapping[str, int]) -> tuple[str, ...]:
    """The model's four always; a reviewer's other categories once one of them is counted."""
    if basis == MODEL:
        return REPORT_ORDER
    return tuple(label for label in COUNTED_LABELS if label in REPORT_ORDER or counts.get(label))


def differential(
    cells: Iterable[Cell],
    basis: str,
    references: ReferenceTable = DEFAULT_REFERENCES,
    wbc: float | None = None,
    interval: Interval | None = None,
) -> Differential:
    """Count a slide on ``basis``; ``interval(count, total)`` adds intervals (reports pass scipy's)."""
    if basis not in (MODEL, REVIEWED):
        raise ValueError(f"unknown basis {basis!r}")
    cells = list(cells)
    wbc = check_wbc(wbc)
    reviewed_basis = basis == REVIEWED
    counts: dict[str, int] = {}
    excluded: dict[str, int] = {}
    uncertain = rejected = pending = unreviewed = nucleated = 0
    for cell in cells:
        label = cell.counted_as(reviewed_basis)
        if label is not None:
            counts[label] = counts.get(label, 0) + 1
        elif reviewed_basis and cell.review is not None:
            category = BY_KEY.get(cell.review.label)
            kind = category.kind if category else EXCLUDED
            if kind == PER_100 and cell.review.label == NUCLEATED_RED_CELL:
                nucleated += 1
            elif kind in (APART, EXCLUDED, PER_100):
                excluded[cell.review.label] = excluded.get(cell.review.label, 0) + 1
        elif cell.status == PENDING:
            pending += 1
        elif cell.status == REJECTED:
            rejected += 1
        elif reviewed_basis:
            unreviewed += 1
        else:
            uncertain += 1
    counted = sum(counts.values())
    rows = []
    for label in rows_for(basis, counts):
        count = counts.get(label, 0)
        percent = 100.0 * count / counted if counted else None
        low, high = interval(count, counted) if interval and counted else (None, None)
        ref_low, ref_high = references.get(label, (0.0, 100.0))
        rows.append(
            Row(
                label=label,
                count=count,
                percent=percent,
                ref_low=ref_low,
                ref_high=ref_high,
                verified=reviewed_basis,
                ci_low=low,
                ci_high=high,
                absolute=None if wbc is None or percent is None else wbc * percent / 100.0,
            )
        )
    return Differential(
        basis=basis,
        rows=tuple(rows),
        counted=counted,
        uncertain=uncertain,
        rejected=rejected,
        pending=pending,
        unreviewed=unreviewed,
        excluded=excluded,
        nucleated_red=nucleated,
        reviewed=sum(1 for c in cells if c.review is not None),
        total=len(cells),
        wbc=wbc,
    )


def report_basis(cells: Iterable[Cell]) -> str:
    """What a report counts: people's verdicts once there are any, the model's until then."""
    return REVIEWED if any(c.review is not None for c in cells) else MODEL
