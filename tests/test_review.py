"""Review records and the state they add up to, on all three backends and with the real pipeline."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bloodcell.errors import PreconditionFailed
from bloodcell.events import ObjectRef
from bloodcell.pipeline import Pipeline
from bloodcell.results import ModelRef
from bloodcell.review import actions, records, slides, state
from bloodcell.review.records import PASSWORD, CellRef, RecordError, ReviewRecord, new_record
from bloodcell.review.verified import VerifiedLabel, verified_key
from bloodcell.settings import Settings
from bloodcell.slides import ids
from bloodcell.slides.cell import Cell, Review
from bloodcell.slides.differential import differential
from bloodcell.slides.loader import load_cells
from bloodcell.slides.vocabulary import CLASSIFIED, MODEL, REJECTED, REVIEWED
from bloodcell.storage import LocalStorage, Storage
from bloodcell.storage.gcs import GcsStorage
from bloodcell.storage.s3 import S3Storage
from bloodcell.web.auth import REVIEWER, USER, User

ANNE = User("anne", frozenset({USER, REVIEWER}))
BRUNO = User("bruno", frozenset({USER, REVIEWER}))
VISITOR = User("visitor", frozenset({USER}))
CELL = CellRef("S1/0123456789-cell été.jpg", "17-42")


def _backend(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Storage, Settings]:
    if kind == "local":
        return LocalStorage(tmp_path / "root"), Settings()
    if kind == "s3":
        endpoint, bucket = request.getfixturevalue("s3_bucket")
        return S3Storage(endpoint_url=endpoint, region="us-east-1"), Settings(result_bucket=bucket)
    request.getfixturevalue("gcs_emulator")
    storage = GcsStorage(project="test", retry_seconds=2)
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    storage.client.create_bucket(bucket)
    return storage, Settings(result_bucket=bucket)


@pytest.fixture(params=["local", "s3", "gcs"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Storage, Settings]]:
    yield _backend(request.param, request, tmp_path)


def test_record_round_trips_and_is_named_for_its_order() -> None:
    record = new_record(
        "S1",
        records.RECLASSIFY,
        "anne",
        cell=CELL,
        before="MONOCYTE",
        after="LYMPHOCYTE",
        model=ModelRef("wbc", "1.2"),
        at="2026-12-01T21:40:05.000123Z",
    )

    again = ReviewRecord.from_json(record.to_json())

    assert again == record
    assert record.name == f"_review/S1/20261201T214005000123Z-{record.id}-reclassify.json"
    assert records.parse_record_name(record.name) == records.ListedRecord(
        "S1", "20261201T214005000123Z", record.id, "reclassify"
    )
    assert json.loads(record.to_json())["schema_version"] == "1"


@pytest.mark.parametrize(
    "fields",
    [
        {"action": "delete"},
        {"action": records.APPROVE, "cell": None, "after": "LYMPHOCYTE"},
        {"action": records.RECLASSIFY, "cell": CELL, "after": "PLATELET"},
        {"action": records.APPROVE, "cell": CELL, "before": "MONOCYTE", "after": "LYMPHOCYTE"},
        {"action": records.SIGN_OFF, "cell": CELL},
    ],
)
def test_malformed_records_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(RecordError):
        ReviewRecord(
            id=uuid.uuid4().hex,
            slide="S1",
            reviewer="anne",
            at="2026-12-01T00:00:00.000000Z",
            **fields,  # type: ignore[arg-type]
        )


def test_an_object_that_is_not_a_record_is_refused() -> None:
    with pytest.raises(RecordError):
        ReviewRecord.from_json(b'{"status": "classified"}')


def test_records_are_written_once_and_read_back(backend: tuple[Storage, Settings]) -> None:
    storage, settings = backend
    first = new_record("S1", records.APPROVE, "anne", cell=CELL, before="MONOCYTE", after="MONOCYTE")
    second = new_record("S1", records.RECLASSIFY, "bruno", cell=CELL, before="MONOCYTE", after="UNUSABLE")
    state.write_record(storage, settings, second)
    state.write_record(storage, settings, first)

    trail = state.read_trail(storage, settings, "S1")
    labels = state.reviewed_labels(storage, settings, "S1")

    assert trail == (first, second)
    assert labels == {(CELL.upload_name, CELL.generation): Review("UNUSABLE", "bruno", second.at)}
    assert state.slide_status(storage, settings, "S1") == state.SlideStatus(False)


@pytest.mark.parametrize("kind", ["local", "s3", "gcs"])
def test_a_record_is_never_overwritten(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """On GCS through the recording proxy: its 412 mocks GCS, which the emulator cannot do."""
    proxy = request.getfixturevalue("gcs_precondition_proxy") if kind == "gcs" else None
    storage, settings = _backend(kind, request, tmp_path)
    record = new_record("S1", records.APPROVE, "anne", cell=CELL, before="MONOCYTE", after="MONOCYTE")
    state.write_record(storage, settings, record)
    forged = replace(record, reviewer="mallory")

    with pytest.raises(PreconditionFailed):
        state.write_record(storage, settings, forged)

    assert ReviewRecord.from_json(storage.read(settings.result_bucket, record.name)[0]) == record
    if proxy is not None:  # both uploads asked GCS to create only; the second was refused
        assert [u.query.get("ifGenerationMatch") for u in proxy.uploads()] == [["0"], ["0"]]
        assert proxy.refused == 1


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_two_reviewers_on_one_cell_lose_nothing_and_the_later_wins(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    storage, settings = _backend(kind, request, tmp_path)
    start = threading.Barrier(2)
    written: list[ReviewRecord] = []

    def review(who: str, label: str) -> None:
        start.wait()
        for index in range(10):
            record = new_record("S1", records.RECLASSIFY, who, cell=CELL, before="MONOCYTE", after=label)
            written.append(state.write_record(storage, settings, record))
            assert index >= 0

    threads = [
        threading.Thread(target=review, args=args)
        for args in (("anne", "LYMPHOCYTE"), ("bruno", "NEUTROPHIL"))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    trail = state.read_trail(storage, settings, "S1")
    latest = max(written, key=lambda r: r.order)
    assert sorted(r.id for r in trail) == sorted(r.id for r in written) and len(trail) == 20
    assert state.reviewed_labels(storage, settings, "S1")[(CELL.upload_name, CELL.generation)].label == (
        latest.after
    )


def test_edits_that_land_after_a_sign_off_do_not_count_until_a_reopen() -> None:
    at = "2026-12-01T10:00:0{}.000000Z".format
    trail = (
        new_record(
            "S1", records.RECLASSIFY, "anne", cell=CELL, before="MONOCYTE", after="LYMPHOCYTE", at=at(1)
        ),
        new_record("S1", records.SIGN_OFF, "anne", at=at(2)),
        new_record(
            "S1", records.RECLASSIFY, "bruno", cell=CELL, before="LYMPHOCYTE", after="UNUSABLE", at=at(3)
        ),
    )

    signed = state.replay("S1", trail)
    reopened = state.replay("S1", (*trail, new_record("S1", records.REOPEN, "bruno", at=at(4))))

    assert signed.status == state.SlideStatus(True, "anne", at(2))
    assert signed.cells[(CELL.upload_name, CELL.generation)].label == "LYMPHOCYTE"
    assert signed.ignored == {trail[2].id}
    assert reopened.status == state.SlideStatus(False)


def test_slide_ids_are_checked() -> None:
    assert ids.check_slide_id(" HEM-2026-0042 ") == "HEM-2026-0042"
    assert ids.check_slide_id("lame-été-李-07") == "lame-été-李-07"  # the reports' ids are the same
    for bad in ("", "_review", "web", "a/b", "../x", ".hidden", "x" * 65, "nom été", "a\x00", "..", "-x"):
        with pytest.raises(ids.SlideIdError):
            ids.check_slide_id(bad)
    assert slides.looks_like_a_name("Dupont") and not slides.looks_like_a_name("HEM-0042")
    assert ids.slide_of("S1/a.jpg") == "S1" and ids.slide_of("a.jpg") is None
    assert ids.slide_of("web/20261201/x.jpg") is None
    assert ids.image_name(ids.upload_object_name("S1", "Cellule été.JPG", "0123456789")) == (
        "Cellule_ete.jpg"
    )


# ---- with the real pipeline and the shipped model ----


def _process(pipe: Pipeline, local: LocalStorage, settings: Settings) -> None:
    for info in list(local.list(settings.upload_bucket)):
        pipe.preprocess(ObjectRef(info.bucket, info.name, info.generation))
    for info in list(local.list(settings.tensor_bucket)):
        pipe.predict(ObjectRef(info.bucket, info.name, info.generation))


def test_a_slide_is_reviewed_signed_off_and_its_labels_reach_the_archive(
    settings: Settings, local: LocalStorage, datasets: Path
) -> None:
    simple = datasets / "kaggle-blood-cells" / "TEST_SIMPLE"
    pictures = [next(iter(sorted((simple / kind).glob("*.jpeg")))) for kind in ("NEUTROPHIL", "MONOCYTE")]
    for path in pictures:  # a folder dropped straight into the bucket
        local.write(settings.upload_bucket, f"HEM-7/{path.name}", path.read_bytes())
    local.write(settings.upload_bucket, "HEM-7/notes.jpg", b"not a picture")
    archive = LocalStorage(settings.data_dir)
    pipe = Pipeline(settings, local, archive)
    _process(pipe, local, settings)

    cells = load_cells(local, settings, "HEM-7")
    listed = slides.list_slides(local, settings)
    classified = [c for c in cells if c.status == CLASSIFIED]
    assert [s.slide for s in listed] == ["HEM-7"] and listed[0].images == 3 and listed[0].finished == 3
    assert listed[0].status == "awaiting review" and listed[0].created_by is None
    assert len(classified) == 2 and [c.status for c in cells].count(REJECTED) == 1

    with pytest.raises(actions.ReviewRefused, match="reviewer role"):
        actions.review_cell(local, settings, "HEM-7", classified[0], "MONOCYTE", VISITOR)
    actions.review_cell(local, settings, "HEM-7", classified[0], str(classified[0].label), ANNE)
    with pytest.raises(actions.ReviewRefused, match="1 classified cells are not reviewed"):
        actions.sign_off(local, archive, settings, "HEM-7", ANNE, signature=PASSWORD)
    actions.review_cell(local, settings, "HEM-7", classified[1], "NOT_A_WHITE_CELL", BRUNO)
    done = actions.sign_off(local, archive, settings, "HEM-7", ANNE, signature=PASSWORD)

    assert done.verified == 2 and done.not_archived == 0
    with pytest.raises(actions.ReviewRefused, match="signed off"):
        actions.review_cell(local, settings, "HEM-7", classified[0], "UNUSABLE", ANNE)
    trail = state.read_trail(local, settings, "HEM-7")
    assert [r.action for r in trail] == ["approve", "reclassify", "sign-off"]
    assert trail[1].before == classified[1].label and trail[1].after == "NOT_A_WHITE_CELL"
    assert trail[0].model == classified[0].model and trail[0].model is not None
    for cell, label, who in (
        (classified[0], classified[0].label, "anne"),
        (classified[1], "NOT_A_WHITE_CELL", "bruno"),
    ):
        assert cell.result is not None and cell.result.archive.location is not None
        key = cell.result.archive.location
        assert archive.stat(settings.archive_bucket, key) is not None  # the image it sits beside
        data, _ = archive.read(settings.archive_bucket, verified_key(key))
        verified = VerifiedLabel.from_json(data)
        assert (verified.label, verified.reviewer, verified.model_label) == (label, who, cell.label)
        assert (verified.source_name, verified.source_generation) == cell.key
        assert verified.signed_off_by == "anne" and verified.model_version == cell.model.version  # type: ignore[union-attr]
    assert slides.list_slides(local, settings)[0].status == "signed off"

    keys = [verified_key(str(c.result.archive.location)) for c in classified if c.result]
    actions.reopen(local, archive, settings, "HEM-7", BRUNO, reason="a second look")
    assert state.slide_status(local, settings, "HEM-7") == state.SlideStatus(False)
    assert [r.action for r in state.read_trail(local, settings, "HEM-7")][-1] == "reopen"
    # the archive no longer claims what was reopened; the images and results beside stay
    assert [archive.stat(settings.archive_bucket, key) for key in keys] == [None, None]
    assert all(archive.stat(settings.archive_bucket, key.removesuffix(".verified.json")) for key in keys)
    from training.archive import archive_items

    assert archive_items([settings.data_dir / settings.archive_bucket]) == []
    actions.review_cell(local, settings, "HEM-7", classified[1], "MONOCYTE", BRUNO)
    actions.sign_off(local, archive, settings, "HEM-7", BRUNO, signature=PASSWORD)
    data, _ = archive.read(settings.archive_bucket, keys[1])
    assert VerifiedLabel.from_json(data).label == "MONOCYTE"
    assert len(archive_items([settings.data_dir / settings.archive_bucket])) == 2


def _cell(name: str, label: str | None, confidence: float = 0.9, uncertain: bool = False) -> Cell:
    from datetime import UTC, datetime

    from bloodcell.results import Result, Source, Status

    view = None
    if label != "waiting":
        view = Result(
            status=Status.CLASSIFIED if label else Status.REJECTED,
            source=Source("uploads", name, "g"),
            label=label,
            confidence=confidence if label else None,
            uncertain=uncertain if label else None,
            reason=None if label else "not an image",
            model=ModelRef("m", "1"),
        )
    return Cell(name, "g", datetime.now(UTC), view)


def test_gallery_order_and_the_two_differentials() -> None:
    from bloodcell.slides.order import gallery_order

    cells = [
        _cell("S/n1", "NEUTROPHIL", 0.99),
        _cell("S/n2", "NEUTROPHIL", 0.7),
        _cell("S/n3", "NEUTROPHIL", 0.95, True),
        _cell("S/l1", "LYMPHOCYTE", 0.8),
        _cell("S/bad", None),
        _cell("S/later", "waiting"),
    ]
    reviewed = {
        ("S/n1", "g"): Review("NEUTROPHIL", "anne", "t"),
        ("S/n3", "g"): Review("LYMPHOCYTE", "anne", "t"),
        ("S/n2", "g"): Review("NOT_A_WHITE_CELL", "anne", "t"),
    }

    order = [c.upload_name for c in gallery_order(cells)]
    with_reviews = [replace(c, review=reviewed.get(c.key)) for c in cells]
    model = differential(with_reviews, MODEL)
    people = differential(with_reviews, REVIEWED)

    assert order == ["S/n3", "S/n2", "S/n1", "S/l1", "S/bad", "S/later"]
    by_model = {row.label: row for row in model.rows}
    by_people = {row.label: row for row in people.rows}
    assert (by_model["NEUTROPHIL"].count, by_people["NEUTROPHIL"].count) == (2, 1)
    assert (by_model["LYMPHOCYTE"].count, by_people["LYMPHOCYTE"].count) == (1, 1)
    assert by_people["NEUTROPHIL"].percent == 50.0
    assert by_model["NEUTROPHIL"].percent == pytest.approx(66.67, 0.01)
    tallies = (
        people.unreviewed,
        people.excluded["NOT_A_WHITE_CELL"],
        model.uncertain,
        model.rejected,
        model.pending,
    )
    assert tallies == (1, 1, 1, 1, 1)
