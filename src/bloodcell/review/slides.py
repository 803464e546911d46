"""The slides list: every top-level folder of the upload bucket, with its progress and review state.

A slide exists as soon as an object ``<slide>/<image>`` does, however it got
there (the web app or a folder dropped into the bucket). Its cells are read by
``bloodcell.slides.loader``; this module adds what only the review knows (who
created it, whether it is signed off).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from bloodcell.review.records import CREATE, PREFIX, REOPEN, SIGN_OFF, parse_record_name
from bloodcell.review.state import read_record, status_of
from bloodcell.settings import Settings
from bloodcell.slides.ids import slide_of
from bloodcell.storage import ObjectInfo, Storage

log = logging.getLogger(__name__)


def looks_like_a_name(slide: str) -> bool:
    """Letters only, like 'Dupont' or 'marie-curie': maybe a patient's name, which must not be an id."""
    return bool(re.fullmatch(r"[A-Za-zÀ-ÿ][A-Za-zÀ-ÿ ._-]{2,}", slide)) and not any(
        c.isdigit() for c in slide
    )


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
        summaries.append(
            SlideSummary(
                slide=slide,
                images=len(images.get(slide, [])),
                finished=min(finished.get(slide, 0), len(images.get(slide, []))),
                created=created or datetime.now(UTC),
                created_by=creator,
                signed_off=status_of(storage, settings, [r[3] for r in own]).signed_off,
                reviewed_actions=sum(1 for r in own if r[2] not in (CREATE, SIGN_OFF, REOPEN)),
            )
        )
    summaries.sort(key=lambda s: (s.created, s.slide), reverse=True)
    return summaries
