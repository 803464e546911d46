"""The LiteRT classifier: loaded once per process, read entirely from its model folder.

Nothing about the model is written in code: labels, the uncertainty rule's
thresholds, name and version all come from the files training ships beside
``model.tflite``.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from bloodcell.contract import CONTRACT, check_model_contract
from bloodcell.errors import ConfigurationError, RejectedInput

OTHER = "OTHER"


@dataclass(frozen=True)
class Prediction:
    label: str
    confidence: float
    probabilities: dict[str, float]
    other_probability: float | None
    uncertain: bool


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    outputs: tuple[str, ...]
    min_top_probability: float
    max_other_probability: float
    metadata: dict[str, object]


def default_model_dir() -> Path:
    """The model shipped in the wheel, else the one in the source tree."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_model", here.parents[1] / "functions" / "predict" / "model"):
        if (candidate / "model.tflite").is_file():
            return candidate
    raise ConfigurationError("no model found: set MODEL_DIR to the folder holding model.tflite")


def read_model_info(model_dir: Path) -> ModelInfo:
    try:
        meta = json.loads((model_dir / "metadata.json").read_text())
        outputs = tuple(
            line.strip() for line in (model_dir / "labels.txt").read_text().splitlines() if line.strip()
        )
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read model metadata in {model_dir}: {exc}") from exc
    if outputs[: len(CONTRACT.labels)] != CONTRACT.labels or set(outputs[len(CONTRACT.labels) :]) - {OTHER}:
        raise ConfigurationError(f"model outputs {outputs} do not start with {CONTRACT.labels}")
    rule = meta.get("uncertainty", {})
    return ModelInfo(
        name=str(meta["name"]),
        version=str(meta["version"]),
        outputs=outputs,
        min_top_probability=float(rule.get("min_top_probability", 0.0)),
        max_other_probability=float(rule.get("max_other_probability", 1.0)),
        metadata=meta,
    )


class Classifier:
    """One LiteRT interpreter; ``predict`` is safe to call from several threads."""

    def __init__(self, model_dir: Path, threads: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter

        check_model_contract(model_dir)
        self.info = read_model_info(model_dir)
        self._interpreter = Interpreter(model_path=str(model_dir / "model.tflite"), num_threads=threads)
        self._interpreter.allocate_tensors()
        inp = self._interpreter.get_input_details()[0]
        out = self._interpreter.get_output_details()[0]
        if tuple(inp["shape"][1:]) != CONTRACT.shape or np.dtype(inp["dtype"]).name != CONTRACT.dtype:
            raise ConfigurationError(
                f"model input {tuple(inp['shape'])} {inp['dtype']} does not match contract {CONTRACT.shape}"
            )
        if int(out["shape"][-1]) != len(self.info.outputs):
            raise ConfigurationError("model output size does not match labels.txt")
        self._input_index = inp["index"]
        self._output_index = out["index"]
        self._lock = threading.Lock()

    def predict(self, tensor: np.ndarray) -> Prediction:
        if tensor.shape != CONTRACT.shape or tensor.dtype != np.dtype(CONTRACT.dtype):
            raise RejectedInput(
                f"tensor {tensor.shape} {tensor.dtype} does not match the model input "
                f"{CONTRACT.shape} {CONTRACT.dtype}"
            )
        if not np.isfinite(tensor).all():
            raise RejectedInput("tensor holds NaN or infinite values")
        with self._lock:
            self._interpreter.set_tensor(self._input_index, tensor[np.newaxis])
            self._interpreter.invoke()
            raw = np.array(self._interpreter.get_tensor(self._output_index)[0], dtype=np.float64)
        return self.interpret(raw)

    def interpret(self, raw: np.ndarray) -> Prediction:
        """Softmax outputs to the four-class answer plus the 'none of the four' flag."""
        n = len(CONTRACT.labels)
        cells = raw[:n]
        other = float(raw[n]) if len(raw) > n else None
        total = float(cells.sum()) or 1.0
        probs = {label: float(p) / total for label, p in zip(CONTRACT.labels, cells, strict=True)}
        top = int(np.argmax(cells))
        uncertain = float(cells[top]) < self.info.min_top_probability or (
            other is not None and other > self.info.max_other_probability
        )
        return Prediction(
            label=CONTRACT.labels[top],
            confidence=probs[CONTRACT.labels[top]],
            probabilities=probs,
            other_probability=other,
            uncertain=bool(uncertain),
        )


@cache
def load_classifier(model_dir: Path, threads: int = 1) -> Classifier:
    """Once per process: a function instance serves many events with one interpreter."""
    return Classifier(model_dir, threads)
