"""CloudEvent handling shared by both function entry points.

One log line per object: event id, object, model version, outcome and time.
Permanent problems with the event itself are logged and acknowledged (a retry
could never succeed); transient faults propagate so the platform redelivers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import cache
from typing import Any

from bloodcell.events import MalformedEvent, ObjectRef, object_refs
from bloodcell.logs import configure_logging
from bloodcell.pipeline import Outcome, Pipeline
from bloodcell.settings import get_settings

log = logging.getLogger("bloodcell.event")


@cache
def pipeline() -> Pipeline:
    """One pipeline (clients, model) per process, reused across events."""
    settings = get_settings()
    configure_logging(settings)
    return Pipeline(settings)


def _attr(event: Any, name: str) -> str:
    try:
        return str(event[name])
    except (KeyError, TypeError):
        return "-"


def handle(event: Any, step: Callable[[Pipeline, ObjectRef], Outcome], stage: str) -> list[Outcome]:
    pipe = pipeline()
    event_id = _attr(event, "id")
    try:
        refs = object_refs(event.data)
    except MalformedEvent as exc:
        log.error("stage=%s event=%s outcome=malformed reason=%r", stage, event_id, str(exc))
        return []
    outcomes = []
    for ref in refs:
        started = time.perf_counter()
        model = pipe.classifier.info.version if stage == "predict" else "-"
        try:
            outcome = step(pipe, ref)
        except Exception as exc:
            log.warning(
                "stage=%s event=%s object=%s/%s generation=%s model=%s outcome=retry error=%r",
                stage,
                event_id,
                ref.bucket,
                ref.name,
                ref.generation,
                model,
                str(exc),
            )
            raise
        outcomes.append(outcome)
        log.info(
            "stage=%s event=%s object=%s/%s generation=%s model=%s outcome=%s detail=%r ms=%.1f",
            stage,
            event_id,
            ref.bucket,
            ref.name,
            ref.generation,
            model,
            outcome.status,
            outcome.detail,
            (time.perf_counter() - started) * 1000,
        )
    return outcomes


def handle_preprocess(event: Any) -> list[Outcome]:
    return handle(event, Pipeline.preprocess, "preprocess")


def handle_predict(event: Any) -> list[Outcome]:
    return handle(event, Pipeline.predict, "predict")
