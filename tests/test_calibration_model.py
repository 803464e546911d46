"""Calibration with the real model: the command line, signed-off slides, the gate, and the predict swap.

The lab is PBC cells under a stain and camera shift (tests/support/lab.py); nothing here
assumes how good the model is on it, only what the gate and the registry must do whatever it is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bloodcell import cli
from bloodcell.calibration import service
from bloodcell.calibration.core import LabCells
from bloodcell.calibration.registry import Registry
from bloodcell.events import ObjectRef
from bloodcell.pipeline import Pipeline
from bloodcell.settings import Settings
from bloodcell.storage import LocalStorage
from tests.conftest import LAB_PER_CLASS
from tests.support.calibration import shuffle_half
from tests.support.lab import archive_verified

WHO = "Zoë 李明"


def _registry(settings: Settings) -> Registry:
    return Registry(LocalStorage(settings.data_dir), settings.model_bucket)


def test_calibrate_a_labelled_folder_from_the_command_line(
    settings: Settings, lab_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["calibrate", "--labelled", str(lab_folder), "--data-dir", str(settings.data_dir)]

    code = cli.main([*argv, "--by", WHO, "--json"])

    record = json.loads(capsys.readouterr().out)
    assert code == (0 if record["decision"]["promoted"] else 3)
    assert record["counts"] == {
        label: LAB_PER_CLASS for label in ("EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL", "OTHER")
    }
    assert record["created_by"] == WHO and record["origin"] == str(lab_folder)
    assert all("血" in name for name in record["cells"])
    evaluation = record["evaluation"]
    assert evaluation["cells"] == 5 * LAB_PER_CLASS and evaluation["panel_cells"] > 0
    assert {row["label"] for row in evaluation["per_class"]} == set(record["counts"])
    expected = record["version"] if record["decision"]["promoted"] else None
    assert _registry(settings).pointer()[0].version == expected


def test_gate_refuses_half_shuffled_labels_and_records_the_refusal(
    settings: Settings, embedded: LabCells, calibratable: Path
) -> None:
    registry = _registry(settings)

    outcome = service.run(registry, calibratable, shuffle_half(embedded), "labelled folder", "shuffled", WHO)

    assert not outcome.decision.promoted
    assert registry.pointer()[0].version is None
    assert [r.version for r in registry.versions()] == [outcome.record.version]
    [entry] = registry.audit_trail()
    assert (entry["action"], entry["version"], entry["detail"]["promoted"]) == (
        "calibrate",
        outcome.record.version,
        False,
    )


def _classify(pipe: Pipeline, local: LocalStorage, name: str, data: bytes) -> dict[str, Any]:
    info = local.write("uploads", name, data)
    pipe.preprocess(ObjectRef(info.bucket, info.name, info.generation))
    tensor = local.stat("tensors", name + ".npy")
    assert tensor is not None
    pipe.predict(ObjectRef(tensor.bucket, tensor.name, tensor.generation))
    return dict(json.loads(local.read("results", name + ".json")[0]))


def test_predict_swaps_on_activate_and_returns_on_rollback(
    settings: Settings, local: LocalStorage, embedded: LabCells, calibratable: Path, lab: list[Any]
) -> None:
    registry = _registry(settings)
    version = service.run(
        registry, calibratable, embedded, "labelled folder", "lab", WHO, force=True
    ).record.version
    registry.rollback(WHO)  # back to the shipped model before the first event
    pipe = Pipeline(settings, local, archive=local)
    image = lab[0][2]

    shipped = _classify(pipe, local, "a/été-1.jpg", image)
    registry.activate(version, WHO)
    calibrated = _classify(pipe, local, "a/été-2.jpg", image)
    registry.rollback(WHO)
    rolled_back = _classify(pipe, local, "a/été-3.jpg", image)

    assert [r["model"]["calibration"] for r in (shipped, calibrated, rolled_back)] == [None, version, None]
    assert shipped["model"]["version"] == calibrated["model"]["version"]
    assert shipped["probabilities"] == rolled_back["probabilities"]


def test_classify_with_data_dir_uses_its_active_calibration(
    settings: Settings,
    embedded: LabCells,
    calibratable: Path,
    lab_folder: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry = _registry(settings)
    version = service.run(
        registry, calibratable, embedded, "labelled folder", "lab", WHO, force=True
    ).record.version
    cell = next(lab_folder.rglob("*.jpg"))

    cli.main(["classify", str(cell), "--json", "--data-dir", str(settings.data_dir)])
    cli.main(["classify", str(cell), "--json"])

    with_data_dir, without = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert with_data_dir["model"]["calibration"] == version
    assert without["model"]["calibration"] is None


def test_calibrate_from_the_verified_labels_of_named_slides(
    settings: Settings,
    local: LocalStorage,
    lab: list[tuple[str, str, bytes]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    wanted, other = "lame été 血液-01", "другой-02"
    archive_verified(local, settings, lab, lambda i: wanted if i % 4 else other, WHO)

    code = cli.main(
        ["calibrate", "--slides", wanted, "--promote", "--json", "--data-dir", str(settings.data_dir)]
    )

    record = json.loads(capsys.readouterr().out)
    assert code == 0 and record["decision"]["promoted"]
    assert record["source"] == "slides" and record["origin"] == wanted
    assert len(record["cells"]) == len([i for i in range(len(lab)) if i % 4])
    assert all(f"/{wanted}/" in key for key in record["cells"])
    assert record["counts"]["OTHER"] > 0


def test_a_calibration_lowers_the_ood_score_of_its_own_lab(embedded: LabCells, calibratable: Path) -> None:
    from bloodcell.calibration.core import BaseModel, calibrate

    base = BaseModel.load(calibratable)
    calibration = calibrate(base, embedded, None, "shipped").calibration
    extended = calibration.extend(base.ood)
    assert base.ood is not None and extended is not None

    before = np.median(base.ood.scores(embedded.embeddings))
    after = np.median(extended.scores(embedded.embeddings))

    assert after < before
