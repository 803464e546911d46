"""Erasure on every backend: folder buckets, S3 over moto's HTTP server, the GCS emulator."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bloodcell import names
from bloodcell.cli import main
from bloodcell.deadletters import DeadLetters
from bloodcell.erasure import ErasureRecord, digest, erase, records
from bloodcell.results import ArchiveStatus, Result, Source, Status
from bloodcell.review.records import APPROVE, CREATE, CellRef, new_record
from bloodcell.review.verified import verified_key
from bloodcell.settings import Settings
from bloodcell.storage import LocalStorage, Storage
from tests.support.storage import BACKENDS, backend_env

PATIENT = "lame-dupont"  # a slide id that is a patient's name: exactly what erasure is for
OTHER = "lame-042"


@pytest.fixture(params=BACKENDS)
def buckets(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Settings, Storage]]:
    env = backend_env(request.param, request)
    env |= {
        "BLOODCELL_DATA_DIR": str(tmp_path / "data"),
        "ARCHIVE_BUCKET": env.get("RESULT_BUCKET", "archive"),
    }
    env["ARCHIVE_PREFIX"] = "archive/"  # the archive beside the results: one more bucket is not needed
    settings = Settings.from_env(env)
    if request.param == "local":
        storage: Storage = LocalStorage(settings.data_dir)
    elif request.param == "s3":
        from bloodcell.storage.s3 import S3Storage

        storage = S3Storage(endpoint_url=settings.s3_endpoint_url, region="us-east-1")
    else:
        from bloodcell.storage.gcs import GcsStorage

        storage = GcsStorage(project="test", retry_seconds=2)
    yield settings, storage


def _upload_everywhere(settings: Settings, storage: Storage, name: str) -> None:
    """Every copy the system makes of one classified, reviewed, signed-off and dead-lettered upload."""
    info = storage.write(settings.upload_bucket, name, b"pixels", content_type="image/png")
    storage.write(settings.tensor_bucket, names.tensor_name(name), b"tensor")
    source = Source(
        bucket=info.bucket, name=name, generation=info.generation, uploaded="2026-12-07T10:00:00Z"
    )
    key = f"{settings.archive_prefix}2026-12-07/NEUTROPHIL/{info.generation.replace('/', '_')}/{name}"
    result = Result(status=Status.CLASSIFIED, source=source, label="NEUTROPHIL").with_archive(
        ArchiveStatus.STORED, key
    )
    storage.write(settings.result_bucket, names.result_name(name), result.to_json())
    storage.write(settings.archive_bucket, key, b"pixels")
    storage.write(settings.archive_bucket, key + ".json", result.to_json())
    storage.write(settings.archive_bucket, verified_key(key), b'{"label": "NEUTROPHIL"}')
    older = f"{settings.archive_prefix}2026-11-30/LYMPHOCYTE/older-generation/{name}"
    storage.write(settings.archive_bucket, older, b"older pixels")
    slide = name.partition("/")[0]
    cell = CellRef(name, info.generation)
    for record in (
        new_record(slide, CREATE, "alice"),
        new_record(slide, APPROVE, "alice", cell=cell, after="NEUTROPHIL"),
    ):
        storage.write(settings.result_bucket, record.name, record.to_json())
    if settings.storage == "local":
        DeadLetters(storage, settings.dead_letter_bucket).record(info, "http://sink", 20, "HTTP 500", "-")


def _everything(settings: Settings, storage: Storage) -> list[str]:
    buckets = {
        settings.upload_bucket,
        settings.tensor_bucket,
        settings.result_bucket,
        settings.archive_bucket,
    }
    if settings.storage == "local":
        buckets.add(settings.dead_letter_bucket)
    found = []
    for bucket in sorted(buckets):
        for info in storage.list(bucket):
            data = storage.read(bucket, info.name)[0]
            found.append(f"{bucket}/{info.name} {data.decode('utf-8', 'replace')}")
    return found


def test_erasing_a_slide_leaves_no_copy_and_a_record_without_the_name(
    buckets: tuple[Settings, Storage],
) -> None:
    settings, storage = buckets
    for name in (
        f"{PATIENT}/0a1b2c3d4e-cell.png",
        f"{PATIENT}/1a1b2c3d4e-cell.png",
        f"{OTHER}/2a1b2c3d4e-cell.png",
    ):
        _upload_everywhere(settings, storage, name)

    record, steps = erase(PATIENT, settings, storage, storage)

    left = _everything(settings, storage)
    assert not [line for line in left if PATIENT in line]
    assert [line for line in left if OTHER in line]  # the other slide is untouched
    assert record.scope == "slide"
    assert (
        record.removed["uploads"] == 2 and record.removed["tensors"] == 2 and record.removed["results"] == 2
    )
    assert record.removed["archive"] == 8 and record.removed["review"] == 4
    assert record.removed.get("dead-letters", 0) == (2 if settings.storage == "local" else 0)
    assert len(steps) == (0 if settings.storage == "local" else 1)  # the platform's dead-letter queue
    assert record.target_sha256 == digest(PATIENT)
    assert list(records(storage, settings)) == [record]
    assert ErasureRecord.from_json(record.to_json()) == record


def test_erasing_one_upload_keeps_the_rest_of_its_slide(buckets: tuple[Settings, Storage]) -> None:
    settings, storage = buckets
    gone, kept = f"{OTHER}/0a1b2c3d4e-dupont.png", f"{OTHER}/1a1b2c3d4e-cell.png"
    for name in (gone, kept):
        _upload_everywhere(settings, storage, name)

    record, _ = erase(gone, settings, storage, storage)

    left = _everything(settings, storage)
    assert not [line for line in left if "dupont" in line]
    assert [line for line in left if kept in line]
    assert record.scope == "upload"
    assert record.removed["review"] == 1  # its approval; the slide's own record stays
    assert sum(1 for line in left if "-create.json" in line) == 2  # slide records stay


def test_the_command_needs_yes_and_says_what_it_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for var in ("BLOODCELL_STORAGE", "ARCHIVE_STORAGE", "UPLOAD_BUCKET", "RESULT_BUCKET"):
        monkeypatch.delenv(var, raising=False)
    data = tmp_path / "data"
    settings = Settings.from_env({"BLOODCELL_DATA_DIR": str(data)})
    _upload_everywhere(settings, LocalStorage(data), f"{PATIENT}/0a1b2c3d4e-cell.png")

    refused = main(["erase", PATIENT, "--data-dir", str(data)])
    kept = (data / settings.upload_bucket / PATIENT).is_dir() and os.listdir(
        data / settings.upload_bucket / PATIENT
    )
    erased = main(["erase", PATIENT, "--yes", "--data-dir", str(data)])

    out = capsys.readouterr().out
    assert refused == 1 and kept
    assert erased == 0
    assert "1 uploads" in out and "erasure record: results/_erasure/" in out
    assert not list(LocalStorage(data).list(settings.upload_bucket))


def test_every_version_goes_from_a_versioned_s3_bucket(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    import boto3

    from bloodcell.storage.s3 import S3Storage

    env = backend_env("s3", request) | {"BLOODCELL_DATA_DIR": str(tmp_path)}
    settings = Settings.from_env(env | {"ARCHIVE_BUCKET": env["RESULT_BUCKET"], "ARCHIVE_PREFIX": "archive/"})
    client = boto3.client("s3", endpoint_url=settings.s3_endpoint_url, region_name="us-east-1")
    client.put_bucket_versioning(Bucket=settings.upload_bucket, VersioningConfiguration={"Status": "Enabled"})
    storage = S3Storage(endpoint_url=settings.s3_endpoint_url, region="us-east-1")
    name = f"{PATIENT}/0a1b2c3d4e-cell.png"
    storage.write(settings.upload_bucket, name, b"first version")
    _upload_everywhere(settings, storage, name)  # the second version

    record, _ = erase(PATIENT, settings, storage, storage)

    versions = client.list_object_versions(Bucket=settings.upload_bucket)
    assert record.removed["uploads"] == 2
    assert not versions.get("Versions") and not versions.get("DeleteMarkers")
