"""Reclassify a slide with the active model: every cell again, from its stored tensor, old results kept.

The predictor is the one the predict function uses (``Pipeline.classifier``: the registry's
active calibration, or the shipped model), and the input is the tensor preprocess stored, so
a cell is answered exactly as a new upload would be, without decoding its image again.

A signed-off slide is refused: what was signed must not change under the signature. The
technologist reopens it (the reason goes in the trail), reclassifies, reviews what changed
and signs again, which issues an amended report naming the earlier sign-off. Reviewers'
verdicts are untouched: they are keyed by the upload's version, which a reclassification
does not change.

Order of writes: every new result is computed first, then the run's record (holding each
result it replaces) is created, then the results are replaced. A run cut short leaves its
record and some new results: nothing is lost, and running again finishes it. The archive
keeps the first answer beside its image (its folder is named by it); the result bucket holds
the current one.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from bloodcell import names, results, tensorio
from bloodcell.calibration.rerun import (
    NO_TENSOR,
    NOT_DECODED,
    PENDING,
    REPLACED,
    CellRun,
    RerunRecord,
    new_id,
    write_run,
)
from bloodcell.calibration.runtime import Predictor
from bloodcell.errors import MalformedDocument, ObjectNotFound, RejectedInput
from bloodcell.names import escape
from bloodcell.results import ModelRef, Result
from bloodcell.review.records import now_precise
from bloodcell.review.state import slide_status
from bloodcell.settings import Settings
from bloodcell.slides.ids import check_slide_id
from bloodcell.slides.loader import MAX_CELLS, SlideNotFound
from bloodcell.storage import ObjectInfo, Storage

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


class SignedSlide(RejectedInput):
    """The slide is signed off: reopen it first, so the signed version stays as it was signed."""


@dataclass(frozen=True)
class _Planned:
    cell: CellRun
    result: Result | None  # the new result to write (REPLACED only)


def active_predictor(settings: Settings, storage: Storage) -> Predictor:
    """Exactly the predictor the predict function would take for its next event."""
    from bloodcell.pipeline import Pipeline

    return Pipeline(settings, storage).classifier


def refuse_if_signed(storage: Storage, settings: Settings, slide: str) -> None:
    status = slide_status(storage, settings, slide)
    if status.signed_off:
        raise SignedSlide(
            f"slide {slide!r} is signed off (by {status.by}): reopen it first, giving the reason. The "
            "signed report stays as it was signed; signing again after review issues an amended report."
        )


def reclassify(
    storage: Storage,
    settings: Settings,
    slide: str,
    by: str,
    predictor: Predictor,
    progress: Progress | None = None,
) -> RerunRecord:
    """Re-run every cell of ``slide`` through ``predictor``; the record says what became of each."""
    slide = check_slide_id(slide)
    refuse_if_signed(storage, settings, slide)
    uploads = _uploads(storage, settings, slide)
    found = {i.name: i for i in storage.list(settings.result_bucket, prefix=f"{slide}/")}
    model = ModelRef.of(predictor.info)
    planned = []
    for done, upload in enumerate(uploads):
        planned.append(_plan(storage, settings, upload, found, predictor))
        if progress is not None:
            progress(done + 1, len(uploads))
    refuse_if_signed(storage, settings, slide)  # a sign-off that landed meanwhile wins
    run = RerunRecord(new_id(), slide, by, now_precise(), model, tuple(p.cell for p in planned))
    write_run(storage, settings, run)
    for item in planned:
        if item.result is not None:
            _write(storage, settings, item.result)
    log.info(
        "reclassify: slide %s by %s with %s %s calibration=%s: %d re-run, %d changed, %d without tensor",
        escape(slide),
        escape(by),
        escape(model.name),
        escape(model.version),
        escape(model.calibration or "none"),
        run.count(REPLACED),
        run.changed,
        run.count(NO_TENSOR),
    )
    return run


def _uploads(storage: Storage, settings: Settings, slide: str) -> list[ObjectInfo]:
    uploads = []
    for info in storage.list(settings.upload_bucket, prefix=f"{slide}/"):
        uploads.append(info)
        if len(uploads) > MAX_CELLS:
            raise RejectedInput(f"slide {slide!r} has more than {MAX_CELLS} uploads, the most one run takes")
    if not uploads:
        raise SlideNotFound(f"slide {slide!r} has no uploads")
    return sorted(uploads, key=lambda i: i.name)


def _plan(
    storage: Storage,
    settings: Settings,
    upload: ObjectInfo,
    found: dict[str, ObjectInfo],
    predictor: Predictor,
) -> _Planned:
    name, generation = upload.name, upload.generation
    info = found.get(names.result_name(name)) or storage.stat(settings.result_bucket, names.result_name(name))
    previous: dict[str, Any] | None = None
    old: Result | None = None
    if info is not None:
        try:
            previous = json.loads(storage.read(settings.result_bucket, info.name)[0])
            old = Result.from_dict(previous)
        except (ObjectNotFound, MalformedDocument, ValueError) as exc:
            log.warning("reclassify: result of %s unreadable (%s): re-run anyway", escape(name), exc)
            previous, old = None, None
    if old is not None and old.source.generation != generation:
        old = None  # a result of an earlier version of this image: this one is still pending
    if old is None:
        return _Planned(CellRun(name, generation, PENDING), None)
    if old.rejected_by == "preprocess":
        return _Planned(CellRun(name, generation, NOT_DECODED, None, None, old.model), None)
    kept = CellRun(name, generation, NO_TENSOR, old.label, None, old.model)
    tensor = _tensor(storage, settings, name, generation)
    if tensor is None:
        return _Planned(kept, None)
    data, tensor_info = tensor
    started = time.perf_counter()
    stamps = dict(old.timestamps)
    for key in ("classified", "rejected"):
        stamps.pop(key, None)
    timings = {k: v for k, v in old.timings_ms.items() if k == "preprocess"}
    try:
        prediction = predictor.predict(tensorio.load_stored(data, tensor_info.metadata))
    except RejectedInput as exc:
        stamps["rejected"] = results.now_iso()
        new = Result.rejected(old.source, exc.reason, "predict", timings, stamps, predictor.info)
    else:
        timings["inference"] = (time.perf_counter() - started) * 1000
        stamps["classified"] = results.now_iso()
        new = Result.classified(old.source, prediction, predictor.info, timings, stamps)
    new = replace(new, archive=old.archive)  # the archive copy of the image is the same image
    return _Planned(replace(kept, outcome=REPLACED, after=new.label, previous=previous), new)


def _tensor(
    storage: Storage, settings: Settings, name: str, generation: str
) -> tuple[bytes, ObjectInfo] | None:
    """The tensor preprocess stored for exactly this upload version, or None (said in the record)."""
    try:
        data, info = storage.read(settings.tensor_bucket, names.tensor_name(name))
    except ObjectNotFound:
        log.warning("reclassify: no tensor for %s: its result is kept", escape(name))
        return None
    source = results.Source.from_metadata(info.metadata)
    if source is None or source.name != name or source.generation != generation:
        log.warning("reclassify: the tensor of %s is not of its current version: result kept", escape(name))
        return None
    return data, info


def _write(storage: Storage, settings: Settings, result: Result) -> None:
    source = result.source
    current = storage.stat(source.bucket, source.name)
    if current is None or current.generation != source.generation:
        log.warning("reclassify: %s changed meanwhile: its new result is not written", escape(source.name))
        return
    storage.write(
        settings.result_bucket,
        names.result_name(source.name),
        result.to_json(),
        content_type="application/json",
        metadata=result.metadata(),
    )


__all__ = ["SignedSlide", "active_predictor", "reclassify", "refuse_if_signed"]
