"""What a person may do to a slide, checked here once: role, slide state, labels.

Every action becomes one create-only record (``state.write_record``). The
verified labels in the archive are then synced to the trail (``labels``): they
are never written from a state read before the record, so they always equal
the trail's final verdicts, whatever ran at the same time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from bloodcell.errors import BloodcellError
from bloodcell.review.labels import sync_verified, withdraw_all
from bloodcell.review.records import (
    APPROVE,
    CREATE,
    PATIENT,
    RECLASSIFY,
    REOPEN,
    SEXES,
    SIGN_OFF,
    CellRef,
    ReviewRecord,
    SignedCell,
    new_record,
)
from bloodcell.review.state import slide_review, slide_status, write_record
from bloodcell.settings import Settings
from bloodcell.slides.categories import REVIEW_LABELS
from bloodcell.slides.cell import Cell
from bloodcell.slides.ids import check_slide_id
from bloodcell.slides.loader import load_cells
from bloodcell.slides.vocabulary import CLASSIFIED, PENDING
from bloodcell.storage import Storage

log = logging.getLogger(__name__)
# The role that may review and sign off (the web's sign-in grants it; this layer only checks it).
REVIEWER = "reviewer"
MAX_REASON = 500


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
    storage: Storage,
    settings: Settings,
    slide: str,
    cell: Cell,
    label: str,
    user: User,
    *,
    archive: Storage | None = None,
) -> ReviewRecord:
    """Approve (same label) or reclassify one cell; ``before`` is its label as the reviewer saw it.

    With ``archive``, a verdict that finds the slide signed off once it is stored
    (a sign-off won the race) brings the verified labels in line with the trail.
    """
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
    write_record(storage, settings, record)
    if archive is not None and slide_status(storage, settings, slide).signed_off:
        sync_verified(storage, archive, settings, slide)  # a sign-off landed between the check and the record
    return record


@dataclass(frozen=True)
class SignOff:
    record: ReviewRecord
    verified: int  # verified labels the archive holds for the slide now
    not_archived: int  # signed cells without an archive copy (e.g. archive still pending)


def sign_off(
    storage: Storage, archive: Storage, settings: Settings, slide: str, user: User, *, signature: str
) -> SignOff:
    """Record the sign-off with the cells it signs, then bring the archive's labels in line with the trail.

    ``signature`` says how the caller re-authenticated the signer (``records.PASSWORD``
    after checking the password again, or why that was not possible); it goes in the trail.

    The labels come from the trail as read after the record is stored, never from
    the state checked before it: a verdict that lands in between is in both.
    """
    _require_reviewer(user)
    if not signature.strip():
        raise ReviewRefused("Signing off needs the signer's re-authentication.")
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
    signed = tuple(
        SignedCell(
            cell.upload_name,
            cell.generation,
            cell.result.archive.location if cell.result else None,
            cell.label,
            cell.model,
        )
        for cell in cells
        if cell.status != PENDING
    )
    record = write_record(
        storage, settings, new_record(slide, SIGN_OFF, user.name, signed=signed, signature=signature)
    )
    synced = sync_verified(storage, archive, settings, slide)
    missing = sum(1 for c in signed if c.archive is None and c.key in state.cells)
    log.info(
        "review: slide %r signed off by %r: %d verified labels archived, %d without archive copy",
        slide,
        user.name,
        synced.labels,
        missing,
    )
    return SignOff(record, synced.labels, missing)


def reopen(
    storage: Storage, archive: Storage, settings: Settings, slide: str, user: User, *, reason: str
) -> ReviewRecord:
    """Withdraw the verified labels, record the reopen with its reason, then sync.

    Synced after the record because a sign-off racing it may still be writing labels.

    Withdrawn first, so the archive never claims a verification that no longer
    stands: if the record cannot be written, the slide stays signed off with its
    labels withdrawn (under-claiming), and reopening again completes it.
    """
    _require_reviewer(user)
    reason = " ".join(reason.split())
    if not reason:
        raise ReviewRefused(
            "Say why the slide is reopened: the reason goes in the trail and the amended report."
        )
    if len(reason) > MAX_REASON:
        raise ReviewRefused(f"Keep the reason under {MAX_REASON} characters.")
    if not slide_review(storage, settings, slide).status.signed_off:
        raise ReviewRefused("The slide is not signed off.")
    removed = withdraw_all(storage, archive, settings, slide)
    record = write_record(storage, settings, new_record(slide, REOPEN, user.name, reason=reason))
    removed += sync_verified(storage, archive, settings, slide).removed
    log.info("review: slide %r reopened by %r: %d verified labels withdrawn", slide, user.name, removed)
    return record


def set_patient(
    storage: Storage, settings: Settings, slide: str, user: User, age: int | None, sex: str | None
) -> ReviewRecord:
    """Record the patient's age and sex (either may be unknown): they choose the reference ranges."""
    _require_reviewer(user)
    if slide_review(storage, settings, slide).status.signed_off:
        raise ReviewRefused("The slide is signed off: reopen it to change the patient's details.")
    if age is not None and not 0 <= age <= 130:
        raise ReviewRefused("Give the age in whole years, 0 to 130.")
    if sex is not None and sex not in SEXES:
        raise ReviewRefused("Sex is F or M, or not given.")
    return write_record(storage, settings, new_record(slide, PATIENT, user.name, age=age, sex=sex))
