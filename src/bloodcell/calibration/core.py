"""Fit and judge one lab's calibration from embeddings alone: no images, no network, no TensorFlow.

Inputs: the shipped model's files (``head.npz``, ``ood.npz``, ``panel.npz`` beside
``model.tflite``) and the lab's verified cells as (embedding, label) pairs. Output: a
``Calibration`` (the refitted head plus the lab's class means for the out-of-distribution
score, so the lab's own cells stop counting as unfamiliar) and its ``Evaluation``.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bloodcell import ood
from bloodcell.calibration import evaluate, head
from bloodcell.calibration.head import Head
from bloodcell.errors import ConfigurationError, RejectedInput
from bloodcell.model import OTHER, read_model_info

PANEL_FILE = "panel.npz"
WBC_CLASSES = ("EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL")
MIN_CELLS_PER_CLASS = 2  # one to fit on and one to hold out, at the very least
REPLAY_PER_CLASS = 40
PULLS = (3.0, 0.3, 0.03, 0.003)  # tried strongest first (head.fit's units)


def label_of(folder: str) -> str:
    """A folder or verified-label name as one of the model's outputs: any other name is OTHER."""
    upper = folder.strip().upper()
    return upper if upper in WBC_CLASSES else OTHER


@dataclass(frozen=True)
class BaseModel:
    """What calibration needs of the shipped model, read from its folder."""

    name: str
    version: str
    outputs: tuple[str, ...]
    head: Head
    ood: ood.OodModel | None
    panel: tuple[np.ndarray, np.ndarray] | None  # embeddings, label indices

    @classmethod
    def load(cls, model_dir: Path) -> BaseModel:
        info = read_model_info(model_dir)
        if not (model_dir / head.FILE).is_file():
            raise ConfigurationError(f"model at {model_dir} has no {head.FILE}: it cannot be calibrated")
        shipped = Head.load(model_dir / head.FILE)
        if shipped.kernel.shape[1] != len(info.outputs):
            raise ConfigurationError(
                f"{head.FILE} has {shipped.kernel.shape[1]} outputs, labels.txt {len(info.outputs)}"
            )
        panel = None
        if (model_dir / PANEL_FILE).is_file():
            with np.load(model_dir / PANEL_FILE) as data:
                panel = (np.asarray(data["embeddings"], np.float64), np.asarray(data["labels"], np.int64))
        model_ood = ood.OodModel.load(model_dir / ood.FILE) if (model_dir / ood.FILE).is_file() else None
        return cls(info.name, info.version, info.outputs, shipped, model_ood, panel)

    def index(self, label: str) -> int | None:
        return self.outputs.index(label) if label in self.outputs else None

    def split_panel(
        self,
    ) -> tuple[tuple[np.ndarray, np.ndarray] | None, tuple[np.ndarray, np.ndarray] | None]:
        """Even panel cells may be replayed in the fit, odd ones only ever judge: never both.

        The replay keeps the first ``REPLAY_PER_CLASS`` even cells of each class: enough to hold
        the boundaries where the training labs need them, few enough to keep the fit fast.
        """
        if self.panel is None:
            return None, None
        x, y = self.panel
        xr, yr = x[0::2], y[0::2]
        keep = np.sort(np.concatenate([np.flatnonzero(yr == c)[:REPLAY_PER_CLASS] for c in np.unique(yr)]))
        return (xr[keep], yr[keep]), (x[1::2], y[1::2])


@dataclass(frozen=True)
class Calibration:
    """A lab's calibration of one base model: the head applied to the embedding, and the lab's class means."""

    head: Head
    lab_means: np.ndarray  # (k, D): added to the OOD model's training class means

    def extend(self, base: ood.OodModel | None) -> ood.OodModel | None:
        if base is None or not len(self.lab_means):
            return base
        return ood.OodModel(np.vstack([base.means, self.lab_means]), base.precision)

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        arrays = self.head.to_arrays()
        np.savez(
            buf, kernel=arrays["kernel"], bias=arrays["bias"], lab_means=self.lab_means.astype(np.float32)
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Calibration:
        with np.load(io.BytesIO(data)) as arrays:
            return cls(
                Head(np.asarray(arrays["kernel"], np.float64), np.asarray(arrays["bias"], np.float64)),
                np.asarray(arrays["lab_means"], np.float64),
            )


@dataclass(frozen=True)
class LabCells:
    """The lab's verified cells as the model sees them; ``names`` say which cells they were."""

    embeddings: np.ndarray  # (N, D)
    labels: tuple[str, ...]
    names: tuple[str, ...]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for label in self.labels:
            out[label] = out.get(label, 0) + 1
        return dict(sorted(out.items()))


@dataclass(frozen=True)
class Candidate:
    calibration: Calibration
    evaluation: evaluate.Evaluation
    used: tuple[int, ...]  # which of the lab's cells were used (those the model has an output for)
    seconds: float
    pull: float  # the pull towards the shipped head the final fit used


def fit_calibration(base: BaseModel, x: np.ndarray, y: np.ndarray, pull: float = head.PULL) -> Calibration:
    replay, _ = base.split_panel()
    fitted = head.fit(base.head, x, y, replay=replay, pull=pull)
    wbc = [c for c in range(len(WBC_CLASSES)) if (y == c).any()]
    means = np.stack([x[y == c].mean(axis=0) for c in wbc]) if wbc else np.zeros((0, x.shape[1]))
    return Calibration(fitted, means)


def calibrate(
    base: BaseModel, cells: LabCells, active: Calibration | None, active_name: str, seed: int = 0
) -> Candidate:
    """The candidate fitted on all the lab's cells, judged by held-out folds against the active model."""
    started = time.perf_counter()
    pairs = [(i, base.index(label)) for i, label in enumerate(cells.labels)]
    used = tuple(i for i, k in pairs if k is not None)
    y = np.array([k for _, k in pairs if k is not None], dtype=np.int64)
    x = np.asarray(cells.embeddings, np.float64)[list(used)]
    _check_enough(base.outputs, y)
    folds = evaluate.stratified_folds(y, evaluate.FOLDS, seed)
    candidate_pred = np.zeros(len(y), dtype=np.int64)
    for fold in range(evaluate.FOLDS):
        test = folds == fold
        if test.any() and (~test).any():
            pull = choose_pull(base, x[~test], y[~test], seed)  # nested: the held-out fold plays no part
            candidate_pred[test] = fit_calibration(base, x[~test], y[~test], pull).head.predict(x[test])
    active_head = active.head if active is not None else base.head
    pull = choose_pull(base, x, y, seed)
    final = fit_calibration(base, x, y, pull)
    _, check = base.split_panel()
    panel = None
    if check is not None:
        panel = (check[1], final.head.predict(check[0]), active_head.predict(check[0]))
    evaluation = evaluate.compare(
        y, candidate_pred, active_head.predict(x), base.outputs, panel, active_name, evaluate.FOLDS
    )
    return Candidate(final, evaluation, used, time.perf_counter() - started, pull)


def choose_pull(base: BaseModel, x: np.ndarray, y: np.ndarray, seed: int) -> float:
    """The pull with the best balanced accuracy on inner held-out folds; ties go to the stronger pull.

    How far a lab is from the training labs varies: a mild shift needs the head held close to the
    shipped one, a strong shift needs it free to move. Stronger pulls are tried first, so a weaker
    one is taken only when it classifies the lab's held-out cells strictly better.
    """
    folds = evaluate.stratified_folds(y, evaluate.FOLDS, seed + 1)
    best, best_score = PULLS[0], -1.0
    for pull in PULLS:  # strongest first
        pred = np.full(len(y), -1, dtype=np.int64)
        for fold in range(evaluate.FOLDS):
            test = folds == fold
            if test.any() and (~test).any():
                pred[test] = fit_calibration(base, x[~test], y[~test], pull).head.predict(x[test])
        score = float(np.mean([np.mean(pred[y == c] == c) for c in np.unique(y)]))
        if score > best_score + 1e-9:
            best, best_score = pull, score
    return best


def _check_enough(outputs: Sequence[str], y: np.ndarray) -> None:
    counts = {outputs[k]: int((y == k).sum()) for k in range(len(WBC_CLASSES))}
    short = [f"{name} ({n})" for name, n in counts.items() if n < MIN_CELLS_PER_CLASS]
    if short:
        raise RejectedInput(
            f"too few verified cells to calibrate: at least {MIN_CELLS_PER_CLASS} of each white-cell "
            f"type are needed, and there are {', '.join(short)}"
        )
