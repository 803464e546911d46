"""Verified labels always equal the trail: sign-off, reopen, verdicts, overwritten and deleted uploads, races.

Each race is driven at an exact point through ``HookedStorage`` (or threads
waiting on events), never by sleeping, so every run takes the same interleaving.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from bloodcell.names import result_name
from bloodcell.results import ArchiveStatus, Result
from bloodcell.review import actions, slides, state
from bloodcell.review.records import PASSWORD, REOPEN, SIGN_OFF, new_record
from bloodcell.review.verified import SUFFIX, VerifiedLabel
from bloodcell.settings import Settings
from bloodcell.slides.categories import training_label
from bloodcell.slides.cell import Cell
from bloodcell.slides.loader import load_cells
from bloodcell.storage import LocalStorage, Storage
from bloodcell.web.auth import REVIEWER, USER, User
from tests.support.report_slides import Spec, write_slide
from tests.support.storage import HookedStorage

ANNE = User("anne", frozenset({USER, REVIEWER}))
BRUNO = User("bruno", frozenset({USER, REVIEWER}))
SLIDE = "HEM-9"


def _put(storage: Storage, archive: Storage, settings: Settings, name: str, label: str, data: bytes) -> None:
    """One upload with its classified result and its archive copy, as the pipeline leaves them."""
    write_slide(storage, settings, SLIDE, [Spec(label, name=name)], [data])
    key = result_name(f"{SLIDE}/{name}")
    result = Result.from_json(storage.read(settings.result_bucket, key)[0])
    location = f"archive/2026-12-01/{label}/{result.source.generation}/{SLIDE}/{name}"
    archive.write(settings.archive_bucket, location, data)
    stored = result.with_archive(ArchiveStatus.STORED, location)
    storage.write(settings.result_bucket, key, stored.to_json(), content_type="application/json")


def _slide(local: LocalStorage, settings: Settings) -> list[Cell]:
    for i, label in enumerate(("NEUTROPHIL", "LYMPHOCYTE", "MONOCYTE")):
        _put(local, local, settings, f"cell-{i}.jpg", label, f"image {i}".encode())
    return load_cells(local, settings, SLIDE)


def _approve_all(local: LocalStorage, settings: Settings, who: User = ANNE) -> None:
    for cell in load_cells(local, settings, SLIDE):
        if cell.label is not None:
            actions.review_cell(local, settings, SLIDE, cell, cell.label, who)


def archived_labels(archive: Storage, settings: Settings) -> dict[tuple[str, str], str]:
    """What the archive claims: (upload, generation) -> verified training label."""
    found = {}
    for info in archive.list(settings.archive_bucket):
        if info.name.endswith(SUFFIX):
            label = VerifiedLabel.from_json(archive.read(settings.archive_bucket, info.name)[0])
            found[(label.source_name, label.source_generation)] = label.label
    return found


def trail_verdicts(storage: Storage, settings: Settings) -> dict[tuple[str, str], str]:
    """What the trail says: nothing unless signed off; else each signed cell's final verdict."""
    review = state.slide_review(storage, settings, SLIDE)
    if not review.status.signed_off:
        return {}
    signing = [r for r in review.trail if r.action == SIGN_OFF][-1]
    return {
        c.key: training_label(review.cells[c.key].label)
        for c in signing.signed or ()
        if c.key in review.cells and c.archive is not None
    }


def _agree(local: LocalStorage, settings: Settings) -> dict[tuple[str, str], str]:
    claimed = archived_labels(local, settings)
    assert claimed == trail_verdicts(local, settings)
    return claimed


def test_overwritten_and_deleted_uploads_leave_no_label_behind_after_a_reopen(
    settings: Settings, local: LocalStorage
) -> None:
    cells = _slide(local, settings)
    _approve_all(local, settings)
    actions.sign_off(local, local, settings, SLIDE, ANNE, signature=PASSWORD)
    assert len(_agree(local, settings)) == 3
    _put(local, local, settings, "cell-0.jpg", "EOSINOPHIL", b"a different picture")  # overwritten
    local.delete(settings.upload_bucket, cells[1].upload_name)  # deleted

    actions.reopen(local, local, settings, SLIDE, BRUNO, reason="a second look")

    assert _agree(local, settings) == {}
    _approve_all(local, settings, BRUNO)
    actions.sign_off(local, local, settings, SLIDE, BRUNO, signature=PASSWORD)
    now = load_cells(local, settings, SLIDE)
    assert _agree(local, settings) == {c.key: str(c.label) for c in now}
    assert cells[0].key not in archived_labels(local, settings)


def test_a_reopen_while_sign_off_writes_labels_leaves_none(settings: Settings, local: LocalStorage) -> None:
    _slide(local, settings)
    _approve_all(local, settings)
    writes: list[str] = []

    def reopen_after_the_first_label(op: str, bucket: str, name: str) -> None:
        if op == "write" and name.endswith(SUFFIX):
            writes.append(name)
            if len(writes) == 1:
                actions.reopen(local, local, settings, SLIDE, BRUNO, reason="a second look")

    hooked = HookedStorage(local, reopen_after_the_first_label)
    actions.sign_off(local, hooked, settings, SLIDE, ANNE, signature=PASSWORD)

    assert state.slide_status(local, settings, SLIDE) == state.SlideStatus(False)
    assert len(writes) >= 2  # the sign-off went on writing after the reopen, then took it all back
    assert _agree(local, settings) == {}


def test_a_verdict_between_the_sign_offs_state_read_and_its_record_is_in_both(
    settings: Settings, local: LocalStorage
) -> None:
    cells = _slide(local, settings)
    _approve_all(local, settings)
    neutrophil = next(c for c in cells if c.label == "NEUTROPHIL")
    fired: list[str] = []

    def verdict_after_the_state_read(op: str, bucket: str, name: str) -> None:
        if op == "list" and name == f"_review/{SLIDE}/" and not fired:
            fired.append(name)
            actions.review_cell(local, settings, SLIDE, neutrophil, "LYMPHOCYTE", BRUNO)

    actions.sign_off(
        HookedStorage(local, verdict_after_the_state_read), local, settings, SLIDE, ANNE, signature=PASSWORD
    )

    review = state.slide_review(local, settings, SLIDE)
    assert fired and review.cells[neutrophil.key].label == "LYMPHOCYTE" and not review.ignored
    assert _agree(local, settings)[neutrophil.key] == "LYMPHOCYTE"


def test_a_verdict_stored_after_a_sign_off_it_raced_changes_nothing(
    settings: Settings, local: LocalStorage
) -> None:
    cells = _slide(local, settings)
    _approve_all(local, settings)
    late = cells[0]
    signed: list[object] = []

    def sign_off_before_the_verdicts_record(op: str, bucket: str, name: str) -> None:
        if op == "list" and name == f"_review/{SLIDE}/" and not signed:
            signed.append(actions.sign_off(local, local, settings, SLIDE, ANNE, signature=PASSWORD))

    # the verdict checked the slide (open), then the sign-off ran to its end, then the verdict was stored
    actions.review_cell(
        HookedStorage(local, sign_off_before_the_verdicts_record),
        settings,
        SLIDE,
        late,
        "UNUSABLE",
        BRUNO,
        archive=local,
    )

    assert signed and state.slide_review(local, settings, SLIDE).ignored
    assert _agree(local, settings)[late.key] == late.label


def test_reopen_racing_a_sign_off_on_another_thread(settings: Settings, local: LocalStorage) -> None:
    """The sign-off's thread is held at its first label write until the reopen has finished."""
    _slide(local, settings)
    _approve_all(local, settings)
    paused, go = threading.Event(), threading.Event()
    signer: list[int] = []

    def hold(op: str, bucket: str, name: str) -> None:
        if (
            op == "write"
            and name.endswith(SUFFIX)
            and threading.get_ident() in signer
            and not paused.is_set()
        ):
            paused.set()
            assert go.wait(timeout=60)

    hooked = HookedStorage(local, hold)

    def sign() -> None:
        signer.append(threading.get_ident())
        actions.sign_off(local, hooked, settings, SLIDE, ANNE, signature=PASSWORD)

    thread = threading.Thread(target=sign)
    thread.start()
    assert paused.wait(timeout=60)
    actions.reopen(local, hooked, settings, SLIDE, BRUNO, reason="a second look")
    go.set()
    thread.join(timeout=60)

    assert not thread.is_alive()
    assert _agree(local, settings) == {}


@pytest.mark.parametrize(
    ("named", "says"),
    [("approve", REOPEN), (REOPEN, "approve"), (SIGN_OFF, REOPEN)],
)
def test_a_record_whose_body_does_not_match_its_name_is_refused(
    settings: Settings, local: LocalStorage, named: str, says: str
) -> None:
    cells = _slide(local, settings)
    _approve_all(local, settings)
    actions.sign_off(local, local, settings, SLIDE, ANNE, signature=PASSWORD)
    cell = cells[0]
    body = (
        new_record(SLIDE, says, "mallory")
        if says != "approve"
        else new_record(
            SLIDE,
            says,
            "mallory",
            cell=state.CellRef(cell.upload_name, cell.generation),
            after=str(cell.label),
        )
    )
    forged = body.name.replace(f"-{says}.json", f"-{named}.json")
    local.write(settings.result_bucket, forged, body.to_json())

    review = state.slide_review(local, settings, SLIDE)

    assert body.id not in {r.id for r in review.trail}
    assert review.status.signed_off and state.slide_status(local, settings, SLIDE).signed_off
    assert slides.list_slides(local, settings)[0].signed_off
    assert len(_agree(local, settings)) == 3


def test_every_sequence_of_actions_keeps_labels_and_trail_equal(
    settings: Settings, local: LocalStorage
) -> None:
    _slide(local, settings)
    steps: list[Callable[[], object]] = [
        lambda: _approve_all(local, settings),
        lambda: actions.sign_off(local, local, settings, SLIDE, ANNE, signature=PASSWORD),
        lambda: _put(local, local, settings, "cell-2.jpg", "EOSINOPHIL", b"replaced"),
        lambda: actions.reopen(local, local, settings, SLIDE, BRUNO, reason="a second look"),
        lambda: local.delete(settings.upload_bucket, f"{SLIDE}/cell-1.jpg"),
        lambda: _approve_all(local, settings, BRUNO),
        lambda: actions.sign_off(local, local, settings, SLIDE, BRUNO, signature=PASSWORD),
        lambda: actions.reopen(local, local, settings, SLIDE, ANNE, reason="a second look"),
        lambda: actions.review_cell(
            local, settings, SLIDE, load_cells(local, settings, SLIDE)[0], "SMUDGE", ANNE
        ),
        lambda: actions.sign_off(local, local, settings, SLIDE, ANNE, signature=PASSWORD),
    ]
    for step in steps:
        step()
        _agree(local, settings)

    assert archived_labels(local, settings) and state.slide_status(local, settings, SLIDE).signed_off
