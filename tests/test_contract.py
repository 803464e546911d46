"""The tensor contract: what preprocess writes is what the shipped model takes, and a model trained
for another contract is refused at start-up rather than fed tensors it would misread."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bloodcell.contract import CONTRACT, check_model_contract
from bloodcell.errors import ConfigurationError
from bloodcell.imaging import ImageLimits
from bloodcell.model import Classifier
from bloodcell.pipeline import make_tensor


def test_preprocess_output_matches_the_shipped_models_input(cell_jpeg: bytes, model_dir: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model_dir / "model.tflite"))
    expected = interpreter.get_input_details()[0]

    tensor = make_tensor(cell_jpeg, ImageLimits())

    assert (1, *tensor.shape) == tuple(expected["shape"])
    assert tensor.dtype == np.dtype(expected["dtype"])
    assert float(tensor.min()) >= 0.0 and float(tensor.max()) <= 255 * CONTRACT.scale


def test_the_shipped_model_was_trained_for_this_contract(model_dir: Path) -> None:
    assert check_model_contract(model_dir) == CONTRACT


@pytest.mark.parametrize(
    ("field", "value"),
    [("version", "0"), ("height", 128), ("labels", ["NEUTROPHIL", "EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE"])],
)
def test_a_model_for_another_contract_is_refused(
    tmp_path: Path, model_dir: Path, field: str, value: object
) -> None:
    other = tmp_path / "model"
    shutil.copytree(model_dir, other)
    contract = json.loads((other / "contract.json").read_text())
    contract[field] = value
    (other / "contract.json").write_text(json.dumps(contract))

    with pytest.raises(ConfigurationError, match="contract"):
        Classifier(other)
