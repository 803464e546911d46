"""The classifier applies what metadata.json says: test-time views and temperature, old metadata unchanged."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from bloodcell.errors import ConfigurationError, NoModelRuntime
from bloodcell.imaging import ImageLimits
from bloodcell.model import Classifier
from bloodcell.pipeline import make_tensor


def _copy(model_dir: Path, tmp_path: Path, **rule: object) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    meta = json.loads((folder / "metadata.json").read_text())
    meta["uncertainty"] = {**meta.get("uncertainty", {}), **rule}
    (folder / "metadata.json").write_text(json.dumps(meta))
    return folder


def test_two_views_make_a_cell_and_its_mirror_image_classify_alike(
    model_dir: Path, tmp_path: Path, cell_jpeg: bytes
) -> None:
    clf = Classifier(_copy(model_dir, tmp_path, views=["identity", "flip_horizontal"], temperature=1.0))
    x = make_tensor(cell_jpeg, ImageLimits())

    a, b = clf.raw(x), clf.raw(np.ascontiguousarray(x[:, ::-1, :]))

    assert np.allclose(a, b, atol=1e-6)
    assert a.sum() == pytest.approx(1.0, abs=1e-5)


def test_temperature_above_one_softens_without_changing_the_answer(
    model_dir: Path, tmp_path: Path, cell_jpeg: bytes
) -> None:
    x = make_tensor(cell_jpeg, ImageLimits())
    sharp = Classifier(_copy(model_dir, tmp_path / "a", temperature=1.0, views=["identity"])).predict(x)
    soft = Classifier(_copy(model_dir, tmp_path / "b", temperature=2.0, views=["identity"])).predict(x)

    assert soft.label == sharp.label
    assert soft.confidence < sharp.confidence
    assert sum(soft.probabilities.values()) == pytest.approx(1.0)


@pytest.mark.parametrize("rule", [{"views": ["rotate_37"]}, {"temperature": 0}, {"views": []}])
def test_a_model_folder_asking_for_an_unknown_view_or_a_bad_temperature_is_refused(
    model_dir: Path, tmp_path: Path, rule: dict[str, object]
) -> None:
    with pytest.raises(ConfigurationError):
        Classifier(_copy(model_dir, tmp_path, **rule))


def test_the_shipped_model_scores_how_unfamiliar_a_cell_is(model_dir: Path, datasets: Path) -> None:
    """A white cell from the training labs is familiar; a picture of nothing like a smear is not."""
    clf = Classifier(model_dir)
    cell = make_tensor((datasets / "pbc/wbc/neutrophil/BNE_101007.jpg").read_bytes(), ImageLimits())
    noise = np.random.default_rng(3).random(cell.shape, dtype=np.float32)

    familiar, strange = clf.predict(cell), clf.predict(noise)

    assert clf.info.ood_threshold is not None and clf.embedding_size > 0
    assert familiar.ood_score is not None and strange.ood_score is not None
    assert not familiar.unfamiliar and familiar.ood_score < clf.info.ood_threshold
    assert strange.unfamiliar and strange.uncertain
    assert strange.ood_score > 2 * familiar.ood_score


def test_the_head_shipped_for_calibration_is_the_models_own_output_layer(
    model_dir: Path, tmp_path: Path, cell_jpeg: bytes
) -> None:
    """softmax(embedding @ kernel + bias) reproduces the network: a lab's calibration starts exactly there."""
    clf = Classifier(_copy(model_dir, tmp_path, views=["identity"]))
    out = clf.forward(make_tensor(cell_jpeg, ImageLimits()))
    assert out.embedding is not None
    with np.load(model_dir / "head.npz") as head:
        logits = out.embedding @ head["kernel"] + head["bias"]

    softmax = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()

    assert np.allclose(softmax, out.probabilities, atol=1e-4)


def test_a_model_with_an_ood_threshold_but_no_statistics_is_refused(model_dir: Path, tmp_path: Path) -> None:
    folder = _copy(model_dir, tmp_path)
    (folder / "ood.npz").unlink()

    with pytest.raises(ConfigurationError, match="ood"):
        Classifier(folder)


def test_the_eight_views_are_the_eight_symmetries_of_the_square() -> None:
    from bloodcell.model import VIEWS

    t = np.arange(2 * 2 * 1, dtype=np.float32).reshape(2, 2, 1)

    seen = {tuple(np.ascontiguousarray(view(t)).ravel()) for view in VIEWS.values()}

    assert len(VIEWS) == 8 and len(seen) == 8  # all distinct: no view repeats another


def test_a_process_without_litert_is_told_where_the_model_runs(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: the web app's image has no LiteRT (None in sys.modules makes the import fail)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)

    # Act
    with pytest.raises(NoModelRuntime) as raised:
        Classifier(model_dir)

    # Assert
    assert "ai_edge_litert" in str(raised.value) and "predict function" in str(raised.value)
