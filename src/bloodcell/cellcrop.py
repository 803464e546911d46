"""The one image-to-tensor transform, shared by training, preprocess and classify.

A white cell is found as the most purple region of the picture (its nucleus stains
dark violet in every Romanowsky-type stain, while red cells and background do not),
then a square is cut around it whose side is proportional to the square root of the
nucleus area. Because that side follows the picture's content rather than a pixel
count, the same cell photographed at 224 px or at 360 px (or in a 640x480 field)
yields the same crop. Training caches a slightly larger crop (``cell_crop`` with
``margin > 1``) so it can random-crop scale augmentations from it; ``cell_tensor``
is the runtime entry point. Only numpy and Pillow are used, on a downsampled copy,
so the whole transform takes a few milliseconds.

Two steps make the crop independent of the lab (tensor contract 2):

- **White balance on the background.** Every lab's camera, lamp and stain tint the
  background: PBC's is beige, Kaggle's grey, other labs' yellow or cyan. The brightest
  tenth of the picture is background (or the palest red-cell centres) in every smear,
  so its median colour is mapped to one neutral grey, per channel, before the cell is
  located and cut. A yellow cast no longer turns a neutrophil's cytoplasm orange.
- **Padding instead of zooming.** A tight crop (the cell fills a 120 px picture) asks
  for a square larger than the picture; it is padded with the background colour rather
  than clamped, so the cell keeps the size it has in every other lab's crops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from bloodcell.contract import CONTRACT

# Short side of the downsampled copy the cell is located on.
_WORK_SIDE = 64
# Crop side = _SIDE_PER_SQRT_AREA * sqrt(nucleus area), clamped to a fraction of the short side.
_SIDE_PER_SQRT_AREA = 2.8
_MIN_SIDE_FRACTION = 0.3
_MAX_SIDE_FRACTION = 1.0
# Used when nothing purple stands out (a blank or non-microscope picture).
_FALLBACK_SIDE_FRACTION = 0.7
# Least purple-score contrast (0..255 units) between the peak and the background.
_MIN_CONTRAST = 12.0
# The background is the median colour of the brightest _BACKGROUND_SHARE of the picture,
# mapped to _NEUTRAL in every channel; gains stay inside _GAIN_RANGE (a black or blank
# picture must not be amplified into noise).
_BACKGROUND_SHARE = 0.1
_NEUTRAL = 230.0
_GAIN_RANGE = (0.5, 2.0)
# A crop may reach this many times the short side; beyond the picture it is padded.
_MAX_PAD_FRACTION = 2.0


@dataclass(frozen=True)
class CellBox:
    """Where the cell is, in the original image's pixels."""

    cx: float
    cy: float
    side: float
    found: bool
    # per-channel gains that map this picture's background to neutral grey
    gains: tuple[float, float, float] = (1.0, 1.0, 1.0)


def _box_blur(a: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window via summed-area tables (edges replicate)."""
    k = 2 * radius + 1
    padded = np.pad(a, radius, mode="edge")
    c = np.cumsum(np.cumsum(padded, axis=0), axis=1)
    c = np.pad(c, ((1, 0), (1, 0)))
    total: np.ndarray = (c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]) / float(k * k)
    return total


def _dilate(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    out[1:, :] |= mask[:-1, :]
    out[:-1, :] |= mask[1:, :]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def _purple_score(small: np.ndarray) -> np.ndarray:
    """High on violet nuclei, low on pink/red cells, beige or grey background and black borders.

    Blue minus green separates nuclei from red cells in both the Kaggle/BCCD and the
    PBC stains; weighting by darkness keeps pale lilac red cells below dark nuclei.
    """
    r, g, b = small[..., 0], small[..., 1], small[..., 2]
    chroma = np.clip(b - g, 0.0, None) + 0.5 * np.clip(r - g, 0.0, None)
    darkness = 1.0 - (r + g + b) / (3.0 * 255.0)
    score: np.ndarray = chroma * (0.5 + darkness)
    return score


def locate_cell(rgb: Image.Image) -> CellBox:
    """Centre and crop side of the white cell, or a centre fallback when none is found."""
    width, height = rgb.size
    short = min(width, height)
    fallback = CellBox(width / 2.0, height / 2.0, _FALLBACK_SIDE_FRACTION * short, False)
    f = short / _WORK_SIDE
    sw, sh = max(8, round(width / f)), max(8, round(height / f))
    small = np.asarray(rgb.resize((sw, sh), Image.Resampling.BOX), dtype=np.float32)
    gains = background_gains(small)
    small = np.clip(small * np.asarray(gains, dtype=np.float32), 0.0, 255.0)
    fallback = CellBox(fallback.cx, fallback.cy, fallback.side, False, gains)
    fx, fy = width / sw, height / sh
    score = _box_blur(_purple_score(small), 1)
    # A gentle preference for the centre, where every training source puts the cell.
    yy, xx = np.mgrid[0:sh, 0:sw]
    dist2 = ((xx - (sw - 1) / 2.0) / sw) ** 2 + ((yy - (sh - 1) / 2.0) / sh) ** 2
    weighted = score * (1.0 - 0.6 * dist2)
    peak = np.unravel_index(int(np.argmax(weighted)), weighted.shape)
    background = float(np.median(score))
    top = float(score[peak])
    if not np.isfinite(top) or top - background < _MIN_CONTRAST:
        return fallback
    mask = score > background + 0.5 * (top - background)
    loose = _dilate(mask)
    region = np.zeros_like(mask)
    region[peak] = True
    for _ in range(sw + sh):
        grown = _dilate(region) & loose
        if np.array_equal(grown, region):
            break
        region = grown
    region &= mask
    count = int(region.sum())
    if count == 0:
        return fallback
    ys, xs = np.nonzero(region)
    cx = (float(xs.mean()) + 0.5) * fx
    cy = (float(ys.mean()) + 0.5) * fy
    area = count * fx * fy
    side = _SIDE_PER_SQRT_AREA * float(np.sqrt(area))
    side = float(np.clip(side, _MIN_SIDE_FRACTION * short, _MAX_PAD_FRACTION * short))
    return CellBox(cx, cy, side, True, gains)


def background_gains(pixels: np.ndarray) -> tuple[float, float, float]:
    """Per-channel gains that bring the picture's background to neutral grey."""
    flat = pixels.reshape(-1, 3).astype(np.float32)
    lum = flat.mean(axis=1)
    bright = flat[lum >= np.quantile(lum, 1.0 - _BACKGROUND_SHARE)]
    background = np.median(bright, axis=0)
    gains = np.clip(_NEUTRAL / np.maximum(background, 1.0), *_GAIN_RANGE)
    return (float(gains[0]), float(gains[1]), float(gains[2]))


def crop_box(box: CellBox, width: int, height: int, margin: float = 1.0) -> tuple[float, float, float, float]:
    """The square (left, top, right, bottom) around the cell, shifted to stay inside the image.

    Shifting rather than padding keeps every pixel real where the picture is large
    enough; only a square larger than the picture's short side reaches outside it (see
    ``cell_crop``, which pads that with the background colour, never black).
    """
    side = box.side * margin
    left = _place(box.cx, side, width)
    top = _place(box.cy, side, height)
    return left, top, left + side, top + side


def _place(centre: float, side: float, extent: int) -> float:
    """The square's start along one axis: inside the picture, or centred on it when larger."""
    if side >= extent:
        return (extent - side) / 2.0
    return float(np.clip(centre - side / 2.0, 0.0, extent - side))


def cell_crop(rgb: Image.Image, size: int, margin: float = 1.0) -> np.ndarray:
    """uint8 (size, size, 3) square around the cell, ``margin`` times the nominal side.

    With ``margin=m`` and ``size=round(m * CONTRACT.width)`` the central
    ``CONTRACT.width`` pixels match ``cell_tensor``: training uses this to cut scale and
    shift augmentations from a cached, slightly larger crop.
    """
    if rgb.mode != "RGB":
        rgb = rgb.convert("RGB")
    box = locate_cell(rgb)
    width, height = rgb.size
    left, top, right, bottom = crop_box(box, width, height, margin)
    gains = np.asarray(box.gains, dtype=np.float32)
    if left >= 0 and top >= 0 and right <= width and bottom <= height:
        small = rgb.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, right, bottom))
        pixels = np.asarray(small, dtype=np.float32)
    else:
        pixels = _padded(rgb, (left, top, right, bottom), size, gains)
    crop: np.ndarray = np.clip(pixels * gains + 0.5, 0.0, 255.0).astype(np.uint8)
    return crop


def _padded(
    rgb: Image.Image, region: tuple[float, float, float, float], size: int, gains: np.ndarray
) -> np.ndarray:
    """The square ``region`` at ``size`` pixels, the part outside the picture in its background colour."""
    left, top, right, _ = region
    scale = size / (right - left)
    width, height = rgb.size
    inner_w = max(1, round(width * scale))
    inner_h = max(1, round(height * scale))
    inner = np.asarray(rgb.resize((inner_w, inner_h), Image.Resampling.BILINEAR), dtype=np.float32)
    background = np.float32(_NEUTRAL) / gains  # the background colour before the gains
    canvas = np.empty((size, size, 3), np.float32)
    canvas[:] = background
    x0, y0 = round(-left * scale), round(-top * scale)
    # the picture's part that falls on the canvas (it may also overhang on one side)
    sx0, sy0 = max(0, -x0), max(0, -y0)
    dx0, dy0 = max(0, x0), max(0, y0)
    w = min(inner_w - sx0, size - dx0)
    h = min(inner_h - sy0, size - dy0)
    if w > 0 and h > 0:
        canvas[dy0 : dy0 + h, dx0 : dx0 + w] = inner[sy0 : sy0 + h, sx0 : sx0 + w]
    return canvas


def cell_tensor(rgb: Image.Image) -> np.ndarray:
    """An RGB picture to a ``CONTRACT.shape`` float32 array, scaled by ``CONTRACT.scale``."""
    crop = cell_crop(rgb, CONTRACT.width)
    if crop.shape[0] != CONTRACT.height:  # the contract is square today; stay correct if not
        crop = np.asarray(Image.fromarray(crop).resize((CONTRACT.width, CONTRACT.height)))
    return crop.astype(np.float32) * np.float32(CONTRACT.scale)
