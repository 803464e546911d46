"""The one loader: a slide's uploads, each with the result of exactly its current version.

A slide is a folder of the upload bucket, ``<slide>/<image>``, however it got there
(the web app or a folder copied into the bucket). Two listings and a read of each
result; parsed results are cached by the result object's generation, so a slide
that does not change costs listings only. Reviews are not read here (they belong to
``bloodcell.review``, a layer above): callers hand them in and they are attached.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from itertools import islice
from typing import Literal

from bloodcell import names
from bloodcell.bounded import BoundedCache
from bloodcell.errors import BloodcellError, MalformedDocument, RejectedInput
from bloodcell.results import Result
from bloodcell.settings import Settings
from bloodcell.slides.cell import Cell, Patient, Review, SignOff, Slide
from bloodcell.slides.ids import check_slide_id
from bloodcell.storage import ObjectInfo, Storage

log = logging.getLogger(__name__)

# The most uploads one slide is read with: memory and time stay bounded whatever a folder holds.
MAX_CELLS = 5000
UNREADABLE = "result document unreadable"


class SlideNotFound(RejectedInput):
    """No upload under that folder: a permanent answer, told apart so the web can say 404."""


class _ResultCache:
    def __init__(self, size: int = 20_000) -> None:
        # False: the version is unreadable, remembered as such rather than re-read every poll
        self._cache: BoundedCache[tuple[str, str, str], Result | Literal[False]] = BoundedCache(size)

    def get(self, storage: Storage, info: ObjectInfo) -> tuple[Result | None, bool]:
        """(result, readable): an unreadable document is remembered as such, not re-read every poll."""
        key = (info.bucket, info.name, info.generation)
        if (cached := self._cache.get(key)) is not None:
            return (None, False) if cached is False else (cached, True)
        try:
            data, _ = storage.read(info.bucket, info.name)
            view: Result | Literal[False] = Result.from_json(data)
        except MalformedDocument as exc:
            log.warning("slides: result %r is not a result document: %s", info.name, exc)
            view = False
        except BloodcellError as exc:  # removed between listing and reading: still pending
            log.warning("slides: cannot read result %r: %s", info.name, exc)
            return None, True
        self._cache.put(key, view)
        return (None, False) if view is False else (view, True)


_results = _ResultCache()


def load_cells(
    storage: Storage,
    settings: Settings,
    slide: str,
    reviews: Mapping[tuple[str, str], Review] | None = None,
    limit: int | None = None,
) -> list[Cell]:
    """The slide's images in upload order, each with its result when that speaks of its current version.

    ``limit`` refuses a folder holding more uploads (reports read at most ``MAX_CELLS``);
    one past it is enough to refuse, so a huge folder is never held in memory.
    """
    slide = check_slide_id(slide)
    prefix = f"{slide}/"
    listing = storage.list(settings.upload_bucket, prefix=prefix)
    uploads = list(islice(listing, limit + 1)) if limit is not None else list(listing)
    if limit is not None and len(uploads) > limit:
        raise RejectedInput(f"slide {slide!r} has more than {limit} uploads, the most one report reads")
    uploads.sort(key=lambda i: (i.updated, i.name))
    found = {info.name: info for info in storage.list(settings.result_bucket, prefix=prefix)}
    reviews = reviews or {}
    cells = []
    for upload in uploads:
        cell = Cell(upload.name, upload.generation, upload.updated)
        # an unprocessable name is answered outside the slide's folder (names.result_name)
        result_name = names.result_name(upload.name)
        info = found.get(result_name)
        if info is None and not result_name.startswith(prefix):
            info = _outside(storage, settings, result_name)
        if info is not None:
            view, readable = _results.get(storage, info)
            if not readable:
                cell = replace(cell, problem=UNREADABLE)
            elif view is not None and view.source.generation == upload.generation:
                cell = replace(cell, result=view)  # else: a result of an earlier version of this image
        review = reviews.get(cell.key)
        cells.append(replace(cell, review=review) if review is not None else cell)
    return cells


def _outside(storage: Storage, settings: Settings, name: str) -> ObjectInfo | None:
    try:
        return storage.stat(settings.result_bucket, name)
    except BloodcellError:
        return None


def load_slide(
    storage: Storage,
    settings: Settings,
    slide: str,
    reviews: Mapping[tuple[str, str], Review] | None = None,
    sign_off: SignOff | None = None,
    patient: Patient | None = None,
) -> Slide:
    """The slide for a report: every upload sorted by name, reviews attached; SlideNotFound when empty."""
    cells = load_cells(storage, settings, slide, reviews, limit=MAX_CELLS)
    if not cells:
        raise SlideNotFound(f"slide {slide!r} has no uploads")
    ordered = tuple(sorted(cells, key=lambda c: c.upload_name))
    return Slide(check_slide_id(slide), ordered, sign_off, patient or Patient())
