"""Slides: one sample's cell images, i.e. one top-level folder of the upload bucket.

A slide exists as soon as an object ``<slide>/<image>`` does, however it got
there (the web app or a folder dropped into the bucket). Everything here is
rebuilt from three listings (uploads, results, review records) and a read of
each result; parsed results are cached by the result object's generation, so a
slide that does not change costs listings only.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime

from bloodcell import names
from bloodcell.errors import BloodcellError, MalformedDocument, RejectedInput
from bloodcell.results import ModelRef, Result
from bloodcell.review.records import CREATE, PREFIX, REOPEN, SIGN_OFF, parse_record_name
from bloodcell.review.state import read_record
from bloodcell.settings import Settings
from bloodcell.storage import ObjectInfo, Storage

log = logging.getLogger(__name__)

# Letters of any script (labs name samples "lame-été-3"), digits, '.', '_', '-': no space, no '/'.
_ID = re.compile(r"[^\W_][\w.-]{0,63}")  # used with fullmatch: "$" would let a newline through
# Folders that are not slides: the batch page's own uploads, and our reserved prefix.
RESERVED = ("web", PREFIX.rstrip("/"))
_TOKEN = re.compile(r"^[0-9a-f]{10}-(.+)$")
WAITING, CLASSIFIED, REJECTED = "waiting", "classified", "rejected"


class SlideIdError(RejectedInput, ValueError):
    """A slide id people typed that cannot name a folder; ``reason`` says why."""


def check_slide_id(slide: str) -> str:
    """The one rule for slide ids, for the review pages and the reports alike.

    One folder name of the upload bucket, short and plain, so it can never escape
    the bucket nor name one of the reserved folders; ``slide_of`` lists exactly
    the folders that pass it.
    """
    slide = slide.strip()
    if not _ID.fullmatch(slide):
        raise SlideIdError(
            f"{slide!r} is not a slide id: one is 1 to 64 letters, digits, '.', '_' or '-' "
            "(no spaces, no '/'), starting with a letter or digit."
        )
    if slide in RESERVED:
        raise SlideIdError(f"{slide!r} is reserved; choose another id.")
    return slide


def looks_like_a_name(slide: str) -> bool:
    """Letters only, like 'Dupont' or 'marie-curie': maybe a patient's name, which must not be an id."""
    return bool(re.fullmatch(r"[A-Za-zÀ-ÿ][A-Za-zÀ-ÿ ._-]{2,}", slide)) and not any(
        c.isdigit() for c in slide
    )


def new_slide_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"S{now:%Y%m%d}-{uuid.uuid4().hex[:6]}"


def slide_of(upload_name: str) -> str | None:
    """The slide an upload belongs to, or None for files outside any slide folder."""
    head, sep, rest = upload_name.partition("/")
    if not sep or not rest or not _ID.fullmatch(head) or head in RESERVED:
        return None
    return head


def image_name(upload_name: str) -> str:
    """What people called the image: the part after the slide, without the app's random token."""
    rest = upload_name.partition("/")[2] or upload_name
    match = _TOKEN.match(rest)
    return match.group(1) if match else rest


def upload_object_name(slide: str, original: str, token: str | None = None) -> str:
    """``<slide>/<10 hex>-<sanitised name>``: two files named ``cell.jpg`` on one slide never collide."""
    from bloodcell.web.batch import sanitise_name  # the web package imports this module

    return f"{slide}/{token or uuid.uuid4().hex[:10]}-{sanitise_name(original)}"


@dataclass(frozen=True)
class Cell:
    """One image of a slide with what the pipeline said of it (``result`` is None while waiting)."""

    upload_name: str
    generation: str
    uploaded: datetime
    result: Result | None

    @property
    def key(self) -> tuple[str, str]:
        return (self.upload_name, self.generation)

    @property
    def status(self) -> str:
        if self.result is None:
            return WAITING
        return CLASSIFIED if self.result.is_classified else REJECTED

    @property
    def label(self) -> str | None:
        return self.result.label if self.result else None

    @property
    def model(self) -> ModelRef | None:
        return self.result.model if self.result else None

    @property
    def display(self) -> str:
        return image_name(self.upload_name)


class _ResultCache:
    def __init__(self, size: int = 20_000) -> None:
        self._items: OrderedDict[tuple[str, str], Result] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, storage: Storage, info: ObjectInfo) -> Result | None:
        key = (info.name, info.generation)
        with self._lock:
            if key in self._items:
                return self._items[key]
        try:
            data, _ = storage.read(info.bucket, info.name)
            view = Result.from_json(data)
        except MalformedDocument as exc:
            log.warning("slides: result %r is not a result document: %s", info.name, exc)
            return None
        except BloodcellError as exc:
            log.warning("slides: cannot read result %r: %s", info.name, exc)
            return None
        with self._lock:
            self._items[key] = view
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return view


_results = _ResultCache()


def slide_cells(storage: Storage, settings: Settings, slide: str) -> list[Cell]:
    """The slide's images, each with its result when that result is for the image's current version."""
    prefix = f"{check_slide_id(slide)}/"
    uploads = sorted(storage.list(settings.upload_bucket, prefix=prefix), key=lambda i: (i.updated, i.name))
    found = {info.name: info for info in storage.list(settings.result_bucket, prefix=prefix)}
    cells = []
    for upload in uploads:
        info = found.get(names.result_name(upload.name))
        view = _results.get(storage, info) if info else None
        if view is not None and view.source.generation != upload.generation:
            view = None  # a result of an earlier version of this image
        cells.append(Cell(upload.name, upload.generation, upload.updated, view))
    return cells


@dataclass(frozen=True)
class SlideSummary:
    slide: str
    images: int
    finished: int
    created: datetime
    created_by: str | None
    signed_off: bool
    reviewed_actions: int

    @property
    def status(self) -> str:
        if self.signed_off:
            return "signed off"
        if self.finished < self.images:
            return "processing"
        return "in review" if self.reviewed_actions else "awaiting review"


def list_slides(storage: Storage, settings: Settings) -> list[SlideSummary]:
    """Every slide, newest first: three listings, plus one read per slide for who created it."""
    images: dict[str, list[ObjectInfo]] = {}
    for info in storage.list(settings.upload_bucket):
        if (slide := slide_of(info.name)) is not None:
            images.setdefault(slide, []).append(info)
    finished: dict[str, int] = {}
    for info in storage.list(settings.result_bucket):
        slide = slide_of(info.name)
        if slide is not None and info.name.endswith(".json"):
            finished[slide] = finished.get(slide, 0) + 1
    records: dict[str, list[tuple[str, str, str, str]]] = {}
    for info in storage.list(settings.result_bucket, prefix=PREFIX):
        parsed = parse_record_name(info.name)
        if parsed:
            records.setdefault(parsed.slide, []).append((parsed.stamp, parsed.id, parsed.action, info.name))
    summaries = []
    for slide in set(images) | {s for s in records if slide_of(f"{s}/x")}:
        own = sorted(records.get(slide, []))
        created = min((i.updated for i in images.get(slide, [])), default=None)
        creator = None
        made = [r for r in own if r[2] == CREATE]
        if made:
            record = read_record(storage, settings, made[0][3])
            if record is not None:
                creator = record.reviewer
                moment = datetime.fromisoformat(record.at.replace("Z", "+00:00"))
                created = moment if created is None else min(created, moment)
        states = [r[2] for r in own if r[2] in (SIGN_OFF, REOPEN)]
        summaries.append(
            SlideSummary(
                slide=slide,
                images=len(images.get(slide, [])),
                finished=min(finished.get(slide, 0), len(images.get(slide, []))),
                created=created or datetime.now(UTC),
                created_by=creator,
                signed_off=bool(states) and states[-1] == SIGN_OFF,
                reviewed_actions=sum(1 for r in own if r[2] not in (CREATE, SIGN_OFF, REOPEN)),
            )
        )
    summaries.sort(key=lambda s: (s.created, s.slide), reverse=True)
    return summaries
