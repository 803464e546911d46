"""A slide's review state, rebuilt from its records every time it is asked for.

Nothing is kept in memory between requests except the bytes of records already
read (records never change, so a cache of them can never be stale): a reload, a
new tab, a second reviewer or a restarted server all see the same state.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from bloodcell.bounded import BoundedCache
from bloodcell.errors import BloodcellError, PreconditionFailed
from bloodcell.review.records import (
    CELL_ACTIONS,
    CREATE,
    PATIENT,
    PREFIX,
    REOPEN,
    SIGN_OFF,
    CellRef,
    RecordError,
    ReviewRecord,
    parse_record_name,
)
from bloodcell.settings import Settings
from bloodcell.slides.cell import Amends, Patient, Review, SignOff
from bloodcell.storage import Storage

log = logging.getLogger(__name__)
_CACHE_SIZE = 20_000


@dataclass(frozen=True)
class SlideStatus:
    signed_off: bool
    by: str | None = None  # who signed it off (the latest sign-off while signed off)
    at: str | None = None


@dataclass(frozen=True)
class SlideReview:
    """Everything the records say about one slide, in order."""

    slide: str
    trail: tuple[ReviewRecord, ...]
    cells: dict[tuple[str, str], Review]
    status: SlideStatus
    created_by: str | None = None
    ignored: frozenset[str] = field(default_factory=frozenset)  # ids of cell actions made while signed off
    patient: Patient = field(default_factory=Patient)
    sign_off: SignOff | None = None  # the standing sign-off, with the version it amends if any


# parsed records by object name: records are immutable, so entries are never invalidated
_cache: BoundedCache[tuple[str, str], ReviewRecord] = BoundedCache(_CACHE_SIZE)


def slide_prefix(slide: str) -> str:
    return f"{PREFIX}{slide}/"


def write_record(storage: Storage, settings: Settings, record: ReviewRecord) -> ReviewRecord:
    """Store one action, create-only: an existing record is never replaced, whatever the backend."""
    try:
        storage.write(
            settings.result_bucket,
            record.name,
            record.to_json(),
            content_type="application/json",
            if_absent=True,
        )
    except PreconditionFailed:
        log.error("review: record %r already exists; not overwritten", record.name)
        raise
    log.info(
        "review: %s slide=%r by %r cell=%r %s->%s",
        record.action,
        record.slide,
        record.reviewer,
        record.cell.upload_name if record.cell else None,
        record.before,
        record.after,
    )
    return record


def read_trail(storage: Storage, settings: Settings, slide: str) -> tuple[ReviewRecord, ...]:
    """Every readable record of the slide, oldest first (by time, then id)."""
    records = []
    for info in storage.list(settings.result_bucket, prefix=slide_prefix(slide)):
        if parse_record_name(info.name) is None:
            log.warning("review: %r under the review prefix is not a review record; skipped", info.name)
            continue
        record = read_record(storage, settings, info.name)
        if record is not None:
            records.append(record)
    records.sort(key=lambda r: r.order)
    return tuple(records)


def replay(slide: str, trail: tuple[ReviewRecord, ...]) -> SlideReview:
    """The state the records lead to: the latest action on a cell wins; none counts while signed off.

    A sign-off after an earlier one (with a reopen between) is an amendment: it
    names the earlier version and the reason of the reopen that preceded it.
    """
    cells: dict[tuple[str, str], Review] = {}
    status = SlideStatus(False)
    created_by = None
    ignored = set()
    patient = Patient()
    signed: SignOff | None = None
    last: ReviewRecord | None = None  # the latest sign-off, standing or reopened
    reason: str | None = None  # of the latest reopen
    for record in trail:
        if record.action == CREATE and created_by is None:
            created_by = record.reviewer
        elif record.action == SIGN_OFF:
            status = SlideStatus(True, record.reviewer, record.at)
            amends = None if last is None else Amends(last.reviewer, last.at, reason)
            signed, last = SignOff(record.reviewer, record.at, record.signature, amends), record
        elif record.action == REOPEN:
            status, signed, reason = SlideStatus(False), None, record.reason
        elif record.action == PATIENT:
            patient = Patient(record.age, record.sex)
        elif record.action in CELL_ACTIONS and record.cell is not None and record.after is not None:
            if status.signed_off:
                ignored.add(record.id)  # a racing edit that reached storage after the sign-off
                continue
            key = (record.cell.upload_name, record.cell.generation)
            cells[key] = Review(record.after, record.reviewer, record.at)
    return SlideReview(slide, trail, cells, status, created_by, frozenset(ignored), patient, signed)


def slide_review(storage: Storage, settings: Settings, slide: str) -> SlideReview:
    return replay(slide, read_trail(storage, settings, slide))


def reviewed_labels(storage: Storage, settings: Settings, slide: str) -> dict[tuple[str, str], Review]:
    """Each reviewed cell's current label, keyed by (upload name, generation)."""
    return slide_review(storage, settings, slide).cells


def slide_status(storage: Storage, settings: Settings, slide: str) -> SlideStatus:
    """Signed off or not, by whom and when: from the record names alone, no reads."""
    names = [info.name for info in storage.list(settings.result_bucket, prefix=slide_prefix(slide))]
    return status_of(storage, settings, names)


def status_of(storage: Storage, settings: Settings, names: Iterable[str]) -> SlideStatus:
    """The status the latest readable sign-off or reopen gives, reading only those records.

    A record that cannot be read, or whose body does not match its name, is skipped
    here exactly as ``read_trail`` skips it, so the list, the page and the reports agree.
    """
    listed = []
    for name in names:
        parsed = parse_record_name(name)
        if parsed and parsed.action in (SIGN_OFF, REOPEN):
            listed.append((parsed.stamp, parsed.id, name))
    for _, _, name in sorted(listed, reverse=True):
        record = read_record(storage, settings, name)
        if record is not None:
            return (
                SlideStatus(True, record.reviewer, record.at)
                if record.action == SIGN_OFF
                else SlideStatus(False)
            )
    return SlideStatus(False)


def read_record(storage: Storage, settings: Settings, name: str) -> ReviewRecord | None:
    """The record stored under ``name``, or None when it is unreadable or forged.

    A record must be stored under the name its own body gives (slide, time, id,
    action): one named ``...-approve.json`` that says ``reopen`` inside is refused,
    so the name-only listings and the replayed trail can never disagree.
    """
    key = (settings.result_bucket, name)
    if (record := _cache.get(key)) is not None:
        return record
    try:
        record = ReviewRecord.from_json(storage.read(settings.result_bucket, name)[0])
    except (RecordError, BloodcellError) as exc:
        log.warning("review: cannot read %r: %s", name, exc)
        return None
    if record.name != name:
        log.warning("review: %r holds a record named %r: refused as forged", name, record.name)
        return None
    _cache.put(key, record)
    return record


__all__ = [
    "CellRef",
    "SlideReview",
    "SlideStatus",
    "read_trail",
    "replay",
    "reviewed_labels",
    "slide_review",
    "slide_status",
    "status_of",
    "write_record",
]
