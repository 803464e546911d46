"""A calibration activated in the middle of a burst through the real local stack (`bloodcell serve`).

Nothing is lost or duplicated, every result names the model and a calibration version that
was active during its event, and every upload dropped after the activation is answered by it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bloodcell.calibration import service
from bloodcell.calibration.core import LabCells
from bloodcell.calibration.registry import Registry
from bloodcell.storage import LocalStorage
from tests.support.stack import check_end_state, drop, image_pool, read_results, wait_for, wait_results

FIRST, SECOND = 40, 10


def test_activate_during_a_burst_loses_nothing_and_names_the_version(
    make_stack: Any, tmp_path: Path, datasets: Path, calibratable: Path, embedded: LabCells
) -> None:
    data = tmp_path / "data"
    registry = Registry(LocalStorage(data), "models")
    made = service.run(registry, calibratable, embedded, "labelled folder", "lab", "Zoë", force=True)
    version = made.record.version
    registry.rollback("Zoë")  # the burst starts on the shipped model
    pool = image_pool(datasets, FIRST + SECOND, "kaggle")
    first = {f"rafale été/血-{i:03d}.jpeg": p for i, p in enumerate(pool[:FIRST])}
    second = {f"rafale été/après-{i:03d}.jpeg": p for i, p in enumerate(pool[FIRST:])}
    stack = make_stack(data)

    drop(data, first, tmp_path / "staging")
    wait_for("the burst under way", lambda: len(read_results(data)) >= 5, 180, log=stack.log_tail)
    pointer = registry.activate(version, "Zoë")
    drop(data, second, tmp_path / "staging")
    found = wait_results(data, [*first, *second], 300, log=stack.log_tail)

    state = check_end_state(data, [*first, *second])  # none lost, none duplicated, nothing stray
    calibrations = {name: r["model"]["calibration"] for name, r in state.results.items()}
    assert set(calibrations.values()) <= {None, version}
    for name, result in found.items():
        if calibrations[name] == version:  # it read the pointer after the activation was written
            assert result["timestamps"]["classified"] >= pointer.changed_at, name
    assert all(calibrations[name] == version for name in second)
    assert any(calibrations[name] is None for name in first)  # the first results came before it
