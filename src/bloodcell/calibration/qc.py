"""The lab's QC panel and drift alarm: documents and rules, no storage, no network, no model.

A lab names a fixed set of its verified cells as its reference panel (``Panel``). Each QC run
(``QcRun``) classifies every panel cell exactly as the stack would and measures *agreement*:
the share of panel cells whose answer is their verified type. The run names the exact model
and calibration that answered.

Drift is judged against a *baseline* agreement (``QcState``): the panel's first run, moved to
the run of each later promotion (calibrate, activate, rollback) that raised no alarm; daily
runs never move it. So a better calibration raises the bar, a promotion that loses more than
``AGREEMENT_DROP`` points raises the alarm (and does not become the baseline), and a slow
decline between promotions is measured against the level the lab accepted.

The second signal is the out-of-distribution share of new cells: among cells classified in the
last ``QC_INTERVAL_HOURS`` (at least ``MIN_RECENT_CELLS`` of them), the share the model calls
``unfamiliar``, against the panel's own share in the same run (the lab's normal cells under
the same model). More than ``QC_OOD_JUMP`` above it raises the alarm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from bloodcell.calibration import documents
from bloodcell.errors import MalformedDocument

SCHEMA_VERSION = documents.SCHEMA_VERSION
AGREEMENT_DROP = 0.02  # the "more than 2 points"
MIN_RECENT_CELLS = 20  # fewer new cells than this say nothing about a jump
PROMOTIONS = frozenset({"promote", "activate", "rollback"})  # registry actions that change the model
FIRST = "panel"  # the trigger of the run made when a panel is set: its baseline


@dataclass(frozen=True)
class PanelCell:
    name: str  # where it came from: a file path or an archive key, in any script
    label: str  # the verified white-cell type
    key: str  # the copy in the registry bucket (ASCII), so the panel stays fixed
    sha256: str


@dataclass(frozen=True)
class Panel:
    version: str
    created_at: str
    created_by: str
    source: str  # "labelled folder", "slides"
    origin: str
    cells: tuple[PanelCell, ...]
    schema_version: str = SCHEMA_VERSION

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for cell in self.cells:
            out[cell.label] = out.get(cell.label, 0) + 1
        return dict(sorted(out.items()))

    def to_json(self) -> bytes:
        return documents.dump(asdict(self))

    @classmethod
    def from_json(cls, data: bytes) -> Panel:
        body = documents.load(data, "QC panel")
        try:
            cells = tuple(PanelCell(**cell) for cell in body["cells"])
            return cls(
                str(body["version"]),
                str(body["created_at"]),
                str(body["created_by"]),
                str(body["source"]),
                str(body["origin"]),
                cells,
            )
        except (KeyError, TypeError) as exc:
            raise MalformedDocument(f"QC panel lacks {exc}") from exc


@dataclass(frozen=True)
class QcRun:
    run: str  # sortable id
    at: str
    trigger: str  # panel, promote, activate, rollback, daily, manual
    by: str
    panel_version: str
    model_name: str
    model_version: str
    calibration: str | None  # None: the shipped model answered
    cells: int
    agreement: float
    per_class: Mapping[str, float]
    panel_unfamiliar: float | None  # None: the model has no out-of-distribution score
    recent_cells: int
    recent_unfamiliar: float | None  # None: fewer than MIN_RECENT_CELLS new cells
    baseline_run: str
    baseline_agreement: float
    alarm: bool
    reasons: tuple[str, ...] = ()
    schema_version: str = SCHEMA_VERSION

    def to_json(self) -> bytes:
        return documents.dump(asdict(self))

    @classmethod
    def from_json(cls, data: bytes) -> QcRun:
        return documents.build(cls, data, "QC run", ("reasons",))


@dataclass(frozen=True)
class QcState:
    """The latest run's verdict and the baseline: what the History page and the next run read."""

    panel_version: str
    baseline_run: str
    baseline_agreement: float
    last_run: str
    last_run_at: str
    alarm: bool
    reasons: tuple[str, ...] = ()
    since: str = ""  # when the alarm was raised; empty while none is
    schema_version: str = SCHEMA_VERSION

    def to_json(self) -> bytes:
        return documents.dump(asdict(self))

    @classmethod
    def from_json(cls, data: bytes) -> QcState:
        return documents.build(cls, data, "QC state", ("reasons",))


@dataclass(frozen=True)
class Measured:
    """What one pass over the panel found, before it is judged."""

    agreement: float
    per_class: dict[str, float]
    panel_unfamiliar: float | None


def measure(verified: Sequence[str], answered: Sequence[str], unfamiliar: Sequence[bool | None]) -> Measured:
    """Agreement overall and per verified type; the panel's unfamiliar share where the model scores it."""
    if not verified:
        raise ValueError("an empty panel measures nothing")
    hits = [v == a for v, a in zip(verified, answered, strict=True)]
    per_class = {
        label: round(
            sum(h for v, h in zip(verified, hits, strict=True) if v == label)
            / sum(1 for v in verified if v == label),
            4,
        )
        for label in sorted(set(verified))
    }
    known = [u for u in unfamiliar if u is not None]
    share = round(sum(known) / len(known), 4) if known else None
    return Measured(round(sum(hits) / len(hits), 4), per_class, share)


def drift_reasons(
    agreement: float,
    baseline: float,
    panel_unfamiliar: float | None,
    recent_unfamiliar: float | None,
    ood_jump: float,
) -> tuple[str, ...]:
    """Why the alarm is raised; empty when it is not."""
    reasons = []
    if baseline - agreement > AGREEMENT_DROP + 1e-9:
        reasons.append(
            f"panel agreement fell to {agreement:.1%} from a baseline of {baseline:.1%} "
            f"(more than {AGREEMENT_DROP * 100:.0f} points)"
        )
    if recent_unfamiliar is not None and recent_unfamiliar - (panel_unfamiliar or 0.0) > ood_jump + 1e-9:
        reasons.append(
            f"{recent_unfamiliar:.1%} of recent cells are unfamiliar, against {panel_unfamiliar or 0.0:.1%} "
            f"of the panel (more than {ood_jump * 100:.0f} points above)"
        )
    return tuple(reasons)


def moves_baseline(trigger: str, reasons: Sequence[str]) -> bool:
    """A promotion that lost no agreement becomes the new baseline; an alarming one never does."""
    return trigger in PROMOTIONS and not any(r.startswith("panel agreement") for r in reasons)


def next_delay(now: datetime, last_run_at: datetime | None, interval: timedelta) -> float:
    """Seconds until the next daily run is due: 0 when it is due now (or never ran)."""
    if last_run_at is None:
        return 0.0
    return max(0.0, (last_run_at + interval - now).total_seconds())
