"""The stain and acquisition shifts and the framing shifts: what another lab changes, at fixed severities.

Each shift is a deterministic function of the picture (noise is seeded by the picture's own
pixels), applied to the decoded image before the runtime transform, as a lab's camera or
stain would have done it. Severity 1 is "moderate" (the issue's 3-point budget applies there),
severity 2 "strong". The figures are only reported: nothing is fitted on a shifted set.

- white balance towards yellow or cyan (lamp colour temperature, camera white point);
- stain intensity in HED optical density (more or less haematoxylin and eosin, a rapid stain);
- focus blur, JPEG compression, sensor noise;
- framing: a tight crop (the cell filling a 120 px picture) and the cell inside a larger field.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageFilter

Shift = Callable[[Image.Image], Image.Image]

_RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
_HED_FROM_RGB = np.linalg.inv(_RGB_FROM_HED)


def _array(im: Image.Image) -> np.ndarray:
    return np.asarray(im.convert("RGB"), dtype=np.float64)


def _image(a: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8))


def white_balance(gains: tuple[float, float, float]) -> Shift:
    return lambda im: _image(_array(im) * np.asarray(gains))


def stain(h: float, e: float) -> Shift:
    """Scale the haematoxylin and eosin optical densities (1.0 leaves the stain as it is)."""

    def apply(im: Image.Image) -> Image.Image:
        od = -np.log(np.clip(_array(im), 1.0, 255.0) / 255.0)
        hed = od @ _HED_FROM_RGB
        hed *= np.array([h, e, 1.0])
        return _image(255.0 * np.exp(-(hed @ _RGB_FROM_HED)))

    return apply


def blur(radius: float) -> Shift:
    return lambda im: im.filter(ImageFilter.GaussianBlur(radius))


def jpeg(quality: int) -> Shift:
    def apply(im: Image.Image) -> Image.Image:
        buf = io.BytesIO()
        im.convert("RGB").save(buf, "JPEG", quality=quality)
        return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")

    return apply


def noise(sigma: float) -> Shift:
    def apply(im: Image.Image) -> Image.Image:
        a = _array(im)
        rng = np.random.default_rng(int(a[::7, ::7].sum()) % 2**32)  # the same noise for the same picture
        return _image(a + rng.normal(0.0, sigma, a.shape))

    return apply


def tight(fraction: float = 0.6, side: int = 120) -> Shift:
    """The central ``fraction`` of a cell-centred picture at ``side`` px: the cell fills the frame."""

    def apply(im: Image.Image) -> Image.Image:
        w, h = im.size
        box = ((1 - fraction) / 2 * w, (1 - fraction) / 2 * h, (1 + fraction) / 2 * w, (1 + fraction) / 2 * h)
        return im.convert("RGB").resize((side, side), Image.Resampling.BICUBIC, box=box)

    return apply


def larger_field(factor: float = 2.0) -> Shift:
    """The picture mirrored out to ``factor`` times its size: the cell in a wider, crowded field."""

    def apply(im: Image.Image) -> Image.Image:
        a = np.asarray(im.convert("RGB"))
        pad_h, pad_w = round(a.shape[0] * (factor - 1) / 2), round(a.shape[1] * (factor - 1) / 2)
        return Image.fromarray(np.pad(a, ((pad_h, pad_h), (pad_w, pad_w), (0, 0)), mode="symmetric"))

    return apply


# name -> (moderate, strong)
SUITE: dict[str, tuple[Shift, Shift]] = {
    "white balance to yellow": (white_balance((1.06, 1.0, 0.82)), white_balance((1.1, 1.0, 0.65))),
    "white balance to cyan": (white_balance((0.85, 1.0, 1.05)), white_balance((0.7, 1.0, 1.08))),
    "stain: more haematoxylin and eosin": (stain(1.3, 1.3), stain(1.6, 1.6)),
    "stain: less haematoxylin and eosin": (stain(0.75, 0.75), stain(0.55, 0.55)),
    "stain: eosin-heavy": (stain(0.85, 1.4), stain(0.7, 1.8)),
    "blur": (blur(1.0), blur(2.0)),
    "JPEG": (jpeg(40), jpeg(15)),
    "noise": (noise(6.0), noise(14.0)),
}
