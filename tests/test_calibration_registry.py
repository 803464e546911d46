"""The model registry on folder buckets, S3 (moto server) and GCS (gcp-storage-emulator)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bloodcell import cli
from bloodcell.calibration.core import calibrate
from bloodcell.calibration.registry import SHIPPED, Registry, VersionRecord, new_version
from bloodcell.errors import RejectedInput
from bloodcell.results import now_iso
from bloodcell.settings import Settings
from bloodcell.storage import LocalStorage
from bloodcell.storage.gcs import GcsStorage
from bloodcell.storage.s3 import S3Storage
from tests.support.calibration import synthetic_lab

WHO = "Zoë Ångström 李明"
SLIDES = "lame-été-042, 血液-7, مختبر"


@pytest.fixture(params=["local", "s3", "gcs"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    if request.param == "local":
        yield Registry(LocalStorage(tmp_path / "data"), "models")
    elif request.param == "s3":
        endpoint, bucket = request.getfixturevalue("s3_bucket")
        yield Registry(S3Storage(endpoint_url=endpoint, region="us-east-1"), bucket)
    else:
        request.getfixturevalue("gcs_emulator")
        storage = GcsStorage(project="test", retry_seconds=2)
        bucket = f"b-{uuid.uuid4().hex[:12]}"
        storage.client.create_bucket(bucket)
        yield Registry(storage, bucket)


def _add(registry: Registry) -> str:
    base, cells = synthetic_lab()
    candidate = calibrate(base, cells, None, SHIPPED)
    record = VersionRecord(
        version=new_version(),
        model_name=base.name,
        model_version=base.version,
        created_at=now_iso(),
        created_by=WHO,
        source="slides",
        origin=SLIDES,
        counts=cells.counts(),
        cells=tuple(f"2026-12-07/NEUTROPHIL/1/{name} été 血.jpg" for name in cells.names),
        evaluation=candidate.evaluation.to_dict(),
        decision={"promoted": False},
    )
    registry.add(record, candidate.calibration)
    return record.version


def test_versions_keep_who_when_and_which_cells_in_any_script(registry: Registry) -> None:
    version = _add(registry)

    [record] = registry.versions()
    calibration = registry.calibration(version)

    assert record.version == version
    assert (record.created_by, record.origin) == (WHO, SLIDES)
    assert record.cells[0].endswith("été 血.jpg")
    assert record.evaluation["cells"] == sum(record.counts.values())
    assert calibration.head.kernel.shape[1] == 5


def test_activate_and_rollback_move_the_pointer_and_are_audited(registry: Registry) -> None:
    first, second = _add(registry), _add(registry)
    assert registry.pointer()[0].version is None  # nothing activated: the shipped model

    registry.activate(first, WHO)
    registry.activate(second, "bob")
    after_rollback = registry.rollback(WHO).version
    back_to_shipped = registry.rollback(WHO).version

    assert (after_rollback, back_to_shipped) == (first, None)
    with pytest.raises(RejectedInput, match="nothing to roll back"):
        registry.rollback(WHO)
    trail = [(e["action"], e["version"], e["previous"], e["by"]) for e in registry.audit_trail()]
    assert trail == [
        ("activate", first, None, WHO),
        ("activate", second, first, "bob"),
        ("rollback", first, second, WHO),
        ("rollback", None, first, WHO),
    ]


def test_activating_an_unknown_version_is_refused_and_changes_nothing(registry: Registry) -> None:
    with pytest.raises(RejectedInput, match="no calibration version"):
        registry.activate("20990101T000000Z-000000", WHO)

    assert registry.pointer() == (registry.pointer()[0], None)
    assert registry.audit_trail() == []


def test_shipped_can_be_activated_by_name(registry: Registry) -> None:
    version = _add(registry)
    registry.activate(version, WHO)

    pointer = registry.activate(SHIPPED, WHO)

    assert pointer.version is None
    assert pointer.history == (None, version)


def test_model_commands_list_activate_rollback_and_audit(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = Registry(LocalStorage(settings.data_dir), settings.model_bucket)
    version = _add(registry)
    where = ["--data-dir", str(settings.data_dir)]

    codes = [
        cli.main(["model", "activate", version, *where, "--by", WHO]),
        cli.main(["model", "list", *where]),
        cli.main(["model", "rollback", *where, "--by", WHO]),
        cli.main(["model", "audit", *where]),
        cli.main(["model", "rollback", *where]),
    ]

    out, err = capsys.readouterr()
    assert codes == [0, 0, 0, 0, 1]
    assert f"* {version}" in out and "active: shipped" in out
    assert [json.loads(line)["action"] for line in out.splitlines() if line.startswith("{")] == [
        "activate",
        "rollback",
    ]
    assert "nothing to roll back" in err
