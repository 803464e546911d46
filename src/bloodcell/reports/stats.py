"""The exact 95 % interval a report states beside each percentage (the counting is ``bloodcell.slides``).

A manual differential's precision depends on how many cells were counted (5 % of 100
cells is 1.6-11.3 %, of 400 cells 3.1-7.6 %), so every percentage carries its 95 %
Clopper-Pearson interval, computed by scipy rather than by us.
"""

from __future__ import annotations

from collections.abc import Iterable

from scipy.stats import binomtest

from bloodcell.slides.cell import Cell
from bloodcell.slides.differential import Differential, differential, report_basis
from bloodcell.slides.references import DEFAULT_REFERENCES, ReferenceTable

CONFIDENCE = 0.95


def interval(count: int, total: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The exact (Clopper-Pearson) interval of ``count`` in ``total``, in percent."""
    if total <= 0 or not 0 <= count <= total:
        raise ValueError(f"need 0 <= count <= total and total > 0, got {count}/{total}")
    ci = binomtest(count, total).proportion_ci(confidence_level=confidence, method="exact")
    return 100.0 * float(ci.low), 100.0 * float(ci.high)


def report_differential(
    cells: Iterable[Cell], references: ReferenceTable = DEFAULT_REFERENCES, wbc: float | None = None
) -> Differential:
    """The slide's differential as a report states it: on its basis, with intervals."""
    cells = list(cells)
    return differential(cells, report_basis(cells), references, wbc, interval)
