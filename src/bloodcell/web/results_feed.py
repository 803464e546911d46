"""Everything the web app asks of the buckets; blocking calls, always run through ``run.io_bound``.

The app learns about progress only from objects the pipeline writes: a tensor in
the tensor bucket means "preprocessed", a result JSON means "finished". That is
the same contract any other consumer has, so polling here needs no side channel.
"""

from __future__ import annotations

import io
import logging
import threading
from dataclasses import dataclass
from functools import lru_cache

from bloodcell import results
from bloodcell.errors import BloodcellError, MalformedDocument, RejectedInput
from bloodcell.imaging import ImageLimits, decode_image
from bloodcell.names import result_name, tensor_name
from bloodcell.results import Result
from bloodcell.settings import Settings
from bloodcell.storage import ObjectInfo, Storage, check_object_name, open_storage

log = logging.getLogger(__name__)
THUMB_SIDE = 320
REVIEW_PREFIX = "_review/"  # review records share the result bucket (bloodcell.review.records.PREFIX)


def storage_for(settings: Settings) -> Storage:
    return open_storage(settings)


def store_upload(
    settings: Settings, name: str, data: bytes, content_type: str, uploader: str | None = None
) -> ObjectInfo:
    """Write one upload; ``if_absent`` so a (vanishingly unlikely) name clash never overwrites.

    The uploader goes into the object's metadata, where preprocess reads it into the result's source.
    """
    metadata = {results.META_UPLOADER: uploader} if uploader else None
    return storage_for(settings).write(
        settings.upload_bucket, name, data, content_type=content_type, metadata=metadata, if_absent=True
    )


def read_result(storage: Storage, bucket: str, name: str) -> Result | None:
    """The result stored under ``name``; None when it is gone or unreadable (logged, never raised)."""
    try:
        data, _ = storage.read(bucket, name)
        return Result.from_json(data)
    except MalformedDocument as exc:
        log.warning("result %s/%r is unreadable, skipping it: %s", bucket, name, exc)
        return None
    except BloodcellError:
        return None


@dataclass(frozen=True)
class Progress:
    tensor_exists: bool
    result: Result | None


def poll(settings: Settings, names: list[str], need_tensors: bool = True) -> dict[str, Progress]:
    """Where each upload stands, in a fixed number of calls however large the batch.

    One listing of the result bucket (and, while any file is not yet preprocessed,
    one of the tensor bucket) per folder of uploads, then a read only for results
    that have appeared. Polling every half second stays cheap on GCS and S3 too.
    """
    storage = storage_for(settings)
    # the folders of the answers: a name that could not be processed is answered in _rejected/
    answers = [result_name(name) for name in names]
    folders = sorted({name.rpartition("/")[0] + "/" if "/" in name else "" for name in answers})
    done: set[str] = set()
    tensors: set[str] = set()
    for folder in folders:
        done.update(info.name for info in storage.list(settings.result_bucket, prefix=folder))
        if need_tensors:
            tensors.update(info.name for info in storage.list(settings.tensor_bucket, prefix=folder))
    found: dict[str, Progress] = {}
    for name in names:
        result = None
        if result_name(name) in done:
            result = read_result(storage, settings.result_bucket, result_name(name))
        found[name] = Progress(tensor_exists=tensor_name(name) in tensors, result=result)
    return found


@dataclass(frozen=True)
class HistoryPage:
    items: list[Result]
    total: int
    page: int
    pages: int


def history(settings: Settings, page: int, per_page: int = 20) -> HistoryPage:
    """Past results, newest first: one listing of the result bucket, then reads for one page only."""
    storage = storage_for(settings)
    listed = [
        info
        for info in storage.list(settings.result_bucket)
        if info.name.endswith(".json") and not info.name.startswith(REVIEW_PREFIX)
    ]
    listed.sort(key=lambda info: (info.updated, info.name), reverse=True)
    pages = max(1, -(-len(listed) // per_page))
    page = min(max(1, page), pages)
    items = []
    for info in listed[(page - 1) * per_page : page * per_page]:
        result = read_result(storage, settings.result_bucket, info.name)
        if result is not None:
            items.append(result)
    return HistoryPage(items=items, total=len(listed), page=page, pages=pages)


# Decoding is the costly part (up to ImageLimits.max_decode_bytes at its peak), so
# one thumbnail is made at a time, whatever the number of requests: with the cache,
# 20 requests for the same picture cost one decode and ~one budget of memory.
DECODE_SLOTS = threading.BoundedSemaphore(1)


@lru_cache(maxsize=512)
def _thumbnail_cached(settings: Settings, name: str, generation: str) -> bytes | None:
    storage = storage_for(settings)
    limits = ImageLimits(max_bytes=settings.max_upload_bytes, max_pixels=settings.max_image_pixels)
    try:
        data, info = storage.read(settings.upload_bucket, name, max_bytes=limits.max_bytes)
        if info.generation != generation:
            return None
        image = decode_image(data, limits)
    except BloodcellError:  # RejectedInput and ObjectTooLarge included: no picture to show
        return None
    del data
    image.thumbnail((THUMB_SIDE, THUMB_SIDE))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


@dataclass(frozen=True)
class Thumbnail:
    """A thumbnail and the upload version it shows (its ETag): the same bytes for that version forever."""

    data: bytes | None
    generation: str


def thumbnail(settings: Settings, name: str) -> Thumbnail | None:
    """A small JPEG of an upload (any accepted format, TIFF included); None when the upload is absent.

    Browsers cannot show TIFF and full microscope fields are large, so the page
    never links the raw upload; decoding goes through the same guarded decoder as
    the pipeline, so a hostile file is refused here too. Made once per upload
    version (the cache key carries the generation) and only from the upload bucket.
    """
    try:
        check_object_name(name)
    except RejectedInput:
        return None
    try:
        info = storage_for(settings).stat(settings.upload_bucket, name)
    except RejectedInput:  # a folder link leading out of the bucket: nothing to show, no 500
        return None
    if info is None:
        return None
    if info.size > settings.max_upload_bytes:
        return Thumbnail(None, info.generation)
    with DECODE_SLOTS:
        return Thumbnail(_thumbnail_cached(settings, name, info.generation), info.generation)


PLACEHOLDER_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="160" height="120" viewBox="0 0 160 120">'
    '<rect width="160" height="120" fill="#eceff1"/>'
    '<text x="80" y="66" font-family="sans-serif" font-size="13" fill="#78909c" text-anchor="middle">'
    "no preview</text></svg>"
)


@lru_cache(maxsize=4)
def uncertainty_rule(settings: Settings) -> tuple[float | None, float | None]:
    """The model's thresholds (top probability, 'other' probability), to say why a cell is uncertain."""
    from bloodcell.errors import ConfigurationError
    from bloodcell.model import default_model_dir, read_model_info

    try:
        info = read_model_info(settings.model_dir or default_model_dir())
    except ConfigurationError:
        return (None, None)
    return (info.min_top_probability, info.max_other_probability)
