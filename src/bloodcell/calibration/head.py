"""The output head a calibration refits: softmax(embedding @ kernel + bias), in numpy alone.

A lab's cells differ from the training labs' in stain, optics and framing, which moves them
in the model's embedding; the network's features still separate the cell types, but the
last layer's boundaries sit in the wrong place. Refitting only that layer needs no
TensorFlow, runs in seconds on two cores, and can be kept close to the shipped layer: the
fit minimises the class-balanced cross-entropy on the lab's cells plus a share of the
training labs' cells (``replay``) plus an L2 pull towards the shipped kernel and bias, so a
handful of cells moves the boundaries without forgetting what the model knew.

The problem is smooth and strongly convex, so Nesterov's accelerated gradient with the
step 1/L (L bounds the curvature) converges in a few hundred steps, deterministically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

FILE = "head.npz"
STEPS = 400
# the pull towards the shipped head, in units of the cells' mean squared embedding entry (so it
# means the same for any embedding width and scale); ``core`` picks one of PULLS per lab
PULL = 0.3
TOLERANCE = 1e-5
REPLAY_WEIGHT = 0.5  # the training labs' replay cells weigh half as much as the lab's own


@dataclass(frozen=True)
class Head:
    kernel: np.ndarray  # (D, K)
    bias: np.ndarray  # (K,)

    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.asarray(embeddings, dtype=np.float64) @ self.kernel + self.bias
        return out

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        return softmax(self.logits(embeddings))

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.argmax(self.logits(embeddings), axis=-1)
        return out

    @classmethod
    def load(cls, path: Path) -> Head:
        with np.load(path) as data:
            return cls(np.asarray(data["kernel"], np.float64), np.asarray(data["bias"], np.float64))

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"kernel": self.kernel.astype(np.float32), "bias": self.bias.astype(np.float32)}


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return out


def balanced_weights(labels: np.ndarray, total: float = 1.0) -> np.ndarray:
    """Each class present weighs the same in all: 5 monocytes count as much as 50 neutrophils."""
    classes, counts = np.unique(labels, return_counts=True)
    per_class = dict(zip(classes.tolist(), counts.tolist(), strict=True))
    w = np.array([1.0 / per_class[int(y)] for y in labels], dtype=np.float64)
    out: np.ndarray = w * (total / w.sum())
    return out


def _largest_eigenvalue(gram: np.ndarray) -> float:
    v = np.ones(gram.shape[0]) / np.sqrt(gram.shape[0])
    value = 0.0
    for _ in range(50):
        w = gram @ v
        value = float(np.linalg.norm(w))
        if value == 0.0:
            return 0.0
        v = w / value
    return value


def fit(
    start: Head,
    embeddings: np.ndarray,
    labels: np.ndarray,
    replay: tuple[np.ndarray, np.ndarray] | None = None,
    pull: float = PULL,
    steps: int = STEPS,
) -> Head:
    """The head minimising balanced cross-entropy + replay + (lambda / 2) * ||head - start||^2."""
    x = np.asarray(embeddings, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    w = balanced_weights(y)
    if replay is not None and len(replay[1]):
        x = np.concatenate([x, np.asarray(replay[0], np.float64)])
        y = np.concatenate([y, np.asarray(replay[1], np.int64)])
        w = np.concatenate([w, balanced_weights(np.asarray(replay[1]), REPLAY_WEIGHT)])
    w = w / w.sum()
    k = start.kernel.shape[1]
    xa = np.hstack([x, np.ones((len(x), 1))])  # the bias as one more input
    target = np.zeros((len(y), k))
    target[np.arange(len(y)), y] = 1.0
    theta0 = np.vstack([start.kernel, start.bias[None, :]])
    lam = pull * float(np.mean(x * x))
    # softmax cross-entropy has curvature at most 1/2 per input direction
    lipschitz = 0.5 * _largest_eigenvalue((xa * w[:, None]).T @ xa) + lam
    step = 1.0 / lipschitz
    kappa = lipschitz / lam
    momentum = (np.sqrt(kappa) - 1.0) / (np.sqrt(kappa) + 1.0)
    theta = theta0.copy()
    previous = theta0.copy()
    for i in range(steps):
        look = theta + momentum * (theta - previous)
        p = softmax(xa @ look)
        grad = xa.T @ ((p - target) * w[:, None]) + lam * (look - theta0)
        previous, theta = theta, look - step * grad
        if i % 20 == 19 and float(np.linalg.norm(theta - previous)) <= TOLERANCE * float(
            np.linalg.norm(theta)
        ):
            break  # converged: the steps have become negligible
    return Head(theta[:-1], theta[-1])
