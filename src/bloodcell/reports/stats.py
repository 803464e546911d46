"""The differential a report states: counts, percentages, exact intervals, flags, absolute counts.

A manual differential's precision depends on how many cells were counted (5 % of 100
cells is 1.6-11.3 %, of 400 cells 3.1-7.6 %), so every percentage carries its 95 %
Clopper-Pearson interval, computed by scipy rather than by us.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from scipy.stats import binomtest

from bloodcell.errors import RejectedInput
from bloodcell.reports.model import PENDING, REJECTED, ReportCell
from bloodcell.reports.references import DEFAULT_REFERENCES, ReferenceTable
from bloodcell.web.batch import REPORT_ORDER

CONFIDENCE = 0.95
HIGH, LOW = "H", "L"
# What the counts rest on: every counted cell reviewed, none, or some.
REVIEWED, MODEL, MIXED = "reviewed", "model", "mixed"
# White-cell counts from an analyser, in 10^9/L: anything outside is a typing error.
WBC_RANGE = (0.01, 1000.0)


@dataclass(frozen=True)
class ClassStat:
    label: str
    count: int
    percent: float | None  # None when nothing was counted
    ci_low: float | None  # percent
    ci_high: float | None
    ref_low: float
    ref_high: float
    absolute: float | None  # 10^9/L, when the white-cell count is known

    @property
    def flag(self) -> str:
        """H or L against the reference range; a value on a limit is in range."""
        if self.percent is None:
            return ""
        if self.percent > self.ref_high:
            return HIGH
        return LOW if self.percent < self.ref_low else ""


@dataclass(frozen=True)
class Differential:
    rows: tuple[ClassStat, ...]
    counted: int
    uncertain: int  # left out by the model's uncertainty rule and not reviewed
    rejected: int  # rejected by the pipeline and not reviewed
    excluded: int  # reviewed as not a countable leukocyte
    pending: int  # no result yet
    reviewed: int
    unreviewed: int
    basis: str  # REVIEWED, MODEL or MIXED
    wbc: float | None

    @property
    def total(self) -> int:
        return self.counted + self.uncertain + self.rejected + self.excluded + self.pending


def interval(count: int, total: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The exact (Clopper-Pearson) interval of ``count`` in ``total``, in percent."""
    if total <= 0 or not 0 <= count <= total:
        raise ValueError(f"need 0 <= count <= total and total > 0, got {count}/{total}")
    ci = binomtest(count, total).proportion_ci(confidence_level=confidence, method="exact")
    return 100.0 * float(ci.low), 100.0 * float(ci.high)


def check_wbc(wbc: float | None) -> float | None:
    """A white-cell count typed by a person: a clear refusal, not a silently absurd report."""
    if wbc is not None and not WBC_RANGE[0] <= wbc <= WBC_RANGE[1]:
        raise RejectedInput(
            f"white-cell count must be {WBC_RANGE[0]:g}-{WBC_RANGE[1]:g} x10^9/L, got {wbc:g}"
        )
    return wbc


def differential(
    cells: Iterable[ReportCell], references: ReferenceTable = DEFAULT_REFERENCES, wbc: float | None = None
) -> Differential:
    """Count a slide: reviewed labels replace the model's; uncertain and rejected cells are not counted."""
    cells = list(cells)
    wbc = check_wbc(wbc)
    counts = dict.fromkeys(REPORT_ORDER, 0)
    counted_reviewed = 0
    uncertain = rejected = excluded = pending = 0
    for cell in cells:
        label = cell.counted_label
        if label is not None:
            counts[label] = counts.get(label, 0) + 1
            counted_reviewed += cell.review is not None
        elif cell.review is not None:
            excluded += 1
        elif cell.status == PENDING:
            pending += 1
        elif cell.status == REJECTED:
            rejected += 1
        else:
            uncertain += 1
    counted = sum(counts.values())
    rows = []
    for label in REPORT_ORDER:
        count = counts[label]
        percent = 100.0 * count / counted if counted else None
        low, high = interval(count, counted) if counted else (None, None)
        rows.append(
            ClassStat(
                label=label,
                count=count,
                percent=percent,
                ci_low=low,
                ci_high=high,
                ref_low=references[label][0],
                ref_high=references[label][1],
                absolute=None if wbc is None or percent is None else wbc * percent / 100.0,
            )
        )
    reviewed = sum(1 for c in cells if c.review is not None)
    basis = MIXED
    if counted_reviewed == counted:
        basis = REVIEWED if counted else MODEL
    elif counted_reviewed == 0:
        basis = MODEL
    return Differential(
        rows=tuple(rows),
        counted=counted,
        uncertain=uncertain,
        rejected=rejected,
        excluded=excluded,
        pending=pending,
        reviewed=reviewed,
        unreviewed=len(cells) - reviewed,
        basis=basis,
        wbc=wbc,
    )
