"""Build a ``SlideReport`` from the buckets: results alone, plus review state where it exists.

A slide is a folder of the upload bucket, ``<slide>/<image>``; each image's result is
found through ``result_object`` (the one place that knows derived names). Review and
sign-off come from ``bloodcell.review`` when that package is installed; without it every
cell is unreviewed and the report stays preliminary.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from itertools import islice
from typing import Any

from bloodcell import names, results
from bloodcell.errors import BloodcellError, MalformedDocument, RejectedInput
from bloodcell.reports.model import CLASSIFIED, PENDING, REJECTED, ReportCell, Review, SignOff, SlideReport
from bloodcell.results import Result
from bloodcell.review.slides import check_slide_id
from bloodcell.settings import Settings
from bloodcell.storage import Storage

log = logging.getLogger(__name__)

# The most uploads one report reads: memory and time stay bounded whatever a folder holds.
MAX_CELLS = 5000

Reviews = Mapping[tuple[str, str], Review]


class SlideNotFound(RejectedInput):
    """No upload under that folder: a permanent answer, told apart so the web can say 404."""


def result_object(upload_name: str) -> str:
    """Where the result of an upload lives in the result bucket (the events engineer owns the rule)."""
    return names.result_name(upload_name)


def _stamp(value: Any) -> str:
    """A time as the result documents write it, whether the review layer hands a datetime or text."""
    return results.iso(value) if isinstance(value, datetime) else str(value)


def cell_from_result(upload_name: str, generation: str, data: bytes) -> ReportCell:
    """One result document as the report sees it; a document it cannot read counts as rejected."""
    try:
        result = Result.from_json(data)
    except MalformedDocument as exc:
        log.warning("result of %r is unreadable (%s); reported as rejected", upload_name, exc)
        return ReportCell(upload_name, generation, REJECTED, reason="result document unreadable")
    source = result.source
    return ReportCell(
        name=upload_name,
        generation=source.generation,
        status=CLASSIFIED if result.is_classified else REJECTED,
        label=result.label if result.is_classified else None,
        confidence=result.confidence,
        uncertain=bool(result.uncertain),
        probabilities=tuple(sorted((result.probabilities or {}).items())),
        other_probability=result.other_probability,
        reason=result.reason,
        uploader=source.uploader,
        uploaded=source.uploaded or result.timestamps.get("uploaded"),
        finished=result.finished_at,
        model_name=result.model.name if result.model else None,
        model_version=result.model.version if result.model else None,
    )


# ---- the review hook: the one place review state plugs in ----


def _review_state(storage: Storage, settings: Settings, slide: str) -> tuple[Reviews, SignOff | None]:
    """Reviewed labels and sign-off, read through ``bloodcell.review``'s two-function interface."""
    from bloodcell.review import reviewed_labels, slide_status

    reviews = {
        key: Review(label=str(r.label), reviewer=str(r.reviewer), at=_stamp(r.at))
        for key, r in reviewed_labels(storage, settings, slide).items()
    }
    state = slide_status(storage, settings, slide)
    sign_off = SignOff(by=str(state.by or "unknown"), at=_stamp(state.at or "")) if state.signed_off else None
    return reviews, sign_off


def load_slide(storage: Storage, settings: Settings, slide: str) -> SlideReport:
    """Every upload of the slide with its result (or pending), reviews applied, sorted by name."""
    slide = check_slide_id(slide)  # the review's rule: refused before any read
    # one past the limit is enough to refuse: a huge folder is never held in memory
    listing = islice(storage.list(settings.upload_bucket, prefix=f"{slide}/"), MAX_CELLS + 1)
    uploads = sorted(listing, key=lambda info: info.name)
    if not uploads:
        raise SlideNotFound(f"slide {slide!r} has no uploads")
    if len(uploads) > MAX_CELLS:
        raise RejectedInput(f"slide {slide!r} has more than {MAX_CELLS} uploads, the most one report reads")
    reviews, sign_off = _review_state(storage, settings, slide)
    listed = {info.name for info in storage.list(settings.result_bucket, prefix=f"{slide}/")}
    cells = []
    for upload in uploads:
        name = result_object(upload.name)
        cell = ReportCell(upload.name, upload.generation, PENDING)
        # an unprocessable name is answered outside the slide's folder (names.result_name)
        if name in listed or not name.startswith(f"{slide}/"):
            try:
                data, _ = storage.read(settings.result_bucket, name)
                found = cell_from_result(upload.name, upload.generation, data)
                # a result of an earlier version of the file: the new one is still on its way
                cell = found if found.generation == upload.generation else cell
            except BloodcellError:
                pass  # removed between listing and reading: still pending
        review = reviews.get((cell.name, cell.generation))
        if review is not None:
            cell = replace(cell, review=review)
        cells.append(cell)
    return SlideReport(slide=slide, cells=tuple(cells), sign_off=sign_off)
