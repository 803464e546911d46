"""The evaluation tools behind the model card: intervals, calibration, the flag rule, leakage, archive input.

Pure functions on small made-up inputs, plus one leakage check on real data (TEST_SIMPLE against
Kaggle TRAIN), so a wrong statistic cannot hide behind the figures it produces.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "training"))

import archive  # noqa: E402
import leakage  # noqa: E402
import stats  # noqa: E402
from calibrate import choose_thresholds, flags  # noqa: E402
from splits import OUTPUTS, kaggle_items  # noqa: E402


def test_bootstrap_resamples_source_cells_not_copies() -> None:
    # 10 cells, 50 copies each; 7 right, 3 wrong: the interval is that of 10 draws, not of 500
    correct = np.repeat([1.0] * 7 + [0.0] * 3, 50)
    gid = np.repeat(np.arange(10), 50)
    lo, hi = stats.ratio_ci(correct, np.ones_like(correct), gid)
    per_image_lo, per_image_hi = stats.ratio_ci(correct, np.ones_like(correct), np.arange(500))
    assert lo <= 0.5 and hi >= 0.9
    assert hi - lo > 3 * (per_image_hi - per_image_lo)


def test_ece_is_zero_when_confidence_matches_accuracy_and_large_when_overconfident() -> None:
    conf = np.full(1000, 0.8)
    right = (np.arange(1000) % 5 != 0).astype(float)  # 80 % right
    assert stats.ece(conf, right) == pytest.approx(0.0, abs=1e-9)
    assert stats.ece(np.full(1000, 0.99), right) == pytest.approx(0.19, abs=1e-3)


def test_risk_coverage_keeps_the_most_confident_first() -> None:
    score = np.array([0.9, 0.8, 0.7, 0.6])
    correct = np.array([1.0, 1.0, 0.0, 0.0])
    curve = dict(stats.risk_coverage(score, correct, points=3))
    assert curve[0.5] == 1.0 and curve[1.0] == 0.5


def test_temperature_fit_softens_an_overconfident_model() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 2000)
    logits = rng.normal(size=(2000, 5))
    logits[np.arange(2000), labels] += 1.0  # right ~55 % of the time...
    probs = stats.scale(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), 0.5)  # ...shown twice as sharp
    t = stats.fit_temperature(probs, labels)
    assert 1.7 <= t <= 2.3
    assert np.allclose(stats.scale(probs, 1.0), probs)


def test_rule_keeps_the_white_cell_flag_budget_and_catches_other_cells() -> None:
    rng = np.random.default_rng(1)
    n = 400
    wbc = np.zeros((n, 5))
    labels = rng.integers(0, 4, n)
    wbc[np.arange(n), labels] = rng.uniform(0.6, 1.0, n)
    wrong = rng.random(n) < 0.05  # a few low-confidence mistakes
    wbc[wrong, labels[wrong]] = 0.3
    wbc[wrong, (labels[wrong] + 1) % 4] = 0.55
    other = np.zeros((100, 5))
    other[:, 4] = rng.uniform(0.3, 0.9, 100)
    other[:, 0] = 1 - other[:, 4]
    probs = np.concatenate([wbc, wbc, other])
    all_labels = np.concatenate([labels, labels, np.full(100, 4)])
    sources = ["kaggle"] * n + ["pbc"] * n + ["pbc-other"] * 100
    rule = choose_thresholds(probs, all_labels, sources)
    f = flags(probs, rule["min_top_probability"], rule["max_other_probability"])
    assert f[:n].mean() <= 0.07 and f[n : 2 * n].mean() <= 0.07
    assert f[2 * n :].mean() >= 0.96
    assert rule["val_pbc_selective_accuracy"] == 1.0  # the low-confidence mistakes are the ones flagged


def test_dhash_finds_a_reencoded_brightened_copy_and_not_another_cell(datasets: Path, tmp_path: Path) -> None:
    a, b = kaggle_items(datasets, "TRAIN")[0].path, kaggle_items(datasets, "TRAIN")[-1].path
    bright = ImageEnhance.Brightness(Image.open(a).convert("RGB")).enhance(1.15)
    copy = bright.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    copy_path = tmp_path / "copy.jpeg"
    copy.save(copy_path, "JPEG", quality=60)
    d = leakage.nearest(leakage.hashes([copy_path, b], flips=True), leakage.hashes([a]))
    assert d[0] <= leakage.NEAR_DUPLICATE_BITS < d[1]


def test_no_test_simple_image_is_a_near_copy_of_a_train_image(datasets: Path) -> None:
    report = leakage.check(
        [it.path for it in kaggle_items(datasets, "TEST_SIMPLE")],
        [it.path for it in kaggle_items(datasets, "TRAIN")],
    )
    assert report["test_images"] == 71
    assert report["near_duplicates"] == 0, report["examples"]


def _archived(root: Path, name: str, verified: object | None, result: bool = True) -> Path:
    folder = root / "2026-12-01" / "MONOCYTE" / "1733000000"
    folder.mkdir(parents=True, exist_ok=True)
    image = folder / name
    Image.new("RGB", (32, 32), (200, 150, 200)).save(image)
    if result:
        (folder / f"{name}.json").write_text(json.dumps({"label": "MONOCYTE"}))
    if verified is not None:
        (folder / f"{name}.verified.json").write_text(json.dumps(verified))
    return image


def test_archive_takes_only_person_verified_labels(tmp_path: Path) -> None:
    ok = {"label": "LYMPHOCYTE", "reviewer": "dr. Lefèvre", "verified_at": "2026-12-01T10:00:00Z"}
    taken = _archived(tmp_path, "cellule-é.png", ok)
    _archived(tmp_path, "unreviewed.png", None)
    _archived(tmp_path, "no-reviewer.png", {"label": "MONOCYTE", "verified_at": "2026-12-01"})
    _archived(tmp_path, "bad-label.png", {**ok, "label": "BASOPHIL"})
    _archived(tmp_path, "no-result.png", ok, result=False)

    items = archive.archive_items([tmp_path])

    assert [it.path for it in items] == [taken]
    assert items[0].label == OUTPUTS.index("LYMPHOCYTE")  # the person's label, not the folder's
    assert items[0].source == "archive"
