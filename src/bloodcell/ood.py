"""How unlike the training data a cell is: Mahalanobis distance in the model's embedding.

The maximum softmax probability cannot say "this lab's cells are unfamiliar": model 1.0.1 was
confidently wrong on labs it never saw. The distance from a cell's penultimate embedding to
the nearest white-cell class mean, measured with the training cells' shared covariance, grows
when the stain, optics or framing differ from anything learnt, whatever the softmax says.
Training fits the means and covariance (``fit``) and ships them beside the model as
``ood.npz``; evaluation picks the threshold on validation cells; the runtime only scores.
The score is the distance divided by the square root of the embedding size, so thresholds
read alike for any network width.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

FILE = "ood.npz"
N_WBC = 4
# Ledoit-Wolf-like shrinkage towards the mean variance: a few thousand cells in 256
# dimensions give a covariance too noisy to invert as it stands.
SHRINKAGE = 0.1


@dataclass(frozen=True)
class OodModel:
    means: np.ndarray  # (N_WBC, D) class means of the training embeddings
    precision: np.ndarray  # (D, D) inverse of the shrunk shared covariance

    def score(self, embedding: np.ndarray) -> float:
        """The distance to the nearest white-cell class, per embedding dimension."""
        d = np.asarray(embedding, dtype=np.float64)[None, :] - self.means
        dist2 = np.einsum("kd,de,ke->k", d, self.precision, d)
        return float(np.sqrt(max(float(dist2.min()), 0.0) / self.means.shape[1]))

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        return np.array([self.score(e) for e in embeddings])

    def save(self, path: Path) -> None:
        with path.open("wb") as fh:
            np.savez(fh, means=self.means.astype(np.float32), precision=self.precision.astype(np.float32))

    @classmethod
    def load(cls, path: Path) -> OodModel:
        with np.load(path) as data:
            return cls(np.asarray(data["means"], np.float64), np.asarray(data["precision"], np.float64))


def fit(embeddings: np.ndarray, labels: np.ndarray) -> OodModel:
    """Class means and the shrunk shared covariance of the white-cell training embeddings."""
    x = np.asarray(embeddings, dtype=np.float64)
    y = np.asarray(labels)
    present = [c for c in range(N_WBC) if (y == c).any()]
    means = np.stack([x[y == c].mean(axis=0) for c in present])
    centred = np.concatenate([x[y == c] - means[i] for i, c in enumerate(present)])
    cov = centred.T @ centred / max(1, len(centred) - 1)
    cov = (1.0 - SHRINKAGE) * cov + SHRINKAGE * float(np.trace(cov)) / cov.shape[0] * np.eye(cov.shape[0])
    return OodModel(means, np.linalg.inv(cov))


# A slide is "unlike the training data" when more than this share of its classified cells are
# unfamiliar (and at least MIN_CELLS_FOR_VERDICT were classified): on the training labs about
# 2.5 % of cells are, on a lab the model never saw most of them are.
UNFAMILIAR_SLIDE_SHARE = 0.25
MIN_CELLS_FOR_VERDICT = 4


def slide_unfamiliar(flags: list[bool | None]) -> bool:
    """The slide's verdict from its cells' ``unfamiliar`` flags (None: the model had no OOD score)."""
    known = [f for f in flags if f is not None]
    if len(known) < MIN_CELLS_FOR_VERDICT:
        return False
    return sum(known) / len(known) > UNFAMILIAR_SLIDE_SHARE
