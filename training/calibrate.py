"""Choose the 'uncertain' rule's two thresholds on validation data (never on a test set).

A result is flagged when the top white-cell softmax is below ``min_top_probability``
or the OTHER softmax is above ``max_other_probability`` (``Classifier.interpret``).
We keep the pair that flags the most ``pbc/other`` validation cells while flagging at
most ``max_wbc_flag`` of each source's validation white cells: a little under the 5 %
target, to leave room for the difference between validation and unseen data.
``min_top_probability`` never goes below ``MIN_TOP_FLOOR``: a four-way answer that the
model gives less than even odds is shown as uncertain whatever the search prefers
(left free, it chose 0.0 and only the OTHER output ever flagged anything).
"""

from __future__ import annotations

import numpy as np

N_WBC = 4
MIN_TOP_FLOOR = 0.5


def flags(probs: np.ndarray, min_top: float, max_other: float) -> np.ndarray:
    return (probs[:, :N_WBC].max(1) < min_top) | (probs[:, N_WBC] > max_other)


def choose_thresholds(
    probs: np.ndarray,
    labels: np.ndarray,
    sources: list[str],
    max_wbc_flag: dict[str, float] | None = None,
) -> dict[str, float]:
    limits = max_wbc_flag or {"pbc": 0.035, "kaggle": 0.05}
    src = np.array(sources)
    other = probs[src == "pbc-other"]
    best: tuple[float, float, float, float] | None = None
    for min_top in np.round(np.arange(MIN_TOP_FLOOR, 0.96, 0.01), 2):
        for max_other in np.round(
            np.concatenate([np.arange(0.02, 0.5, 0.01), np.arange(0.5, 1.01, 0.02)]), 2
        ):
            rates = {
                s: float(flags(probs[(src == s) & (labels < N_WBC)], min_top, max_other).mean())
                for s in limits
            }
            if any(rates[s] > limits[s] for s in limits):
                continue
            caught = float(flags(other, min_top, max_other).mean())
            wbc = sum(rates.values())
            key = (caught, -wbc, float(max_other), -float(min_top))
            if best is None or key > best:
                best = key
    if best is None:
        return {
            "min_top_probability": MIN_TOP_FLOOR,
            "max_other_probability": 1.0,
            "val_other_flag_rate": 0.0,
        }
    caught, _, max_other, neg_min_top = best
    min_top = -neg_min_top
    result = {
        "min_top_probability": float(min_top),
        "max_other_probability": float(max_other),
        "val_other_flag_rate": round(caught, 4),
    }
    for s in limits:
        m = (src == s) & (labels < N_WBC)
        result[f"val_{s}_wbc_flag_rate"] = round(float(flags(probs[m], min_top, max_other).mean()), 4)
    return result
