"""The calibration core on a synthetic lab: numpy only, no model, no images."""

from __future__ import annotations

import numpy as np
import pytest

from bloodcell.calibration import evaluate, head
from bloodcell.calibration.core import Calibration, calibrate, label_of
from bloodcell.errors import RejectedInput
from tests.support.calibration import OUTPUTS, shuffle_half, synthetic_lab


def test_wilson_interval_matches_the_textbook() -> None:
    low, high = evaluate.wilson(8, 10)
    assert (round(low, 3), round(high, 3)) == (0.490, 0.943)
    assert evaluate.wilson(0, 0) == (0.0, 1.0)


def test_sign_test_is_exact_and_one_sided() -> None:
    assert evaluate.sign_test(5, 0) == 1 / 32
    assert evaluate.sign_test(0, 0) == 1.0
    assert evaluate.sign_test(3, 3) > 0.5


def test_folds_are_stratified() -> None:
    labels = np.repeat(np.arange(4), [9, 6, 3, 12])
    folds = evaluate.stratified_folds(labels)
    for c in range(4):
        counts = np.bincount(folds[labels == c], minlength=3)
        assert counts.max() - counts.min() <= 1


def test_folder_names_in_any_case_and_others_are_other() -> None:
    assert [label_of(n) for n in ("eosinophil", "Lymphocyte", "MONOCYTE", " neutrophil ")] == list(
        OUTPUTS[:4]
    )
    assert {label_of(n) for n in ("basophil", "plaquettes", "血小板", "other")} == {"OTHER"}


def test_refitted_head_fixes_a_shifted_lab_and_the_gate_promotes_it() -> None:
    base, cells = synthetic_lab()

    candidate = calibrate(base, cells, None, "shipped")
    decision = evaluate.gate(candidate.evaluation)

    e = candidate.evaluation
    assert e.candidate_accuracy > e.active_accuracy
    assert decision.promoted and not decision.forced, decision.reasons
    assert all(decision.checks.values())
    assert len(candidate.calibration.lab_means) == 4  # white-cell classes only


def test_gate_refuses_a_calibration_from_half_shuffled_labels() -> None:
    base, cells = synthetic_lab()

    candidate = calibrate(base, shuffle_half(cells), None, "shipped")
    decision = evaluate.gate(candidate.evaluation)

    assert not decision.promoted
    assert not decision.checks["agrees_with_labels"]
    assert any("mislabelled" in reason for reason in decision.reasons)


def test_promote_forces_a_refused_candidate_and_says_so() -> None:
    base, cells = synthetic_lab()
    candidate = calibrate(base, shuffle_half(cells), None, "shipped")

    decision = evaluate.gate(candidate.evaluation, force=True)

    assert decision.promoted and decision.forced
    assert decision.reasons[-1] == "promoted anyway: --promote"


def test_a_strong_pull_keeps_the_shipped_head() -> None:
    base, cells = synthetic_lab()
    y = np.array([OUTPUTS.index(label) for label in cells.labels])

    fitted = head.fit(base.head, cells.embeddings, y, pull=1e4)

    assert np.allclose(fitted.kernel, base.head.kernel, atol=1e-3)


def test_too_few_cells_of_a_class_is_refused_with_the_counts() -> None:
    base, cells = synthetic_lab(per_class=1)

    with pytest.raises(RejectedInput, match="EOSINOPHIL \\(1\\)"):
        calibrate(base, cells, None, "shipped")


def test_calibration_round_trips_and_extends_the_ood_model() -> None:
    base, cells = synthetic_lab()
    calibration = calibrate(base, cells, None, "shipped").calibration

    again = Calibration.from_bytes(calibration.to_bytes())
    extended = again.extend(base.ood)

    assert np.allclose(again.head.kernel, calibration.head.kernel, atol=1e-5)
    assert extended is not None and base.ood is not None
    assert len(extended.means) == len(base.ood.means) + 4
    lab_cell = cells.embeddings[0]
    assert extended.score(lab_cell) <= base.ood.score(lab_cell)
