"""The active calibration at prediction time: one stat per event, swapped without a restart.

``ActiveModel.current()`` stats the registry's pointer; while its generation is unchanged the
cached predictor is returned, so the cost per event is one metadata request. When it changed,
the pointer is read and the named calibration loaded (once per version per process). The
caller takes one predictor at the start of an event and uses only it, so an event in flight
finishes on the version it started with, and the next event sees a new activation or a
rollback. A calibration made for another base model (the image was updated since) is not
applied: the shipped model answers, and the log says why.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from typing import Protocol

import numpy as np

from bloodcell.calibration.core import Calibration
from bloodcell.calibration.registry import Registry
from bloodcell.errors import MalformedDocument, ObjectNotFound, RejectedInput
from bloodcell.model import Classifier, ModelInfo, Prediction, check_tensor
from bloodcell.names import escape

log = logging.getLogger(__name__)


class Predictor(Protocol):
    """What the pipeline needs of a model: the shipped ``Classifier`` or a calibrated one."""

    @property
    def info(self) -> ModelInfo: ...

    def predict(self, tensor: np.ndarray) -> Prediction: ...


class CalibratedClassifier:
    """The shipped network up to its embedding, then the lab's head and out-of-distribution means."""

    def __init__(self, base: Classifier, calibration: Calibration, version: str) -> None:
        self.base = base
        self.head = calibration.head
        self.ood = calibration.extend(base.ood)
        self.info = replace(base.info, calibration=version)

    def predict(self, tensor: np.ndarray) -> Prediction:
        check_tensor(tensor)
        out = self.base.forward(tensor)
        if out.embedding is None:  # pragma: no cover - ActiveModel never builds one without it
            raise RejectedInput("the model has no embedding output")
        score = None if self.ood is None else round(self.ood.score(out.embedding), 4)
        return self.base.interpret(self.head.probabilities(out.embedding), score)


class ActiveModel:
    """The predictor the registry's pointer names, cached by the pointer's generation."""

    def __init__(self, base: Classifier, registry: Registry) -> None:
        self.base = base
        self.registry = registry
        self._lock = threading.Lock()
        self._generation: str | None = None
        self._current: Classifier | CalibratedClassifier = base
        self._loaded: dict[str, CalibratedClassifier] = {}

    def current(self) -> Classifier | CalibratedClassifier:
        try:
            generation = self.registry.pointer_generation()
        except Exception as exc:  # an unreadable registry must not stop classification
            log.warning("model registry unreadable (%s): keeping the model in use", escape(str(exc)))
            with self._lock:
                return self._current
        with self._lock:
            if generation == self._generation:
                return self._current
        pointer, info = self.registry.pointer()
        predictor = self._predictor(pointer.version)
        with self._lock:
            self._generation = None if info is None else info.generation
            self._current = predictor
        return predictor

    def _predictor(self, version: str | None) -> Classifier | CalibratedClassifier:
        if version is None:
            return self.base
        if version in self._loaded:
            return self._loaded[version]
        try:
            record = self.registry.record(version)
            calibration = self.registry.calibration(version)
        except (RejectedInput, MalformedDocument, ObjectNotFound) as exc:
            log.error("calibration %s cannot be loaded (%s): the shipped model answers", escape(version), exc)
            return self.base
        info = self.base.info
        if (record.model_name, record.model_version) != (info.name, info.version) or (
            self.base.embedding_size != calibration.head.kernel.shape[0]
        ):
            log.error(
                "calibration %s is for model %s %s, not %s %s: the shipped model answers",
                escape(version),
                escape(record.model_name),
                escape(record.model_version),
                escape(info.name),
                escape(info.version),
            )
            return self.base
        predictor = CalibratedClassifier(self.base, calibration, version)
        self._loaded[version] = predictor
        log.info(
            "calibration %s loaded for model %s %s", escape(version), escape(info.name), escape(info.version)
        )
        return predictor
