"""The classifier applies what metadata.json says: test-time views and temperature, old metadata unchanged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bloodcell.errors import ConfigurationError
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
