"""The LiteRT classifier: loaded once per process, read entirely from its model folder.

Nothing about the model is written in code: labels, the uncertainty rule's
thresholds, the calibration temperature, the test-time views, name and version all
come from the files training ships beside ``model.tflite``.

Test-time views: the softmax of each listed view of the tensor (``identity``,
``flip_horizontal``) is averaged; a cell has no orientation, so the average is a free
small ensemble. Temperature ``T`` (fitted on validation data) then recalibrates the
averaged softmax ``p`` as ``p ** (1 / T)`` renormalised, which is exactly softmax of the
logits divided by ``T`` when there is one view. Older metadata without these keys means
one view and ``T = 1``.
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
    temperature: float = 1.0
    views: tuple[str, ...] = ("identity",)


VIEWS = {
    "identity": lambda t: t,
    "flip_horizontal": lambda t: t[:, ::-1, :],
}


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
    views = tuple(str(v) for v in rule.get("views", ["identity"]))
    temperature = float(rule.get("temperature", 1.0))
    if not views or set(views) - set(VIEWS):
        raise ConfigurationError(f"model views {views} are not among {tuple(VIEWS)}")
    if not temperature > 0:
        raise ConfigurationError(f"model temperature {temperature} must be positive")
    return ModelInfo(
        name=str(meta["name"]),
        version=str(meta["version"]),
        outputs=outputs,
        min_top_probability=float(rule.get("min_top_probability", 0.0)),
        max_other_probability=float(rule.get("max_other_probability", 1.0)),
        metadata=meta,
        temperature=temperature,
        views=views,
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
        return self.interpret(self.raw(tensor))

    def raw(self, tensor: np.ndarray) -> np.ndarray:
        """The model's softmax averaged over its test-time views, before calibration."""
        total = np.zeros(len(self.info.outputs), dtype=np.float64)
        with self._lock:
            for view in self.info.views:
                x = np.ascontiguousarray(VIEWS[view](tensor))
                self._interpreter.set_tensor(self._input_index, x[np.newaxis])
                self._interpreter.invoke()
                total += self._interpreter.get_tensor(self._output_index)[0]
        return total / len(self.info.views)

    def calibrated(self, raw: np.ndarray) -> np.ndarray:
        """Temperature scaling of softmax outputs (p ** (1/T), renormalised)."""
        if self.info.temperature == 1.0:
            return raw
        logp = np.log(np.clip(raw, 1e-12, None)) / self.info.temperature
        p = np.exp(logp - logp.max())
        out: np.ndarray = p / p.sum()
        return out

    def interpret(self, raw: np.ndarray) -> Prediction:
        """Softmax outputs to the four-class answer plus the 'none of the four' flag."""
        raw = self.calibrated(np.asarray(raw, dtype=np.float64))
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
