"""How a candidate calibration is judged: the lab's held-out cells, the reference panel, the gate.

Held out: the lab's cells are dealt into three stratified folds (each about a third of every
class); a candidate fitted on two folds classifies the third, so every cell is classified by
a candidate that never saw it (the pull towards the shipped head is chosen inside those two
folds too), and the active model classifies the same cells. The gate
compares the two on the same cells, so the comparison is paired: among the cells where they
disagree in correctness, the candidate must win significantly more often than it loses
(one-sided exact sign test, p < 0.05: McNemar's test, exact). Recalls per class carry 95 %
Wilson intervals, which stay honest at the handful of cells a lab verifies first.

Three checks, all required (``--promote`` overrides them, and says so in the record):

1. ``better_on_lab``: the paired sign test above;
2. ``agrees_with_labels``: the candidate reproduces at least ``MIN_AGREEMENT`` of the lab's
   held-out labels. Mislabelled cells (a shuffled batch, a wrong folder) cannot be reproduced
   by any head on good features, and a candidate fitted on them can still beat a model that is
   poor on this lab: this floor is what refuses them;
3. ``panel_kept``: on the reference panel of the training labs' cells, the candidate is no
   more than ``MAX_PANEL_DROP`` below the active model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

FOLDS = 3
ALPHA = 0.05
MIN_AGREEMENT = 0.80
MAX_PANEL_DROP = 0.01
Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion; (0, 1) when there is nothing to count."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def sign_test(wins: int, losses: int) -> float:
    """One-sided exact p-value that wins outnumber losses by chance (ties carry no information)."""
    n = wins + losses
    if n == 0:
        return 1.0
    return float(sum(math.comb(n, k) for k in range(wins, n + 1)) / 2**n)


def stratified_folds(labels: np.ndarray, folds: int = FOLDS, seed: int = 0) -> np.ndarray:
    """Fold index per cell: within each class, a seeded shuffle dealt round-robin."""
    rng = np.random.default_rng(seed)
    out = np.zeros(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        rng.shuffle(members)
        out[members] = np.arange(len(members)) % folds
    return out


@dataclass(frozen=True)
class ClassRecall:
    label: str
    cells: int
    candidate: float
    candidate_interval: tuple[float, float]
    active: float
    active_interval: tuple[float, float]


@dataclass(frozen=True)
class Evaluation:
    """The comparison printed and stored with every candidate (JSON: ``to_dict``)."""

    cells: int
    folds: int
    candidate_accuracy: float
    candidate_interval: tuple[float, float]
    active_accuracy: float
    active_interval: tuple[float, float]
    per_class: tuple[ClassRecall, ...]
    wins: int  # held-out cells the candidate gets right and the active model wrong
    losses: int  # and the other way round
    p_value: float
    panel_cells: int
    panel_candidate: float | None
    panel_active: float | None
    active: str  # what the candidate was compared with: a calibration version or "shipped"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(
    labels: np.ndarray,
    candidate: np.ndarray,
    active: np.ndarray,
    outputs: Sequence[str],
    panel: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    active_name: str,
    folds: int = FOLDS,
) -> Evaluation:
    """Predictions of both models on the same held-out cells (and panel: labels, candidate, active)."""
    right_c, right_a = candidate == labels, active == labels
    per_class = []
    for index, name in enumerate(outputs):
        members = labels == index
        n = int(members.sum())
        if n == 0:
            continue
        hits_c, hits_a = int(right_c[members].sum()), int(right_a[members].sum())
        per_class.append(ClassRecall(name, n, hits_c / n, wilson(hits_c, n), hits_a / n, wilson(hits_a, n)))
    wins = int((right_c & ~right_a).sum())
    losses = int((~right_c & right_a).sum())
    n = len(labels)
    panel_c = panel_a = None
    if panel is not None and len(panel[0]):
        panel_c = float(np.mean(panel[1] == panel[0]))
        panel_a = float(np.mean(panel[2] == panel[0]))
    return Evaluation(
        cells=n,
        folds=folds,
        candidate_accuracy=float(right_c.mean()) if n else 0.0,
        candidate_interval=wilson(int(right_c.sum()), n),
        active_accuracy=float(right_a.mean()) if n else 0.0,
        active_interval=wilson(int(right_a.sum()), n),
        per_class=tuple(per_class),
        wins=wins,
        losses=losses,
        p_value=sign_test(wins, losses),
        panel_cells=0 if panel is None else len(panel[0]),
        panel_candidate=panel_c,
        panel_active=panel_a,
        active=active_name,
    )


@dataclass(frozen=True)
class Decision:
    """The gate's verdict, with each check, recorded whether or not the candidate was promoted."""

    promoted: bool
    forced: bool
    checks: Mapping[str, bool]
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "promoted": self.promoted,
            "forced": self.forced,
            "checks": dict(self.checks),
            "reasons": list(self.reasons),
        }


def gate(evaluation: Evaluation, force: bool = False) -> Decision:
    e = evaluation
    checks = {
        "better_on_lab": e.wins > e.losses and e.p_value < ALPHA,
        "agrees_with_labels": e.candidate_accuracy >= MIN_AGREEMENT,
        "panel_kept": e.panel_candidate is None
        or e.panel_active is None
        or e.panel_candidate >= e.panel_active - MAX_PANEL_DROP,
    }
    reasons = []
    if not checks["better_on_lab"]:
        reasons.append(
            f"not better on the lab's held-out cells: {e.wins} fixed, {e.losses} broken "
            f"(p = {e.p_value:.3f}, needs < {ALPHA})"
        )
    if not checks["agrees_with_labels"]:
        reasons.append(
            f"reproduces only {e.candidate_accuracy:.1%} of the held-out labels (needs "
            f"{MIN_AGREEMENT:.0%}): are some cells mislabelled?"
        )
    if not checks["panel_kept"]:
        reasons.append(
            f"reference panel falls from {e.panel_active:.1%} to {e.panel_candidate:.1%} "
            f"(at most {MAX_PANEL_DROP:.0%} allowed)"
        )
    passed = all(checks.values())
    if force and not passed:
        reasons.append("promoted anyway: --promote")
    return Decision(passed or force, force and not passed, checks, tuple(reasons))
