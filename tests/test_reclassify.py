"""Reclassify a slide with the active model: new results, the old ones in its history, signed slides refused.

The real model and pipeline make each slide (preprocess stores the tensors, predict the first
results); a calibration is then activated and the slide reclassified on folder buckets and
on S3 (moto server), with names in any script.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest

from bloodcell import cli, names
from bloodcell.calibration import service
from bloodcell.calibration.core import LabCells
from bloodcell.calibration.reclassify import SignedSlide, active_predictor, reclassify
from bloodcell.calibration.registry import Registry
from bloodcell.calibration.rerun import NO_TENSOR, NOT_DECODED, PENDING, REPLACED, history
from bloodcell.erasure import erase
from bloodcell.events import ObjectRef
from bloodcell.pipeline import Pipeline
from bloodcell.reports.render import report_bytes
from bloodcell.review import actions
from bloodcell.review.records import PASSWORD, SIGN_OFF
from bloodcell.review.state import slide_review
from bloodcell.settings import Settings
from bloodcell.slides.loader import load_cells
from bloodcell.storage import LocalStorage, Storage
from bloodcell.web.auth import REVIEWER, USER, User

WHO = "Zoë Ångström 李明"
ANNE = User("anne", frozenset({USER, REVIEWER}))
SLIDE = "lame-été-7"
FILES = ("Échantillon été 1.png", "血液 2.jpg", "cell 3.jpg")
# gcp-storage-emulator echoes names in a latin-1 HTTP header (tests/test_storage.py): real GCS does not
LATIN_FILES = ("Échantillon été 1.png", "cellule 2.jpg", "cell 3.jpg")


def make_slide(
    pipe: Pipeline,
    storage: Storage,
    settings: Settings,
    lab: list[Any],
    slide: str = SLIDE,
    files: tuple[str, ...] = FILES,
) -> list[str]:
    """Upload, preprocess and predict each file exactly as the stack does; returns the upload names."""
    uploads = []
    for name, (_, _, data) in zip(files, lab, strict=False):
        info = storage.write(settings.upload_bucket, f"{slide}/{name}", data, content_type="image/jpeg")
        pipe.preprocess(ObjectRef(info.bucket, info.name, info.generation))
        tensor = storage.stat(settings.tensor_bucket, names.tensor_name(info.name))
        assert tensor is not None
        pipe.predict(ObjectRef(tensor.bucket, tensor.name, tensor.generation))
        uploads.append(info.name)
    return uploads


def result(storage: Storage, settings: Settings, upload: str) -> dict[str, Any]:
    return dict(json.loads(storage.read(settings.result_bucket, names.result_name(upload))[0]))


def calibrated(storage: Storage, settings: Settings, model_dir: Path, embedded: LabCells) -> str:
    registry = Registry(storage, settings.model_bucket)
    return service.run(
        registry, model_dir, embedded, "labelled folder", "lab", WHO, force=True
    ).record.version


def test_reclassify_writes_new_results_and_keeps_the_old_ones(
    settings: Settings, local: LocalStorage, lab: list[Any], embedded: LabCells, calibratable: Path
) -> None:
    pipe = Pipeline(settings, local, archive=local)
    uploads = make_slide(pipe, local, settings, lab)
    before = {u: result(local, settings, u) for u in uploads}
    version = calibrated(local, settings, calibratable, embedded)

    run = reclassify(local, settings, SLIDE, WHO, active_predictor(settings, local))

    after = {u: result(local, settings, u) for u in uploads}
    assert [c.outcome for c in run.cells] == [REPLACED] * len(uploads)
    assert all(r["model"]["calibration"] == version for r in after.values())
    assert all(r["model"]["calibration"] is None for r in before.values())
    assert {c.upload_name: c.previous for c in run.cells} == before  # the old versions, whole
    assert all(after[u]["archive"] == before[u]["archive"] for u in uploads)
    assert (run.by, run.model.calibration) == (WHO, version)
    assert run.changed == sum(before[u]["label"] != after[u]["label"] for u in uploads)
    [stored] = history(local, settings, SLIDE)
    assert stored == run
    cells = {c.upload_name: c for c in load_cells(local, settings, SLIDE)}
    assert cells[f"{SLIDE}/{FILES[0]}"].model_words.endswith(f"calibration {version}")
    # the reports name the version that answered now
    assert f"calibration {version}" in report_bytes(local, settings, SLIDE, "csv").decode("utf-8")
    assert f"calibration {version}" in json.dumps(json.loads(report_bytes(local, settings, SLIDE, "fhir")))

    again = reclassify(local, settings, SLIDE, "bob", active_predictor(settings, local))

    assert {c.upload_name: c.previous for c in again.cells} == after
    assert len(history(local, settings, SLIDE)) == 2  # every earlier version is still there


def test_a_missing_tensor_is_said_per_cell_and_its_result_kept(
    settings: Settings, local: LocalStorage, lab: list[Any], embedded: LabCells, calibratable: Path
) -> None:
    pipe = Pipeline(settings, local, archive=local)
    uploads = make_slide(pipe, local, settings, lab)
    gone = uploads[0]
    kept = result(local, settings, gone)
    local.delete(settings.tensor_bucket, names.tensor_name(gone))
    pending = local.write(settings.upload_bucket, f"{SLIDE}/nouveau é.jpg", lab[3][2])  # not classified yet
    notes = local.write(settings.upload_bucket, f"{SLIDE}/notes été.jpg", b"Patient notes, not a picture")
    pipe.preprocess(ObjectRef(notes.bucket, notes.name, notes.generation))  # a rejected result
    refused = result(local, settings, notes.name)
    calibrated(local, settings, calibratable, embedded)

    run = reclassify(local, settings, SLIDE, WHO, active_predictor(settings, local))

    outcomes = {c.upload_name: c.outcome for c in run.cells}
    assert outcomes[gone] == NO_TENSOR and outcomes[pending.name] == PENDING
    assert outcomes[notes.name] == NOT_DECODED and result(local, settings, notes.name) == refused
    assert [outcomes[u] for u in uploads[1:]] == [REPLACED] * (len(uploads) - 1)
    assert result(local, settings, gone) == kept
    assert not local.stat(settings.result_bucket, names.result_name(pending.name))


def test_a_signed_off_slide_is_refused_until_reopened(
    settings: Settings, local: LocalStorage, lab: list[Any], embedded: LabCells, calibratable: Path
) -> None:
    pipe = Pipeline(settings, local, archive=local)
    uploads = make_slide(pipe, local, settings, lab)
    cells = load_cells(local, settings, SLIDE)
    for cell in cells:
        actions.review_cell(local, settings, SLIDE, cell, cell.label or "NEUTROPHIL", ANNE, archive=local)
    actions.sign_off(local, local, settings, SLIDE, ANNE, signature=PASSWORD)
    signed = {u: result(local, settings, u) for u in uploads}
    version = calibrated(local, settings, calibratable, embedded)

    with pytest.raises(SignedSlide, match="reopen it first"):
        reclassify(local, settings, SLIDE, WHO, active_predictor(settings, local))

    assert {u: result(local, settings, u) for u in uploads} == signed
    assert history(local, settings, SLIDE) == []
    actions.reopen(local, local, settings, SLIDE, ANNE, reason="calibrated to this lab")
    run = reclassify(local, settings, SLIDE, WHO, active_predictor(settings, local))
    assert run.count(REPLACED) == len(uploads)
    # the reviewers' verdicts stand: they are keyed by the upload's version, which did not change
    assert set(slide_review(local, settings, SLIDE).cells) == {c.key for c in cells}
    actions.sign_off(local, local, settings, SLIDE, ANNE, signature=PASSWORD)
    first, amended = [r for r in slide_review(local, settings, SLIDE).trail if r.action == SIGN_OFF]
    # each signature stays bound to the model and calibration of what it signed
    assert {c.model.calibration for c in first.signed or () if c.model} == {None}
    assert {c.model.calibration for c in amended.signed or () if c.model} == {version}
    assert slide_review(local, settings, SLIDE).sign_off is not None


def _cloud(kind: str, request: pytest.FixtureRequest, settings: Settings) -> tuple[Storage, Settings]:
    """Five buckets on S3 (moto server) or GCS (gcp-storage-emulator), over real HTTP."""
    roles = ("upload", "tensor", "result", "model", "archive")
    storage: Storage
    if kind == "s3":
        import boto3

        from bloodcell.storage.s3 import S3Storage

        endpoint, first = request.getfixturevalue("s3_bucket")
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        buckets = {role: f"{first}-{role[:3]}" for role in roles}
        for bucket in buckets.values():
            client.create_bucket(Bucket=bucket)
        storage = S3Storage(endpoint_url=endpoint, region="us-east-1")
    else:
        from bloodcell.storage.gcs import GcsStorage

        request.getfixturevalue("gcs_emulator")
        gcs = GcsStorage(project="test", retry_seconds=2)
        buckets = {role: f"b-{uuid.uuid4().hex[:12]}" for role in roles}
        for bucket in buckets.values():
            gcs.client.create_bucket(bucket)
        storage = gcs
    cloud = replace(
        settings,
        storage=kind,
        upload_bucket=buckets["upload"],
        tensor_bucket=buckets["tensor"],
        result_bucket=buckets["result"],
        model_bucket=buckets["model"],
        archive_bucket=buckets["archive"],
    )
    return storage, cloud


@pytest.mark.parametrize("kind", ["s3", "gcs"])
def test_reclassify_on_s3_and_gcs(
    kind: str,
    request: pytest.FixtureRequest,
    settings: Settings,
    lab: list[Any],
    embedded: LabCells,
    calibratable: Path,
) -> None:
    storage, cloud = _cloud(kind, request, replace(settings, model_dir=calibratable))
    files = FILES if kind == "s3" else LATIN_FILES
    uploads = make_slide(Pipeline(cloud, storage, archive=storage), storage, cloud, lab, files=files)
    version = calibrated(storage, cloud, calibratable, embedded)

    run = reclassify(storage, cloud, SLIDE, WHO, active_predictor(cloud, storage))

    assert [c.outcome for c in run.cells] == [REPLACED] * len(uploads)
    assert all(result(storage, cloud, u)["model"]["calibration"] == version for u in uploads)
    [stored] = history(storage, cloud, SLIDE)
    assert stored == run and {c.upload_name for c in stored.cells} == set(uploads)


def test_the_command_line_reclassifies_and_refuses(
    settings: Settings,
    local: LocalStorage,
    lab: list[Any],
    embedded: LabCells,
    calibratable: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    uploads = make_slide(Pipeline(settings, local, archive=local), local, settings, lab)
    version = calibrated(local, settings, calibratable, embedded)
    data = ["--data-dir", str(settings.data_dir)]

    code = cli.main(["reclassify", SLIDE, *data, "--by", WHO])
    out = capsys.readouterr().out
    json_code = cli.main(["reclassify", SLIDE, *data, "--json"])
    record = json.loads(capsys.readouterr().out)
    missing = cli.main(["reclassify", "no-such-slide", *data])

    assert code == 0 and json_code == 0 and missing == 1
    assert f"calibration {version}" in out and f"{len(uploads)} cells re-run" in out
    assert record["model"]["calibration"] == version and len(record["cells"]) == len(uploads)
    assert "no uploads" in capsys.readouterr().err


def test_erasure_takes_the_history_of_what_it_erases(
    settings: Settings, local: LocalStorage, lab: list[Any], embedded: LabCells, calibratable: Path
) -> None:
    uploads = make_slide(Pipeline(settings, local, archive=local), local, settings, lab)
    calibrated(local, settings, calibratable, embedded)
    reclassify(local, settings, SLIDE, WHO, active_predictor(settings, local))
    gone = uploads[0]

    record, _ = erase(gone, settings, local, local)

    [run] = history(local, settings, SLIDE)
    assert sorted(c.upload_name for c in run.cells) == sorted(uploads[1:])
    assert FILES[0] not in json.dumps([c.to_dict() for c in run.cells], ensure_ascii=False)
    assert record.removed["reclassify"] == 1

    erase(SLIDE, settings, local, local)

    assert history(local, settings, SLIDE) == []
    assert list(local.list(settings.result_bucket)) == [*local.list(settings.result_bucket, "_erasure/")]


class _CutShort:
    """The folder buckets, until the process dies after ``allowed`` result writes (a kill mid-run)."""

    def __init__(self, inner: LocalStorage, bucket: str, allowed: int) -> None:
        self.inner, self.bucket, self.allowed = inner, bucket, allowed

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def write(self, bucket: str, name: str, data: bytes, **kwargs: Any) -> Any:
        if bucket == self.bucket and not name.startswith("_reclassify/"):
            if self.allowed == 0:
                raise KeyboardInterrupt("killed mid-run")
            self.allowed -= 1
        return self.inner.write(bucket, name, data, **kwargs)


def test_a_run_killed_between_result_writes_loses_nothing_and_a_second_run_finishes_it(
    settings: Settings, local: LocalStorage, lab: list[Any], embedded: LabCells, calibratable: Path
) -> None:
    # Arrange
    pipe = Pipeline(settings, local, archive=local)
    uploads = make_slide(pipe, local, settings, lab)
    before = {u: result(local, settings, u) for u in uploads}
    version = calibrated(local, settings, calibratable, embedded)
    dying = cast(Storage, _CutShort(local, settings.result_bucket, allowed=1))

    # Act: killed after the first new result, then run again
    with pytest.raises(KeyboardInterrupt):
        reclassify(dying, settings, SLIDE, WHO, active_predictor(settings, local))
    mid = {u: result(local, settings, u) for u in uploads}
    reclassify(local, settings, SLIDE, WHO, active_predictor(settings, local))

    # Assert: the first run's record holds every old result, whatever was replaced before the kill
    first, second = history(local, settings, SLIDE)
    assert {c.upload_name: c.previous for c in first.cells} == before
    assert sum(mid[u]["model"]["calibration"] == version for u in uploads) == 1
    assert all(result(local, settings, u)["model"]["calibration"] == version for u in uploads)
    assert {c.upload_name: c.previous for c in second.cells} == mid
