"""The restore runbook (docs/operations.md), run as written: back up a data folder with tar,
restore it into a fresh one, start the stack there, and nothing is classified or archived twice."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.stack import Stack, archive_objects, drop, image_pool, read_results, wait_results

COUNT = 3


def _snapshot(data_dir: Path) -> dict[str, bytes]:
    root = data_dir / "results"
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*.json")}


def test_a_restored_data_folder_is_neither_reclassified_nor_archived_twice(
    tmp_path: Path, datasets: Path, make_stack: Callable[..., Stack]
) -> None:
    # Arrange: a stack that classified and archived a few uploads, then stopped
    first, restored, backup = tmp_path / "data", tmp_path / "restored", tmp_path / "backup.tar.gz"
    images = {f"S20261207-backup/{i}-cell{p.suffix}": p for i, p in enumerate(image_pool(datasets, COUNT))}
    stack = make_stack(first)
    drop(first, images, tmp_path / "staging")
    wait_results(first, images, timeout=240, log=stack.log_tail)
    stack.stop()
    before, archived = _snapshot(first), archive_objects(first)

    # Act: the runbook's two commands, then the stack on the restored folder
    subprocess.run(["tar", "--create", "--gzip", f"--file={backup}", f"--directory={first}", "."], check=True)
    restored.mkdir()
    subprocess.run(["tar", "--extract", "--gzip", f"--file={backup}", f"--directory={restored}"], check=True)
    again = make_stack(restored)
    newcomer = next(iter(images.values()))
    extra: dict[str, Any] = {f"S20261207-backup/after-restore{newcomer.suffix}": newcomer}
    drop(restored, extra, tmp_path / "staging-2")
    wait_results(restored, [*images, *extra], timeout=240, log=again.log_tail)
    again.stop()

    # Assert: the old results byte for byte, one new result, one new archive copy (image and JSON)
    after = _snapshot(restored)
    reconciles = [
        line for line in again.log_path.read_text().splitlines() if "event source reconciled" in line
    ]
    assert len(reconciles) == 2  # the first stack's, then the restored one's
    assert all("reconciled: 0 object(s)" in line for line in reconciles)
    assert {k: v for k, v in after.items() if k in before} == before
    assert set(after) - set(before) == {f"{next(iter(extra))}.json"}
    assert len(read_results(restored)) == COUNT + 1
    assert set(archived) < set(archive_objects(restored))
    assert len(archive_objects(restored)) == len(archived) + 2
