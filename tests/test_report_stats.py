"""The one differential (bloodcell.slides) against values checked by hand, and the report's intervals."""

from __future__ import annotations

import pytest

from bloodcell.errors import ConfigurationError, RejectedInput
from bloodcell.reports.stats import interval, report_differential
from bloodcell.results import ModelRef, Result, Source, Status
from bloodcell.slides.categories import BY_KEY, CATEGORIES, REVIEW_LABELS, training_label
from bloodcell.slides.cell import Cell, Review
from bloodcell.slides.differential import differential
from bloodcell.slides.references import as_table, parse_references
from bloodcell.slides.vocabulary import MODEL, REVIEWED


def cell(
    label: str | None,
    n: int = 0,
    *,
    uncertain: bool = False,
    pending: bool = False,
    review: str | None = None,
) -> Cell:
    name = f"s/{label}-{n}.jpg"
    result = None
    if not pending:
        result = Result(
            status=Status.CLASSIFIED if label else Status.REJECTED,
            source=Source("uploads", name, str(n)),
            label=label,
            confidence=0.9 if label else None,
            uncertain=uncertain if label else None,
            reason=None if label else "no cell found",
            model=ModelRef("m", "1"),
        )
    verdict = Review(review, "Zoë", "2026-12-01T10:00:00Z") if review else None
    return Cell(name, str(n), result=result, review=verdict)


def cells(reviewed: bool = True, **counts: int) -> list[Cell]:
    return [
        cell(label.upper(), i, review=label.upper() if reviewed else None)
        for label, n in counts.items()
        for i in range(n)
    ]


@pytest.mark.parametrize(
    ("count", "total", "low", "high"),
    [
        # checked by bisection on the exact binomial tails (math.comb), not by scipy; 0/100: 1 - 0.025^(1/100)
        (0, 100, 0.0, 3.622),
        (5, 100, 1.643, 11.283),
        (50, 100, 39.832, 60.168),
        (20, 400, 3.081, 7.617),
        (100, 100, 96.378, 100.0),
        (1, 1, 2.5, 100.0),
    ],
)
def test_clopper_pearson_matches_hand_checked_values(count: int, total: int, low: float, high: float) -> None:
    assert interval(count, total) == pytest.approx((low, high), abs=0.002)


def test_interval_refuses_impossible_counts() -> None:
    with pytest.raises(ValueError):
        interval(3, 0)
    with pytest.raises(ValueError):
        interval(5, 4)


def test_percentages_intervals_and_flags_on_reviewed_counts() -> None:
    diff = report_differential(cells(neutrophil=70, lymphocyte=25, monocyte=5))
    rows = {row.label: row for row in diff.rows}
    assert diff.basis == REVIEWED and diff.counted == 100
    assert [row.label for row in diff.rows] == ["NEUTROPHIL", "LYMPHOCYTE", "MONOCYTE", "EOSINOPHIL"]
    assert rows["NEUTROPHIL"].percent == pytest.approx(70.0) and rows["NEUTROPHIL"].flag == "H"
    assert rows["LYMPHOCYTE"].flag == ""
    assert (rows["MONOCYTE"].ci_low, rows["MONOCYTE"].ci_high) == pytest.approx((1.643, 11.283), abs=0.002)
    assert rows["EOSINOPHIL"].percent == 0.0 and rows["EOSINOPHIL"].flag == "L"


def test_a_model_only_count_is_never_flagged() -> None:
    diff = report_differential(cells(reviewed=False, neutrophil=70, lymphocyte=25, monocyte=5))
    assert diff.basis == MODEL
    assert [row.flag for row in diff.rows] == ["", "", "", ""]


def test_flags_judge_the_printed_value() -> None:
    # 101 of 2500 is 4.04 %: printed "4.0 %", inside 1-4 as printed although the raw value is above 4
    slide = [*cells(eosinophil=101), *cells(neutrophil=2399)]
    diff = differential(slide, REVIEWED)
    eos = next(row for row in diff.rows if row.label == "EOSINOPHIL")
    assert eos.percent is not None and eos.percent > 4.0
    assert eos.shown == "4.0 %" and eos.flag == ""
    # and a value printed above the limit is flagged: 4.1 %
    diff = differential([*cells(eosinophil=41), *cells(neutrophil=959)], REVIEWED)
    assert next(row for row in diff.rows if row.label == "EOSINOPHIL").flag == "H"


def test_absolute_counts_from_the_white_cell_count() -> None:
    diff = report_differential(cells(neutrophil=60, lymphocyte=30, monocyte=6, eosinophil=4), wbc=7.5)
    absolute = {row.label: row.absolute for row in diff.rows}
    assert absolute == pytest.approx(
        {"NEUTROPHIL": 4.5, "LYMPHOCYTE": 2.25, "MONOCYTE": 0.45, "EOSINOPHIL": 0.3}
    )
    with pytest.raises(RejectedInput, match="white-cell count"):
        report_differential([], wbc=0.0)


def test_uncertain_rejected_and_pending_are_reported_not_counted() -> None:
    slide = [
        *cells(False, neutrophil=3),
        cell("LYMPHOCYTE", 9, uncertain=True),
        cell(None, 10),
        cell(None, 11, pending=True),
    ]
    diff = report_differential(slide)
    assert (diff.counted, diff.uncertain, diff.rejected, diff.pending) == (3, 1, 1, 1)
    assert (diff.reviewed, diff.total, diff.basis) == (0, 6, MODEL)


def test_reviewed_basis_counts_verdicts_only_and_keeps_the_rest_apart() -> None:
    slide = [
        cell("NEUTROPHIL", 1, review="EOSINOPHIL"),  # relabelled
        cell("LYMPHOCYTE", 2, uncertain=True, review="EOSINOPHIL"),  # settled by a person
        cell(None, 3, review="NOT_A_WHITE_CELL"),  # excluded by review
        cell("NEUTROPHIL", 4),  # nobody has looked yet
        cell("NEUTROPHIL", 5, review="NUCLEATED_RED_CELL"),
        cell("NEUTROPHIL", 6, review="SMUDGE"),
        cell("NEUTROPHIL", 7, review="BASOPHIL"),
    ]
    diff = differential(slide, REVIEWED)
    counts = {row.label: row.count for row in diff.rows}
    assert counts == {"NEUTROPHIL": 0, "LYMPHOCYTE": 0, "MONOCYTE": 0, "EOSINOPHIL": 2, "BASOPHIL": 1}
    assert (diff.counted, diff.unreviewed, diff.reviewed) == (3, 1, 6)
    assert diff.excluded == {"NOT_A_WHITE_CELL": 1, "SMUDGE": 1}
    assert diff.nucleated_red == 1 and diff.nucleated_red_per_100 == pytest.approx(33.33, 0.01)


def test_every_category_has_a_deliberate_training_label() -> None:
    assert len({c.shortcut for c in CATEGORIES}) == len(CATEGORIES)
    assert set(REVIEW_LABELS) == set(BY_KEY)
    assert training_label("BASOPHIL") == "BASOPHIL"  # never "not a white cell"
    assert {training_label(k) for k in ("NEUTROPHIL", "LYMPHOCYTE", "MONOCYTE", "EOSINOPHIL")} == {
        "NEUTROPHIL",
        "LYMPHOCYTE",
        "MONOCYTE",
        "EOSINOPHIL",
    }
    with pytest.raises(KeyError):
        training_label("NOT_A_CATEGORY")


def test_empty_slide_has_no_percentages() -> None:
    diff = report_differential([])
    assert diff.counted == 0
    assert all(row.percent is None and row.ci_low is None and row.flag == "" for row in diff.rows)


def test_reference_ranges_are_configurable_and_checked() -> None:
    table = as_table(parse_references("neutrophil=45-70, EOSINOPHIL=0-5"))
    assert table["NEUTROPHIL"] == (45.0, 70.0)
    assert table["LYMPHOCYTE"] == (20.0, 40.0)  # default kept
    diff = report_differential(cells(neutrophil=65, lymphocyte=35), references=table)
    assert diff.rows[0].flag == ""
    for bad in ("PLATELET=0-1", "NEUTROPHIL=60-40", "NEUTROPHIL=abc", "NEUTROPHIL=40-160"):
        with pytest.raises(ConfigurationError, match="REPORT_REFERENCE_RANGES"):
            parse_references(bad)
