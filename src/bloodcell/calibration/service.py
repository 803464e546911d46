"""One calibration end to end, shared by ``bloodcell calibrate`` and the web page.

Fit, judge against the active model, store the version with its evaluation and the gate's
decision whatever it was, record the action in the audit trail, and activate the version
only when the gate (or ``--promote``) says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from bloodcell.calibration import evaluate
from bloodcell.calibration.core import BaseModel, Calibration, LabCells, calibrate
from bloodcell.calibration.registry import AuditEntry, Registry, VersionRecord, new_version
from bloodcell.names import escape
from bloodcell.results import now_iso

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    record: VersionRecord
    decision: evaluate.Decision
    seconds: float


def active_calibration(registry: Registry, base: BaseModel) -> tuple[Calibration | None, str]:
    """The calibration now answering for this base model, and its name (``shipped`` when none)."""
    pointer, _ = registry.pointer()
    if pointer.version is None:
        return None, "shipped"
    record = registry.record(pointer.version)
    if (record.model_name, record.model_version) != (base.name, base.version):
        return None, "shipped"
    return registry.calibration(pointer.version), pointer.version


def run(
    registry: Registry,
    model_dir: Path,
    cells: LabCells,
    source: str,
    origin: str,
    by: str,
    force: bool = False,
) -> Outcome:
    base = BaseModel.load(model_dir)
    active, active_name = active_calibration(registry, base)
    candidate = calibrate(base, cells, active, active_name)
    decision = evaluate.gate(candidate.evaluation, force)
    used = candidate.used
    counts: dict[str, int] = {}
    for i in used:
        counts[cells.labels[i]] = counts.get(cells.labels[i], 0) + 1
    record = VersionRecord(
        version=new_version(),
        model_name=base.name,
        model_version=base.version,
        created_at=now_iso(),
        created_by=by,
        source=source,
        origin=origin,
        counts=dict(sorted(counts.items())),
        cells=tuple(cells.names[i] for i in used),
        evaluation=candidate.evaluation.to_dict()
        | {"seconds": round(candidate.seconds, 3), "pull": candidate.pull},
        decision=decision.to_dict(),
    )
    registry.add(record, candidate.calibration)
    registry.audit(
        AuditEntry(
            "calibrate",
            record.version,
            active_name,
            by,
            record.created_at,
            base.name,
            base.version,
            decision.to_dict(),
        )
    )
    if decision.promoted:
        registry.activate(record.version, by, action="promote")
    log.info(
        "calibrate: version %s from %d cells by %s: %s",
        record.version,
        len(used),
        escape(by),
        "promoted" if decision.promoted else "refused: " + "; ".join(decision.reasons),
    )
    return Outcome(record, decision, candidate.seconds)
