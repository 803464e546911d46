"""The LiteRT classifier: loaded once per process, read entirely from its model folder.

Nothing about the model is written in code: labels, the uncertainty rule's
thresholds, the calibration temperature, the test-time views, name and version all
come from the files training ships beside ``model.tflite``.

Out of distribution: a model that ships ``ood.npz`` and an ``ood`` threshold in its metadata
also returns its penultimate embedding as a second output. The cell's distance to the training
classes in that embedding (``bloodcell.ood``) is reported with every prediction, and a cell
farther than the threshold is ``unfamiliar`` and flagged uncertain, however confident the
softmax: a lab the model never saw must not pass as confident.

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
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from bloodcell import ood
from bloodcell.contract import CONTRACT, check_model_contract
from bloodcell.errors import ConfigurationError, NoModelRuntime, RejectedInput

OTHER = "OTHER"


@dataclass(frozen=True)
class Prediction:
    label: str
    confidence: float
    probabilities: dict[str, float]
    other_probability: float | None
    uncertain: bool
    # distance to the training data in the embedding (bloodcell.ood); None for a model without one
    ood_score: float | None = None
    unfamiliar: bool = False


@dataclass(frozen=True)
class Forward:
    """One cell through the network: the view-averaged softmax and, if the model has one, embedding."""

    probabilities: np.ndarray
    embedding: np.ndarray | None


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
    ood_threshold: float | None = None  # None: the model has no out-of-distribution score
    calibration: str | None = None  # a lab's calibration of this model (the registry's version), if any


# The 8 symmetries of the square: a cell has no orientation, so each is a free ensemble member.
VIEWS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": lambda t: t,
    "flip_horizontal": lambda t: t[:, ::-1, :],
    "flip_vertical": lambda t: t[::-1, :, :],
    "rotate_180": lambda t: t[::-1, ::-1, :],
    "transpose": lambda t: t.transpose(1, 0, 2),
    "rotate_90": lambda t: t.transpose(1, 0, 2)[::-1, :, :],
    "rotate_270": lambda t: t.transpose(1, 0, 2)[:, ::-1, :],
    "anti_transpose": lambda t: t[::-1, ::-1, :].transpose(1, 0, 2),
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
    threshold = meta.get("ood", {}).get("threshold")
    return ModelInfo(
        name=str(meta["name"]),
        version=str(meta["version"]),
        outputs=outputs,
        min_top_probability=float(rule.get("min_top_probability", 0.0)),
        max_other_probability=float(rule.get("max_other_probability", 1.0)),
        metadata=meta,
        temperature=temperature,
        views=views,
        ood_threshold=None if threshold is None else float(threshold),
    )


class Classifier:
    """One LiteRT interpreter; ``predict`` is safe to call from several threads."""

    def __init__(self, model_dir: Path, threads: int = 1) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise NoModelRuntime(
                f"this installation has no model runtime ({exc.name}): run this where the predict "
                "function's packages are installed (the bloodcell package with its predict requirements)"
            ) from exc

        check_model_contract(model_dir)
        self.info = read_model_info(model_dir)
        self._interpreter = Interpreter(model_path=str(model_dir / "model.tflite"), num_threads=threads)
        self._interpreter.allocate_tensors()
        inp = self._interpreter.get_input_details()[0]
        outputs = self._interpreter.get_output_details()
        if tuple(inp["shape"][1:]) != CONTRACT.shape or np.dtype(inp["dtype"]).name != CONTRACT.dtype:
            raise ConfigurationError(
                f"model input {tuple(inp['shape'])} {inp['dtype']} does not match contract {CONTRACT.shape}"
            )
        # the converter does not keep the outputs' order: the softmax is the one as wide as labels.txt
        probs = [o for o in outputs if int(o["shape"][-1]) == len(self.info.outputs)]
        if len(probs) != 1:
            raise ConfigurationError("model output size does not match labels.txt")
        others = [o for o in outputs if o is not probs[0]]
        self._input_index = inp["index"]
        self._output_index = probs[0]["index"]
        self._embedding_index = others[0]["index"] if others else None
        self.embedding_size = int(others[0]["shape"][-1]) if others else 0
        self.ood: ood.OodModel | None = None
        if self.info.ood_threshold is not None:
            if self._embedding_index is None or not (model_dir / ood.FILE).is_file():
                raise ConfigurationError(
                    f"model at {model_dir} has an ood threshold but no embedding or {ood.FILE}"
                )
            self.ood = ood.OodModel.load(model_dir / ood.FILE)
        self._lock = threading.Lock()

    def predict(self, tensor: np.ndarray) -> Prediction:
        check_tensor(tensor)
        out = self.forward(tensor)
        return self.interpret(out.probabilities, self.ood_score(out.embedding))

    def forward(self, tensor: np.ndarray) -> Forward:
        """The softmax and the embedding, each averaged over the model's test-time views."""
        total = np.zeros(len(self.info.outputs), dtype=np.float64)
        embedding = np.zeros(self.embedding_size, dtype=np.float64)
        with self._lock:
            for view in self.info.views:
                x = np.ascontiguousarray(VIEWS[view](tensor))
                self._interpreter.set_tensor(self._input_index, x[np.newaxis])
                self._interpreter.invoke()
                total += self._interpreter.get_tensor(self._output_index)[0]
                if self._embedding_index is not None:
                    embedding += self._interpreter.get_tensor(self._embedding_index)[0]
        n = len(self.info.views)
        return Forward(total / n, embedding / n if self._embedding_index is not None else None)

    def raw(self, tensor: np.ndarray) -> np.ndarray:
        """The model's softmax averaged over its test-time views, before calibration."""
        return self.forward(tensor).probabilities

    def ood_score(self, embedding: np.ndarray | None) -> float | None:
        if self.ood is None or embedding is None:
            return None
        return round(self.ood.score(embedding), 4)

    def calibrated(self, raw: np.ndarray) -> np.ndarray:
        """Temperature scaling of softmax outputs (p ** (1/T), renormalised)."""
        if self.info.temperature == 1.0:
            return raw
        logp = np.log(np.clip(raw, 1e-12, None)) / self.info.temperature
        p = np.exp(logp - logp.max())
        out: np.ndarray = p / p.sum()
        return out

    def interpret(self, raw: np.ndarray, ood_score: float | None = None) -> Prediction:
        """Softmax outputs to the four-class answer plus the 'none of the four' flag."""
        raw = self.calibrated(np.asarray(raw, dtype=np.float64))
        n = len(CONTRACT.labels)
        cells = raw[:n]
        other = float(raw[n]) if len(raw) > n else None
        total = float(cells.sum()) or 1.0
        probs = {label: float(p) / total for label, p in zip(CONTRACT.labels, cells, strict=True)}
        top = int(np.argmax(cells))
        threshold = self.info.ood_threshold
        unfamiliar = ood_score is not None and threshold is not None and ood_score > threshold
        uncertain = (
            float(cells[top]) < self.info.min_top_probability
            or (other is not None and other > self.info.max_other_probability)
            or unfamiliar
        )
        return Prediction(
            label=CONTRACT.labels[top],
            confidence=probs[CONTRACT.labels[top]],
            probabilities=probs,
            other_probability=other,
            uncertain=bool(uncertain),
            ood_score=ood_score,
            unfamiliar=bool(unfamiliar),
        )


def check_tensor(tensor: np.ndarray) -> None:
    """The contract's shape, dtype and finite values, or RejectedInput: before any network sees it."""
    if tensor.shape != CONTRACT.shape or tensor.dtype != np.dtype(CONTRACT.dtype):
        raise RejectedInput(
            f"tensor {tensor.shape} {tensor.dtype} does not match the model input "
            f"{CONTRACT.shape} {CONTRACT.dtype}"
        )
    if not np.isfinite(tensor).all():
        raise RejectedInput("tensor holds NaN or infinite values")


@cache
def load_classifier(model_dir: Path, threads: int = 1) -> Classifier:
    """Once per process: a function instance serves many events with one interpreter."""
    return Classifier(model_dir, threads)
