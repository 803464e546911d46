"""What a person may do to a slide, checked here once: role, slide state, labels.

Every action becomes one create-only record (``state.write_record``). Signing
off also writes the verified labels into the archive; a failure there leaves
the sign-off recorded, and signing off again (after a reopen) rewrites them.
Reopening deletes them first, so the archive only ever holds labels of a
slide that is signed off now.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from bloodcell.errors import BloodcellError
from bloodcell.review.records import (
    APPROVE,
    CREATE,
    RECLASSIFY,
    REOPEN,
    SIGN_OFF,
    CellRef,
    ReviewRecord,
    new_record,
)
from bloodcell.review.state import slide_review, write_record
from bloodcell.review.verified import VerifiedLabel, verified_key
from bloodcell.settings import Settings
from bloodcell.slides.categories import REVIEW_LABELS, training_label
from bloodcell.slides.cell import Cell
from bloodcell.slides.ids import check_slide_id
from bloodcell.slides.loader import load_cells
from bloodcell.slides.vocabulary import CLASSIFIED, PENDING
from bloodcell.storage import Storage

log = logging.getLogger(__name__)
# The role that may review and sign off (the web's sign-in grants it; this layer only checks it).
REVIEWER = "reviewer"


class User(Protocol):
    """Whoever acts: the web's signed-in user, or a command-line operator."""

    @property
    def name(self) -> str: ...

    def has(self, role: str) -> bool: ...


class ReviewRefused(BloodcellError):
    """The action is not allowed now; ``reason`` is shown to the person as it is."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _require_reviewer(user: User) -> None:
    if not user.has(REVIEWER):
        raise ReviewRefused(f"{user.name} does not have the reviewer role.")


def create_slide(storage: Storage, settings: Settings, slide: str, user: User) -> ReviewRecord | None:
    """Record who started the slide (once); a slide dropped into the bucket simply has no such record."""
    slide = check_slide_id(slide)
    if slide_review(storage, settings, slide).created_by is not None:
        return None
    return write_record(storage, settings, new_record(slide, CREATE, user.name))


def review_cell(
    storage: Storage, settings: Settings, slide: str, cell: Cell, label: str, user: User
) -> ReviewRecord:
    """Approve (same label) or reclassify one cell; ``before`` is its label as the reviewer saw it."""
    _require_reviewer(user)
    if label not in REVIEW_LABELS:
        raise ReviewRefused(f"{label!r} is not a label a reviewer may give.")
    if cell.status == PENDING:
        raise ReviewRefused("This image has no result yet.")
    state = slide_review(storage, settings, slide)
    if state.status.signed_off:
        raise ReviewRefused("The slide is signed off: reopen it to change a label.")
    reviewed = state.cells.get(cell.key)
    before = reviewed.label if reviewed else cell.label
    action = APPROVE if before is not None and label == before else RECLASSIFY
    record = new_record(
        slide,
        action,
        user.name,
        cell=CellRef(cell.upload_name, cell.generation),
        before=before,
        after=label,
        model=cell.model,
    )
    return write_record(storage, settings, record)


@dataclass(frozen=True)
class SignOff:
    record: ReviewRecord
    verified: int  # verified labels written to the archive
    not_archived: int  # reviewed cells without an archive copy (e.g. archive still pending)


def sign_off(storage: Storage, archive: Storage, settings: Settings, slide: str, user: User) -> SignOff:
    _require_reviewer(user)
    state = slide_review(storage, settings, slide)
    if state.status.signed_off:
        raise ReviewRefused(f"Already signed off by {state.status.by}.")
    cells = load_cells(storage, settings, slide)
    if any(c.status == PENDING for c in cells):
        raise ReviewRefused("Some images are still being processed.")
    open_cells = [c for c in cells if c.status == CLASSIFIED and c.key not in state.cells]
    if open_cells:
        raise ReviewRefused(f"{len(open_cells)} classified cells are not reviewed yet.")
    if not cells:
        raise ReviewRefused("The slide holds no images.")
    record = write_record(storage, settings, new_record(slide, SIGN_OFF, user.name))
    written = missing = 0
    for cell in cells:
        reviewed = state.cells.get(cell.key)
        location = cell.result.archive.location if cell.result else None
        if reviewed is None:
            continue
        if location is None:
            missing += 1
            continue
        label = VerifiedLabel(
            label=training_label(reviewed.label),
            category=reviewed.label,
            reviewer=reviewed.reviewer,
            verified_at=reviewed.at,
            model_label=cell.label,
            model_name=cell.model.name if cell.model else None,
            model_version=cell.model.version if cell.model else None,
            source_name=cell.upload_name,
            source_generation=cell.generation,
            slide=slide,
            signed_off_by=record.reviewer,
            signed_off_at=record.at,
        )
        archive.write(
            settings.archive_bucket, verified_key(location), label.to_json(), content_type="application/json"
        )
        written += 1
    log.info(
        "review: slide %r signed off by %r: %d verified labels archived, %d without archive copy",
        slide,
        user.name,
        written,
        missing,
    )
    return SignOff(record, written, missing)


def withdraw_verified(storage: Storage, archive: Storage, settings: Settings, slide: str) -> int:
    """Delete the slide's verified labels from the archive; how many there were.

    Every cell is tried, reviewed or not (a label may stem from an older sign-off);
    a missing one is no error, so a failed reopen can simply be tried again.
    """
    removed = 0
    for cell in load_cells(storage, settings, slide):
        location = cell.result.archive.location if cell.result else None
        if location is not None and archive.delete(settings.archive_bucket, verified_key(location)):
            removed += 1
    return removed


def reopen(storage: Storage, archive: Storage, settings: Settings, slide: str, user: User) -> ReviewRecord:
    """Withdraw the verified labels, then record the reopen.

    In that order, so the archive never claims a verification that no longer
    stands: if the record cannot be written, the slide stays signed off with its
    labels withdrawn (under-claiming), and reopening again completes it.
    """
    _require_reviewer(user)
    if not slide_review(storage, settings, slide).status.signed_off:
        raise ReviewRefused("The slide is not signed off.")
    removed = withdraw_verified(storage, archive, settings, slide)
    record = write_record(storage, settings, new_record(slide, REOPEN, user.name))
    log.info("review: slide %r reopened by %r: %d verified labels withdrawn", slide, user.name, removed)
    return record
