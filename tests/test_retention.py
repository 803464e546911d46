"""Retention on folder buckets: the sweep removes what its setting expired, and nothing else."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bloodcell.cli import main
from bloodcell.errors import ConfigurationError
from bloodcell.retention import sweep
from bloodcell.settings import Settings
from bloodcell.storage import LocalStorage

DAY = 86400


def _write(storage: LocalStorage, root: Path, bucket: str, name: str, age_days: float) -> None:
    storage.write(bucket, name, b"x")
    moment = time.time() - age_days * DAY
    os.utime(root / bucket / name, (moment, moment))


def _left(storage: LocalStorage, bucket: str) -> set[str]:
    return {info.name for info in storage.list(bucket)}


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, LocalStorage]:
    root = tmp_path / "data"
    storage = LocalStorage(root)
    for bucket, prefix in (("uploads", ""), ("tensors", ""), ("results", ""), ("archive", "archive/")):
        _write(storage, root, bucket, f"{prefix}old.png", 40)
        _write(storage, root, bucket, f"{prefix}recent.png", 5)
    return root, storage


def test_each_bucket_keeps_its_own_days(data: tuple[Path, LocalStorage]) -> None:
    root, storage = data
    settings = Settings.from_env(
        {
            "BLOODCELL_DATA_DIR": str(root),
            "UPLOAD_RETENTION_DAYS": "30",
            "RESULT_RETENTION_DAYS": "30",
            "ARCHIVE_RETENTION_DAYS": "60",
        }
    )

    removed = sweep(settings, storage, storage)

    assert removed == {"uploads": 1, "tensors": 1, "results": 1}
    assert (
        _left(storage, "uploads") == _left(storage, "tensors") == _left(storage, "results") == {"recent.png"}
    )
    assert _left(storage, "archive") == {"archive/old.png", "archive/recent.png"}


def test_zero_keeps_everything(data: tuple[Path, LocalStorage]) -> None:
    root, storage = data
    settings = Settings.from_env({"BLOODCELL_DATA_DIR": str(root)})

    removed = sweep(settings, storage, storage)

    assert not removed
    assert len(_left(storage, "uploads")) == len(_left(storage, "archive")) == 2


def test_results_may_not_go_before_their_uploads() -> None:
    with pytest.raises(ConfigurationError, match="UPLOAD_RETENTION_DAYS"):
        Settings.from_env({"RESULT_RETENTION_DAYS": "30", "UPLOAD_RETENTION_DAYS": "90"})
    with pytest.raises(ConfigurationError, match="classified again"):
        Settings.from_env({"RESULT_RETENTION_DAYS": "30"})


def test_the_sweep_command(data: tuple[Path, LocalStorage], monkeypatch: pytest.MonkeyPatch) -> None:
    root, storage = data
    monkeypatch.setenv("ARCHIVE_RETENTION_DAYS", "30")
    for var in ("BLOODCELL_STORAGE", "ARCHIVE_STORAGE", "ARCHIVE_BUCKET", "ARCHIVE_PREFIX"):
        monkeypatch.delenv(var, raising=False)

    code = main(["retention", "sweep", "--data-dir", str(root)])

    assert code == 0
    assert _left(storage, "archive") == {"archive/recent.png"}
    assert len(_left(storage, "uploads")) == 2
