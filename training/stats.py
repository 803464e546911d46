"""Honest numbers from per-image outputs: bootstrap intervals over source cells, ECE, risk-coverage.

Kaggle's images are augmented copies of a few dozen original smears, so resampling images
would treat 35 copies of one cell as 35 cells and give intervals far too narrow. Every
statistic here resamples *groups* (distinct source cells; an unaugmented image is its own
group) with replacement and reads the 2.5 and 97.5 percentiles. Pure numpy, no TensorFlow.
"""

from __future__ import annotations

import numpy as np

N_WBC = 4
BOOTSTRAP = 2000
ECE_BINS = 15


def group_ids(groups: list[str]) -> np.ndarray:
    """Dense integer ids, in first-seen order, for the group name of every image."""
    ids: dict[str, int] = {}
    return np.array([ids.setdefault(g, len(ids)) for g in groups], dtype=np.int64)


def _weights(n_groups: int, seed: int) -> np.ndarray:
    """(BOOTSTRAP, n_groups) how many times each group is drawn in each resample."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_groups, size=(BOOTSTRAP, n_groups))
    out = np.zeros((BOOTSTRAP, n_groups), dtype=np.float64)
    np.add.at(out, (np.repeat(np.arange(BOOTSTRAP), n_groups), draws.ravel()), 1.0)
    return out


def ratio_ci(
    numerator: np.ndarray, denominator: np.ndarray, gid: np.ndarray, seed: int = 0
) -> tuple[float, float]:
    """95 % interval of sum(numerator) / sum(denominator), resampling the groups in ``gid``."""
    n_groups = int(gid.max()) + 1 if len(gid) else 0
    if n_groups == 0 or denominator.sum() == 0:
        return (float("nan"), float("nan"))
    num = np.bincount(gid, weights=numerator.astype(np.float64), minlength=n_groups)
    den = np.bincount(gid, weights=denominator.astype(np.float64), minlength=n_groups)
    w = _weights(n_groups, seed)
    top, bottom = w @ num, w @ den
    ok = bottom > 0
    values = top[ok] / bottom[ok]
    lo, hi = np.percentile(values, [2.5, 97.5])
    return (round(float(lo), 4), round(float(hi), 4))


def ece(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error: |accuracy - confidence| per equal-width bin, weighted by its share."""
    if len(confidence) == 0:
        return float("nan")
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            total += m.mean() * abs(float(correct[m].mean()) - float(confidence[m].mean()))
    return round(total, 4)


def reliability(
    confidence: np.ndarray, correct: np.ndarray, bins: int = 10
) -> list[tuple[float, float, int]]:
    """(mean confidence, accuracy, count) per equal-width bin, for the reliability diagram."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    out = []
    for b in range(bins):
        m = which == b
        if m.any():
            out.append((float(confidence[m].mean()), float(correct[m].mean()), int(m.sum())))
    return out


def risk_coverage(score: np.ndarray, correct: np.ndarray, points: int = 21) -> list[tuple[float, float]]:
    """(coverage, accuracy on the covered cells) keeping the cells of highest ``score`` first."""
    order = np.argsort(-score, kind="stable")
    hits = np.cumsum(correct[order])
    n = len(score)
    out = []
    for c in np.linspace(0.5, 1.0, points):
        k = max(1, int(np.round(c * n)))
        out.append((round(float(c), 3), round(float(hits[k - 1] / k), 4)))
    return out


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The T minimising the negative log-likelihood of ``p ** (1/T)`` (renormalised) on validation."""
    logp = np.log(np.clip(probs, 1e-12, None))
    best_t, best_nll = 1.0, float("inf")
    for t in np.round(np.arange(0.5, 3.001, 0.02), 2):
        z = logp / t
        z = z - z.max(1, keepdims=True)
        nll = float(-(z[np.arange(len(z)), labels] - np.log(np.exp(z).sum(1))).mean())
        if nll < best_nll:
            best_t, best_nll = float(t), nll
    return best_t


def scale(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature scaling of softmax rows, as ``Classifier.calibrated`` does one row."""
    z = np.log(np.clip(probs, 1e-12, None)) / temperature
    p = np.exp(z - z.max(1, keepdims=True))
    out: np.ndarray = p / p.sum(1, keepdims=True)
    return out
