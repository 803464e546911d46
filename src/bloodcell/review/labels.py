"""The verified labels in the archive, made to equal what the trail says, whatever happened before.

The labels are training data, so they are never written from a state an action
read earlier: every action that can change them records itself first, then calls
``sync_verified``, which reads the trail again, writes exactly the labels of the
standing sign-off and deletes every other label any sign-off of the slide ever
wrote (each sign-off record lists its cells and their archive keys, so labels of
an upload overwritten or deleted since are still found). It then reads the trail
once more and starts over if a record landed meanwhile: of two actions racing on
one slide, whichever finishes last has seen every record, so the archive ends up
as the final trail says, with no lock shared between servers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bloodcell.review.records import SIGN_OFF, ReviewRecord
from bloodcell.review.state import read_trail, replay
from bloodcell.review.verified import VerifiedLabel, verified_key
from bloodcell.settings import Settings
from bloodcell.slides.categories import training_label
from bloodcell.slides.loader import load_cells
from bloodcell.storage import Storage

log = logging.getLogger(__name__)
# Passes before giving up; every pass means another action landed meanwhile, whose own sync follows.
MAX_PASSES = 8


def expected_labels(slide: str, trail: tuple[ReviewRecord, ...]) -> dict[str, VerifiedLabel]:
    """Archive key -> label: the cells the standing sign-off signed, with their verdicts as replayed."""
    state = replay(slide, trail)
    if not state.status.signed_off:
        return {}
    signing = next(r for r in reversed(trail) if r.action == SIGN_OFF)
    labels = {}
    for cell in signing.signed or ():
        review = state.cells.get(cell.key)
        if review is None or cell.archive is None:
            continue
        labels[verified_key(cell.archive)] = VerifiedLabel(
            label=training_label(review.label),
            category=review.label,
            reviewer=review.reviewer,
            verified_at=review.at,
            model_label=cell.model_label,
            model_name=cell.model.name if cell.model else None,
            model_version=cell.model.version if cell.model else None,
            source_name=cell.upload_name,
            source_generation=cell.generation,
            slide=slide,
            signed_off_by=signing.reviewer,
            signed_off_at=signing.at,
        )
    return labels


def ever_written(trail: tuple[ReviewRecord, ...]) -> set[str]:
    """Every key a sign-off of this trail may have written a label under."""
    return {
        verified_key(cell.archive)
        for record in trail
        if record.action == SIGN_OFF
        for cell in record.signed or ()
        if cell.archive is not None
    }


@dataclass(frozen=True)
class Synced:
    labels: int  # verified labels the archive holds for the slide now
    removed: int  # labels deleted because the trail no longer backs them


def sync_verified(storage: Storage, archive: Storage, settings: Settings, slide: str) -> Synced:
    """Make the slide's verified labels equal the trail's final verdicts (idempotent)."""
    seen: tuple[str, ...] | None = None
    labels = removed = 0
    for _ in range(MAX_PASSES):
        trail = read_trail(storage, settings, slide)
        ids = tuple(r.id for r in trail)
        if ids == seen:
            return Synced(labels, removed)
        seen = ids
        wanted = expected_labels(slide, trail)
        stale = ever_written(trail) | _legacy_keys(storage, settings, slide, trail)
        for key in sorted(stale - set(wanted)):
            removed += archive.delete(settings.archive_bucket, key)
        for key, label in sorted(wanted.items()):
            archive.write(settings.archive_bucket, key, label.to_json(), content_type="application/json")
        labels = len(wanted)
    log.error(
        "review: slide %r kept changing while its verified labels were synced; left to the next action", slide
    )
    return Synced(labels, removed)


def withdraw_all(storage: Storage, archive: Storage, settings: Settings, slide: str) -> int:
    """Delete every label any sign-off of the slide wrote: done before a reopen is recorded."""
    trail = read_trail(storage, settings, slide)
    keys = ever_written(trail) | _legacy_keys(storage, settings, slide, trail)
    return sum(archive.delete(settings.archive_bucket, key) for key in sorted(keys))


def _legacy_keys(
    storage: Storage, settings: Settings, slide: str, trail: tuple[ReviewRecord, ...]
) -> set[str]:
    """Sign-offs recorded before they listed their cells: the current cells' keys are the best guess."""
    if not any(r.action == SIGN_OFF and r.signed is None for r in trail):
        return set()
    return {
        verified_key(cell.result.archive.location)
        for cell in load_cells(storage, settings, slide)
        if cell.result is not None and cell.result.archive.location is not None
    }
