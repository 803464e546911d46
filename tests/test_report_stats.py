"""The report's differential against values checked by hand (beta quantiles of Clopper-Pearson)."""

from __future__ import annotations

import pytest

from bloodcell.errors import ConfigurationError, RejectedInput
from bloodcell.reports.model import CLASSIFIED, PENDING, REJECTED, ReportCell, Review
from bloodcell.reports.references import as_table, parse_references
from bloodcell.reports.stats import MIXED, MODEL, REVIEWED, differential, interval


def cell(label: str | None, n: int = 0, **kw: object) -> ReportCell:
    status = kw.pop("status", CLASSIFIED if label else REJECTED)
    return ReportCell(name=f"s/{label}-{n}.jpg", generation=str(n), status=str(status), label=label, **kw)  # type: ignore[arg-type]


def cells(**counts: int) -> list[ReportCell]:
    return [cell(label.upper(), i) for label, n in counts.items() for i in range(n)]


@pytest.mark.parametrize(
    ("count", "total", "low", "high"),
    [
        # checked by bisection on the exact binomial tails (math.comb), not by scipy; 0/100: 1 - 0.025^(1/100)
        (0, 100, 0.0, 3.622),
        (5, 100, 1.643, 11.283),
        (50, 100, 39.832, 60.168),
        (20, 400, 3.081, 7.617),
        # 100/100: lower = 0.025^(1/100)
        (100, 100, 96.378, 100.0),
        # one cell: the interval is nearly everything
        (1, 1, 2.5, 100.0),
    ],
)
def test_clopper_pearson_matches_hand_checked_values(count: int, total: int, low: float, high: float) -> None:
    got = interval(count, total)
    assert got == pytest.approx((low, high), abs=0.002)


def test_interval_refuses_impossible_counts() -> None:
    with pytest.raises(ValueError):
        interval(3, 0)
    with pytest.raises(ValueError):
        interval(5, 4)


def test_percentages_intervals_and_flags() -> None:
    # 100 cells: N 70 (high), L 25, M 5, E 0 (low)
    diff = differential(cells(neutrophil=70, lymphocyte=25, monocyte=5))
    rows = {row.label: row for row in diff.rows}
    assert [row.label for row in diff.rows] == ["NEUTROPHIL", "LYMPHOCYTE", "MONOCYTE", "EOSINOPHIL"]
    assert diff.counted == 100
    assert rows["NEUTROPHIL"].percent == pytest.approx(70.0)
    assert rows["NEUTROPHIL"].flag == "H"
    assert rows["LYMPHOCYTE"].flag == ""
    assert (rows["MONOCYTE"].ci_low, rows["MONOCYTE"].ci_high) == pytest.approx((1.643, 11.283), abs=0.002)
    assert rows["EOSINOPHIL"].percent == 0.0
    assert rows["EOSINOPHIL"].flag == "L"
    assert rows["EOSINOPHIL"].ci_high == pytest.approx(3.622, abs=0.002)
    assert all(row.absolute is None for row in diff.rows)


def test_a_value_on_a_reference_limit_is_in_range() -> None:
    # N 40/100 and L 40/100 sit on limits (40-60, 20-40); M 8 on its upper, E 12 high
    diff = differential(cells(neutrophil=40, lymphocyte=40, monocyte=8, eosinophil=12))
    flags = {row.label: row.flag for row in diff.rows}
    assert flags == {"NEUTROPHIL": "", "LYMPHOCYTE": "", "MONOCYTE": "", "EOSINOPHIL": "H"}


def test_absolute_counts_from_the_white_cell_count() -> None:
    diff = differential(cells(neutrophil=60, lymphocyte=30, monocyte=6, eosinophil=4), wbc=7.5)
    absolute = {row.label: row.absolute for row in diff.rows}
    assert absolute == pytest.approx(
        {"NEUTROPHIL": 4.5, "LYMPHOCYTE": 2.25, "MONOCYTE": 0.45, "EOSINOPHIL": 0.3}
    )
    with pytest.raises(RejectedInput, match="white-cell count"):
        differential([], wbc=0.0)


def test_uncertain_rejected_and_pending_are_reported_not_counted() -> None:
    slide = [
        *cells(neutrophil=3),
        cell("LYMPHOCYTE", 9, uncertain=True),
        cell(None, 10),
        cell(None, 11, status=PENDING),
    ]
    diff = differential(slide)
    assert (diff.counted, diff.uncertain, diff.rejected, diff.pending) == (3, 1, 1, 1)
    assert (diff.reviewed, diff.unreviewed, diff.total, diff.basis) == (0, 6, 6, MODEL)


def test_reviewed_labels_replace_model_labels() -> None:
    review = Review("EOSINOPHIL", "Zoë", "2026-12-01T10:00:00Z")
    slide = [
        cell("NEUTROPHIL", 1, review=review),  # relabelled
        cell("LYMPHOCYTE", 2, uncertain=True, review=review),  # an uncertain cell, settled by a person
        cell(None, 3, review=Review("NOT_A_CELL", "Zoë", "2026-12-01T10:00:00Z")),  # excluded by review
        cell("NEUTROPHIL", 4),
    ]
    diff = differential(slide)
    counts = {row.label: row.count for row in diff.rows}
    assert counts == {"NEUTROPHIL": 1, "LYMPHOCYTE": 0, "MONOCYTE": 0, "EOSINOPHIL": 2}
    assert (diff.counted, diff.excluded, diff.uncertain, diff.reviewed, diff.unreviewed) == (3, 1, 0, 3, 1)
    assert diff.basis == MIXED
    assert differential(slide[:2]).basis == REVIEWED


def test_empty_slide_has_no_percentages() -> None:
    diff = differential([])
    assert diff.counted == 0
    assert all(row.percent is None and row.ci_low is None and row.flag == "" for row in diff.rows)


def test_reference_ranges_are_configurable_and_checked() -> None:
    table = as_table(parse_references("neutrophil=45-70, EOSINOPHIL=0-5"))
    assert table["NEUTROPHIL"] == (45.0, 70.0)
    assert table["LYMPHOCYTE"] == (20.0, 40.0)  # default kept
    diff = differential(cells(neutrophil=65, lymphocyte=35), references=table)
    assert diff.rows[0].flag == ""
    for bad in ("BASOPHIL=0-1", "NEUTROPHIL=60-40", "NEUTROPHIL=abc", "NEUTROPHIL=40-160"):
        with pytest.raises(ConfigurationError, match="REPORT_REFERENCE_RANGES"):
            parse_references(bad)
