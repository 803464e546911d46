"""`bloodcell report` reads the buckets through the storage layer: local folders, GCS and S3 agree."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import boto3
import pytest

from bloodcell import settings as settings_module
from bloodcell import storage as storage_module
from bloodcell.cli import main
from bloodcell.settings import Settings
from bloodcell.storage import LocalStorage, Storage
from bloodcell.storage.gcs import GcsStorage
from bloodcell.storage.s3 import S3Storage
from tests.support.common import image_bytes
from tests.support.report_slides import Spec, specs, write_slide

SLIDE = "lame-07"
CELLS = [*specs(neutrophil=9, lymphocyte=6, monocyte=1), Spec("EOSINOPHIL", uncertain=True), Spec(None)]


def report(tmp_path: Path, kind: str, *extra: str) -> bytes:
    out = tmp_path / f"out-{uuid.uuid4().hex[:6]}"
    assert main(["report", SLIDE, "--format", kind, "--out", str(out), *extra]) == 0
    return out.read_bytes()


@pytest.mark.parametrize("backend", ["gcs", "s3"])
def test_local_and_cloud_buckets_give_identical_reports(
    backend: str,
    env: dict[str, str],
    settings: Settings,
    local: LocalStorage,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    write_slide(local, settings, SLIDE, CELLS, [image_bytes()])
    on_local = {kind: report(tmp_path, kind, "--wbc", "7.2") for kind in ("fhir", "summary")}

    cloud: Storage
    prefix = f"b-{uuid.uuid4().hex[:8]}"
    if backend == "gcs":
        request.getfixturevalue("gcs_emulator")
        gcs = GcsStorage(project="test", retry_seconds=2)
        create = gcs.client.create_bucket
        cloud = gcs
    else:
        endpoint = request.getfixturevalue("moto_server")
        monkeypatch.setenv("S3_ENDPOINT_URL", endpoint)
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        create = lambda bucket: client.create_bucket(Bucket=bucket)  # noqa: E731
        cloud = S3Storage(endpoint_url=endpoint, region="us-east-1")
    for role in ("UPLOAD", "TENSOR", "RESULT"):
        bucket = f"{prefix}-{role.lower()}"
        create(bucket)
        monkeypatch.setenv(f"{role}_BUCKET", bucket)
    monkeypatch.setenv("BLOODCELL_STORAGE", backend)
    settings_module.get_settings.cache_clear()
    storage_module.open_storage.cache_clear()
    cloud_settings = settings_module.get_settings()
    write_slide(cloud, cloud_settings, SLIDE, CELLS, [image_bytes()])
    on_cloud = {kind: report(tmp_path, kind, "--wbc", "7.2") for kind in ("fhir", "summary")}

    assert on_cloud == on_local
    bundle = json.loads(on_local["fhir"])
    values = [e["resource"].get("valueQuantity", {}).get("value") for e in bundle["entry"]]
    assert 56.2 in values  # 9 of 16 neutrophils, 56.25 % rounded to one decimal
    # and the slide really is in the cloud bucket, not read from the local folders
    assert sum(1 for _ in cloud.list(cloud_settings.upload_bucket, prefix=f"{SLIDE}/")) == len(CELLS)


def test_pdf_and_csv_to_a_file_and_stdout(
    settings: Settings, local: LocalStorage, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    write_slide(local, settings, SLIDE, CELLS, [image_bytes()])
    assert report(tmp_path, "pdf").startswith(b"%PDF-")
    assert main(["report", SLIDE, "--format", "csv"]) == 0
    lines = capsysbinary.readouterr().out.decode("utf-8").splitlines()
    assert len(lines) == 1 + len(CELLS)


def test_data_dir_flag_beats_the_environment(settings: Settings, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    elsewhere = Settings(data_dir=other)
    write_slide(LocalStorage(other), elsewhere, SLIDE, CELLS, [image_bytes()])
    out = tmp_path / "r.json"
    assert main(["report", SLIDE, "--format", "fhir", "--data-dir", str(other), "--out", str(out)]) == 0
    assert json.loads(out.read_bytes())["resourceType"] == "Bundle"


def test_bad_input_gets_a_clear_answer(
    settings: Settings, local: LocalStorage, capsys: pytest.CaptureFixture[str]
) -> None:
    write_slide(local, settings, SLIDE, CELLS, [image_bytes()])
    assert main(["report", "../etc", "--format", "fhir"]) == 1
    assert "'../etc' is not a slide id" in capsys.readouterr().err
    assert main(["report", "no-such-slide"]) == 1
    assert "has no uploads" in capsys.readouterr().err
    assert main(["report", SLIDE, "--wbc", "-3"]) == 1
    assert "white-cell count" in capsys.readouterr().err


def test_without_the_reports_extra_the_command_names_it(
    settings: Settings,
    local: LocalStorage,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A core install has no scipy: simulated by hiding it (and the modules that imported it)."""
    import sys

    write_slide(local, settings, SLIDE, CELLS, [image_bytes()])
    for name in [
        m
        for m in sys.modules
        if m.startswith(("scipy", "bloodcell.reports.render", "bloodcell.reports.stats"))
    ]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "scipy", None)
    assert main(["report", SLIDE, "--format", "fhir"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'bloodcell[reports]'" in err and "Traceback" not in err
