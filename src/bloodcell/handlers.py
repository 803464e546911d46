"""CloudEvent handling shared by both function entry points.

One log line per object: event id, object, model version, outcome and time.
Permanent problems with the event itself are logged and acknowledged (a retry
could never succeed); transient faults propagate so the platform redelivers. A full
disk propagates as 507 (Insufficient Storage) inside a request, so the event source
waits for space instead of counting the attempt (``errors.disk_full``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import cache
from typing import Any

from bloodcell.errors import disk_full, retryable
from bloodcell.events import ObjectRef, object_refs, received_attributes
from bloodcell.logs import configure_logging
from bloodcell.metrics import count_outcome, count_retry
from bloodcell.names import escape
from bloodcell.pipeline import Outcome, Pipeline
from bloodcell.settings import get_settings

log = logging.getLogger("bloodcell.event")


@cache
def pipeline() -> Pipeline:
    """One pipeline (clients, model) per process, reused across events."""
    settings = get_settings()
    configure_logging(settings)
    return Pipeline(settings)


def _request_headers() -> dict[str, str] | None:
    """The HTTP request's headers when called inside functions-framework (Flask), else None."""
    try:
        import flask
    except ImportError:  # pragma: no cover - functions-framework always brings Flask
        return None
    return dict(flask.request.headers) if flask.has_request_context() else None


def _insufficient_storage(exc: Exception) -> None:
    """Inside a request, answer 507 for a full disk: retried, but never counted as a failed attempt."""
    try:
        import flask
        from werkzeug.exceptions import HTTPException
    except ImportError:  # pragma: no cover - functions-framework always brings Flask
        return
    if flask.has_request_context():

        class InsufficientStorage(HTTPException):  # werkzeug names no 507
            code = 507
            description = "the disk is full: retry once space is freed"

        raise InsufficientStorage() from exc


def handle(event: Any, step: Callable[[Pipeline, ObjectRef], Outcome], stage: str) -> list[Outcome]:
    """Run one step per object the event names; ack or retry is decided here, by error type.

    Permanent faults (``RejectedInput``, ``MalformedEvent``: ``errors.PermanentError``) are
    acknowledged with one log line; anything else propagates, so the platform redelivers
    and, after its bounded attempts, dead-letters the event.
    """
    pipe = pipeline()
    attributes = received_attributes(event, _request_headers())
    event_id = escape(attributes.get("id", "-"))
    try:
        refs = object_refs(event.data)
    except Exception as exc:
        if retryable(exc):
            raise
        reason = escape(f"{type(exc).__name__}: {exc}"[:300])
        log.error("stage=%s event=%s outcome=malformed reason=%s", stage, event_id, reason)
        return []
    outcomes = []
    for ref in refs:
        started = time.perf_counter()
        # the shipped model; the calibration that answered is in the outcome's detail
        model = pipe.base_classifier.info.version if stage == "predict" else "-"
        where = escape(f"{ref.bucket}/{ref.name}")
        try:
            outcome = step(pipe, ref)
        except Exception as exc:
            if retryable(exc):
                log.warning(
                    "stage=%s event=%s object=%s generation=%s model=%s outcome=retry error=%s",
                    stage,
                    event_id,
                    where,
                    escape(str(ref.generation)),
                    model,
                    escape(f"{type(exc).__name__}: {exc}"),
                )
                count_retry(stage, time.perf_counter() - started)
                if disk_full(exc):
                    _insufficient_storage(exc)
                raise
            outcome = Outcome("ignored", getattr(exc, "reason", str(exc)))
        outcomes.append(outcome)
        count_outcome(stage, outcome.status, time.perf_counter() - started, outcome.unfamiliar)
        log.info(
            "stage=%s event=%s object=%s generation=%s model=%s outcome=%s detail=%s ms=%.1f",
            stage,
            event_id,
            where,
            escape(str(ref.generation)),
            model,
            outcome.status,
            escape(outcome.detail),
            (time.perf_counter() - started) * 1000,
        )
    return outcomes


def handle_preprocess(event: Any) -> list[Outcome]:
    return handle(event, Pipeline.preprocess, "preprocess")


def handle_predict(event: Any) -> list[Outcome]:
    return handle(event, Pipeline.predict, "predict")
