"""Balanced sampling and batch augmentation for train.py (TensorFlow is passed in, not imported).

Augmentation matches the variation between and within the sources: scale 0.75-1.33x of the
nominal crop (covers PBC at 224 vs 360 px and localisation noise), a small shift, the 8
rotations/flips (a cell has no orientation), and stain/colour jitter (hue rotation about the
grey axis, per-channel gain, saturation, contrast, brightness) so the model learns
morphology rather than one lab's colours. The 2.0.0 candidate recipe (``blur_noise``) adds
focus and sensor variation (a random 3x3 blur on a third of the cells, Gaussian pixel noise):
the labs differ in optics and JPEG/camera noise as much as in stain. Without it the random
stream is exactly 1.0.0's, so the shipped recipe draws the same augmentations.

Model 3 (``lab_shift``) adds what another lab changes and the shared transform cannot undo:
the stain itself (haematoxylin and eosin amounts, jittered in HED optical-density space), a
stain mix-up that gives a cell the colour statistics of another cell of the batch (often
of the other lab), a residual white-balance tilt towards yellow or cyan, tight framing
(the field outside a random square replaced by background, as ``cellcrop`` pads a
120 px crop), lower optical resolution (down- then up-sampling), focus blur and noise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bloodcell.contract import CONTRACT
from training import data as cache
from training.splits import OTHER_INDEX


class Sampler:
    """Balanced batches: every (source, class) group equally likely; OTHER a fixed share."""

    def __init__(self, labels: np.ndarray, sources: list[str], seed: int, other_weight: float = 1.6) -> None:
        self.rng = np.random.default_rng(seed)
        keys = [f"{s}:{label}" for s, label in zip(sources, labels, strict=True)]
        names = sorted(set(keys))
        self.groups = [np.array([i for i, k in enumerate(keys) if k == n]) for n in names]
        w = np.array([other_weight if n.endswith(f":{OTHER_INDEX}") else 1.0 for n in names])
        # a handful of archive cells must not be drawn as often as a whole PBC class folder
        sizes = np.array([len(g) for g in self.groups])
        w = w * np.where([n.startswith("archive:") for n in names], np.minimum(1.0, sizes / 500.0), 1.0)
        self.weights = w / w.sum()

    def batch(self, size: int) -> np.ndarray:
        g = self.rng.choice(len(self.groups), size=size, p=self.weights)
        return np.array([self.groups[k][self.rng.integers(len(self.groups[k]))] for k in g])


# Ruifrok and Johnston's stain vectors (rows: haematoxylin, eosin, residual) in RGB optical density.
_RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], np.float32)
_HED_FROM_RGB = np.linalg.inv(_RGB_FROM_HED).astype(np.float32)


def augment_fn(tf, seed: int, blur_noise: bool = False, lab_shift: bool = False):  # type: ignore[no-untyped-def]
    """Batch augmentation: scale/shift crop, the 8 dihedral symmetries, stain and colour jitter."""
    gen = tf.random.Generator.from_seed(seed)
    nominal = CONTRACT.width / cache.CACHE_SIZE
    low, high = (0.7, 1.45) if lab_shift else (0.75, 1.33)

    def augment(x, y):  # type: ignore[no-untyped-def]
        n = tf.shape(x)[0]
        x = tf.cast(x, tf.float32) / 255.0
        # scale 0.75..1.33 of the nominal crop (covers 224 vs 360 px and localisation noise)
        side = tf.minimum(nominal * tf.exp(gen.uniform([n], np.log(low), np.log(high))), 1.0)
        room = (1.0 - side) / 2.0
        cy = 0.5 + gen.uniform([n], -1.0, 1.0) * tf.minimum(room, 0.08)
        cx = 0.5 + gen.uniform([n], -1.0, 1.0) * tf.minimum(room, 0.08)
        boxes = tf.stack([cy - side / 2, cx - side / 2, cy + side / 2, cx + side / 2], axis=1)
        x = tf.image.crop_and_resize(x, boxes, tf.range(n), [CONTRACT.height, CONTRACT.width])

        def pick() -> Any:
            return gen.uniform([n, 1, 1, 1]) < 0.5

        x = tf.where(pick(), tf.transpose(x, [0, 2, 1, 3]), x)
        x = tf.where(pick(), tf.reverse(x, [1]), x)
        x = tf.where(pick(), tf.reverse(x, [2]), x)
        if lab_shift:
            x = _lab_shift(tf, gen, x, n)  # type: ignore[no-untyped-call]
        # stain: hue rotation about the grey axis, per-channel gain, saturation, contrast, brightness
        angle = gen.uniform([n], -0.35, 0.35)
        c, s = tf.cos(angle), tf.sin(angle)
        k = 1.0 / 3.0
        q = np.sqrt(1.0 / 3.0)

        def row(a: Any, b: Any, d: Any) -> Any:
            return tf.stack([a, b, d], axis=-1)

        rot = tf.stack(
            [
                row(c + (1 - c) * k, k * (1 - c) - q * s, k * (1 - c) + q * s),
                row(k * (1 - c) + q * s, c + (1 - c) * k, k * (1 - c) - q * s),
                row(k * (1 - c) - q * s, k * (1 - c) + q * s, c + (1 - c) * k),
            ],
            axis=1,
        )
        x = tf.einsum("bhwc,bdc->bhwd", x, rot)
        x = x * tf.exp(gen.normal([n, 1, 1, 3], stddev=0.07))
        grey = tf.reduce_mean(x, axis=-1, keepdims=True)
        x = grey + (x - grey) * tf.exp(gen.uniform([n, 1, 1, 1], -0.4, 0.4))
        mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
        x = mean + (x - mean) * tf.exp(gen.uniform([n, 1, 1, 1], -0.25, 0.25))
        x = x + gen.uniform([n, 1, 1, 1], -0.08, 0.08)
        if not blur_noise:
            return tf.clip_by_value(x, 0.0, 1.0), y
        # focus: a 3x3 binomial blur, of random strength, on about a third of the cells
        k1 = tf.constant([0.25, 0.5, 0.25], tf.float32)
        kernel = tf.tile((k1[:, None] * k1[None, :])[:, :, None, None], [1, 1, 3, 1])
        padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], "SYMMETRIC")  # no dark zero border
        blurred = tf.nn.depthwise_conv2d(padded, kernel, [1, 1, 1, 1], "VALID")
        amount = tf.where(gen.uniform([n, 1, 1, 1]) < 0.33, gen.uniform([n, 1, 1, 1], 0.3, 1.0), 0.0)
        x = x + (blurred - x) * amount
        # sensor noise
        x = x + gen.normal(tf.shape(x)) * gen.uniform([n, 1, 1, 1], 0.0, 0.03)
        return tf.clip_by_value(x, 0.0, 1.0), y

    return augment


def _lab_shift(tf, gen, x, n):  # type: ignore[no-untyped-def]
    """Another lab's stain, white balance, framing and optics (model 3's recipe), on 0..1 RGB."""
    u = gen.uniform
    # stain amounts in HED optical density: scale and offset each stain per cell
    od = -tf.math.log(tf.clip_by_value(x, 1.0 / 255.0, 1.0))
    hed = tf.einsum("bhwc,cd->bhwd", od, tf.constant(_HED_FROM_RGB))
    hed = hed * tf.exp(gen.normal([n, 1, 1, 3], stddev=0.22)) + gen.normal([n, 1, 1, 3], stddev=0.03)
    od = tf.einsum("bhwd,dc->bhwc", hed, tf.constant(_RGB_FROM_HED))
    # stain mix-up: the optical-density statistics of another cell of the batch, partly
    mean = tf.reduce_mean(od, axis=[1, 2], keepdims=True)
    std = tf.math.reduce_std(od, axis=[1, 2], keepdims=True) + 1e-3
    partner = tf.argsort(u([n]))  # a permutation from the seeded stream: reproducible
    mixed = (od - mean) / std * tf.gather(std, partner) + tf.gather(mean, partner)
    amount = tf.where(u([n, 1, 1, 1]) < 0.5, u([n, 1, 1, 1], 0.0, 1.0), 0.0)
    od = od + (mixed - od) * amount
    x = tf.clip_by_value(tf.exp(-tf.maximum(od, 0.0)), 0.0, 1.0)
    # residual white balance: a tilt towards yellow (+) or cyan (-)
    tilt = gen.normal([n, 1, 1, 1], stddev=0.06)
    x = x * tf.exp(tilt * tf.constant([[[[0.6, 0.3, -1.0]]]], tf.float32))
    # tight framing: outside a random square, the cell's own bright background
    size = CONTRACT.width
    # the brightest 8x8 block's colour: background in any smear, and far cheaper than a sort
    background = tf.reduce_max(tf.nn.avg_pool2d(x, 8, 8, "VALID"), axis=[1, 2], keepdims=True)
    half = u([n, 1, 1, 1], 0.3, 0.45) * size
    grid = tf.cast(tf.range(size), tf.float32) - (size - 1) / 2.0
    inside = (tf.abs(grid)[None, :, None, None] <= half) & (tf.abs(grid)[None, None, :, None] <= half)
    x = tf.where((u([n, 1, 1, 1]) < 0.15) & ~inside, background, x)
    # optics: lower resolution on a quarter of the cells, then focus blur and sensor noise
    coarse = tf.image.resize(
        tf.image.resize(x, [size // 2, size // 2], antialias=True), [size, size], method="bilinear"
    )
    x = tf.where(u([n, 1, 1, 1]) < 0.25, coarse, x)
    k1 = tf.constant([0.06, 0.24, 0.4, 0.24, 0.06], tf.float32)
    kernel = tf.tile((k1[:, None] * k1[None, :])[:, :, None, None], [1, 1, 3, 1])
    padded = tf.pad(x, [[0, 0], [2, 2], [2, 2], [0, 0]], "SYMMETRIC")
    blurred = tf.nn.depthwise_conv2d(padded, kernel, [1, 1, 1, 1], "VALID")
    x = x + (blurred - x) * tf.where(u([n, 1, 1, 1]) < 0.3, u([n, 1, 1, 1], 0.3, 1.0), 0.0)
    x = x + gen.normal(tf.shape(x)) * u([n, 1, 1, 1], 0.0, 0.025)
    return tf.clip_by_value(x, 0.0, 1.0)
