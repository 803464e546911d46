"""Decoding untrusted uploads into a plain RGB picture, or a clear rejection.

Everything a person may drop into the bucket passes through here first, so every
way an upload can be unusable maps to a ``RejectedInput`` with a sentence a lab
technician can act on. Pixel limits are checked from the header, before any pixel
is decoded, so a decompression bomb never reaches memory.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from bloodcell.errors import RejectedInput
from bloodcell.formats import format_size

ACCEPTED_FORMATS = ("JPEG", "PNG", "TIFF", "BMP", "GIF", "WEBP", "MPO")
# Smallest side decoded for large photos: JPEG draft mode scales by 1/2..1/8 while
# decoding, which makes a 12 Mpx photo about 10x cheaper without losing the cell.
_DRAFT_MIN_SIDE = 720


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000
    min_side: int = 32
    max_aspect: float = 8.0


def _check_header(image: Image.Image, limits: ImageLimits) -> None:
    if image.format not in ACCEPTED_FORMATS:
        raise RejectedInput(
            f"unsupported image format {image.format}; accepted: JPEG, PNG, TIFF, BMP, GIF, WebP"
        )
    width, height = image.size
    if width * height > limits.max_pixels:
        raise RejectedInput(
            f"image is {width}x{height} pixels, over the limit of {limits.max_pixels / 1e6:.0f} megapixels"
        )
    if min(width, height) < limits.min_side:
        raise RejectedInput(
            f"image is {width}x{height} pixels, too small: each side must be at least "
            f"{limits.min_side} pixels"
        )
    if max(width, height) / min(width, height) > limits.max_aspect:
        raise RejectedInput(
            f"image is {width}x{height} pixels: aspect ratio over {limits.max_aspect:g}:1 "
            "is not a microscope field"
        )


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any mode to 8-bit RGB; transparency is composited on white like a slide background."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        values = np.asarray(image, dtype=np.float64)
        # 16-bit containers often hold 10-, 12- or 14-bit camera data: scale by the
        # depth the values actually use, or a 12-bit field would come out black.
        top = max(float(values.max()), 1.0)
        depth = min(16, max(8, int(np.ceil(np.log2(top + 1)))))
        scaled = np.clip(values * (255.0 / (2.0**depth - 1)), 0, 255)
        return Image.fromarray(scaled.astype(np.uint8), "L").convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    if image.mode != "RGB":
        return image.convert("RGB")
    return image


def decode_image(data: bytes, limits: ImageLimits | None = None) -> Image.Image:
    """Bytes of an upload to an upright RGB image, or ``RejectedInput`` saying why not."""
    limits = limits or ImageLimits()
    if not data:
        raise RejectedInput("the file is empty")
    if len(data) > limits.max_bytes:
        raise RejectedInput(
            f"the file is {format_size(len(data))}, over the limit of {format_size(limits.max_bytes)}"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            _check_header(image, limits)
            if image.format == "JPEG" and min(image.size) > 2 * _DRAFT_MIN_SIDE:
                scale = min(image.size) / _DRAFT_MIN_SIDE
                image.draft("RGB", (int(image.size[0] / scale), int(image.size[1] / scale)))
            image.seek(0)  # first frame of an animation only
            image.load()
            upright: Image.Image = ImageOps.exif_transpose(image) or image
            return _to_rgb(upright)
    except RejectedInput:
        raise
    except UnidentifiedImageError as exc:
        raise RejectedInput("the file is not an image (or not in a format we can read)") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise RejectedInput(
            f"the image declares more pixels than the limit of {limits.max_pixels / 1e6:.0f} megapixels "
            "(a decompression bomb)"
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise RejectedInput(f"the image is damaged or truncated ({exc})") from exc
