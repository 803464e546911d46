"""Decoding untrusted uploads into a plain RGB picture, or a clear rejection.

Everything a person may drop into the bucket passes through here first, so every
way an upload can be unusable maps to a ``RejectedInput`` with a sentence a lab
technician can act on.

Memory is decided before any pixel is decoded. A 200 KB GIF can declare 49
megapixels, and decoding plus converting it naively costs over a gigabyte, so the
header's size and mode give an estimate of what decoding will hold at its peak,
and an upload over ``ImageLimits.max_decode_bytes`` is refused. Large JPEGs decode
at reduced scale (draft mode); other large images are reduced right after decoding,
before any mode conversion, so the conversions only ever touch a small picture. The
cell crop never needs more than a ~720 px short side, so nothing the model sees
is lost.
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from bloodcell.errors import RejectedInput
from bloodcell.formats import format_size

ACCEPTED_FORMATS = ("JPEG", "PNG", "TIFF", "BMP", "GIF", "WEBP", "MPO")
# Short side large images are reduced to (at least): JPEG draft mode scales by
# 1/2..1/8 while decoding; other formats are reduced by a whole factor after it.
# The cell crop is a fraction of the short side resampled to the model's input,
# so 720 px keeps every detail the model can use.
WORK_MIN_SIDE = 720
# Pixels the 4000x3000 camera frame of a microscope needs, with room for 24 MP
# (6000x4000) sensors: the default of MAX_IMAGE_PIXELS.
DEFAULT_MAX_PIXELS = 25_000_000
# What one decode may hold at its peak: a 4000x3000 frame in any accepted format
# (WebP, the costliest, needs 192 MB). With the interpreter, numpy and Pillow
# (~40 MB) preprocess stays under 300 MB, inside its 512 Mi container.
DEFAULT_MAX_DECODE_BYTES = 192 * 1024 * 1024
MB = 1024 * 1024

# Peak bytes per declared pixel while decoding and reducing, by the mode the header
# declares (measured with VmHWM). Pillow keeps RGB, LA and CMYK as 4 bytes a pixel;
# alpha is reduced one band at a time (1 more); a palette image is converted (4 more)
# before it can be reduced; 16-bit data is copied into numpy once or twice.
_PEAK_BYTES_PER_PIXEL = {
    "1": 2,
    "L": 1,
    "P": 6,
    "RGB": 4,
    "RGBA": 5,
    "LA": 5,
    "I": 4,
    "F": 4,
    "I;16": 6,
    "I;16L": 6,
    "I;16B": 6,
    "I;16N": 6,
}
_DEFAULT_PEAK_BYTES = 8  # any other mode is converted to RGB, a full second copy
# Pillow's WebP decoder holds the canvas, the previous frame and the handed-over
# buffer beside the image: four RGBX copies, whatever the alpha.
_WEBP_PEAK_BYTES = 16
_REDUCIBLE = ("L", "LA", "RGB", "RGBA", "I", "F")
_T = Image.Transpose
# EXIF orientation -> the transpose that shows the picture upright
_UPRIGHT = {
    2: _T.FLIP_LEFT_RIGHT,
    3: _T.ROTATE_180,
    4: _T.FLIP_TOP_BOTTOM,
    5: _T.TRANSPOSE,
    6: _T.ROTATE_270,
    7: _T.TRANSVERSE,
    8: _T.ROTATE_90,
}


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = DEFAULT_MAX_PIXELS
    min_side: int = 32
    max_aspect: float = 8.0
    max_decode_bytes: int = DEFAULT_MAX_DECODE_BYTES


def decode_cost(image: Image.Image) -> int:
    """Peak bytes decoding ``image`` (opened, not loaded) will hold, from its header alone."""
    width, height = image.size
    if image.format == "WEBP":
        return width * height * _WEBP_PEAK_BYTES
    return width * height * _PEAK_BYTES_PER_PIXEL.get(image.mode, _DEFAULT_PEAK_BYTES)


def _webp_size(data: bytes) -> tuple[int, int] | None:
    """Canvas size from a WebP's first chunk (VP8, VP8L or VP8X), without any decoder."""
    if len(data) < 30 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    chunk = data[12:16]
    if chunk == b"VP8X":
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        return (
            int.from_bytes(data[26:28], "little") & 0x3FFF,
            int.from_bytes(data[28:30], "little") & 0x3FFF,
        )
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _check_webp(data: bytes, limits: ImageLimits) -> None:
    """Pillow's WebP plugin allocates the whole canvas when it opens the file, so check first."""
    size = _webp_size(data)
    if size is None:
        return
    width, height = size
    _check_pixels(width, height, limits)
    cost = width * height * _WEBP_PEAK_BYTES
    if cost > limits.max_decode_bytes:
        raise RejectedInput(_over_budget(width, height, "WEBP", cost, limits))


def _check_pixels(width: int, height: int, limits: ImageLimits) -> None:
    if width * height > limits.max_pixels:
        raise RejectedInput(
            f"image is {width}x{height} pixels, over the limit of {limits.max_pixels / 1e6:.0f} megapixels"
        )


def _check_header(image: Image.Image, limits: ImageLimits) -> None:
    if image.format not in ACCEPTED_FORMATS:
        raise RejectedInput(
            f"unsupported image format {image.format}; accepted: JPEG, PNG, TIFF, BMP, GIF, WebP"
        )
    width, height = image.size
    _check_pixels(width, height, limits)
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


def _over_budget(width: int, height: int, kind: str, cost: int, limits: ImageLimits) -> str:
    return (
        f"decoding this {width}x{height} {kind} image would need about {format_size(cost)}, "
        f"over the budget of {format_size(limits.max_decode_bytes)}; save it as JPEG or at a lower resolution"
    )


def _check_cost(image: Image.Image, limits: ImageLimits) -> None:
    cost = decode_cost(image)
    if cost > limits.max_decode_bytes:
        width, height = image.size
        raise RejectedInput(_over_budget(width, height, f"{image.format} ({image.mode})", cost, limits))


def _draft(image: Image.Image) -> None:
    """JPEG only: let libjpeg decode at 1/2..1/8 scale, keeping a WORK_MIN_SIDE short side."""
    if image.format in ("JPEG", "MPO") and min(image.size) > 2 * WORK_MIN_SIDE:
        scale = min(image.size) / WORK_MIN_SIDE
        image.draft("RGB", (int(image.size[0] / scale), int(image.size[1] / scale)))


def _reduce(image: Image.Image) -> Image.Image:
    """A whole-factor box reduction of a large decoded image, before any costly conversion."""
    factor = min(image.size) // WORK_MIN_SIDE
    if factor < 2:
        return image
    if image.mode.startswith("I;16"):
        values = np.asarray(image)
        h, w = (values.shape[0] // factor) * factor, (values.shape[1] // factor) * factor
        blocks = values[:h, :w].reshape(h // factor, factor, w // factor, factor)
        return Image.fromarray(blocks.mean(axis=(1, 3), dtype=np.float32), "F")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode not in _REDUCIBLE:
        image = image.convert("RGB")
    if image.mode in ("RGBA", "LA"):
        # Pillow reduces alpha images through a premultiplied full-size copy; band by
        # band costs one byte a pixel instead (edges of partial transparency differ a little)
        bands = [image.getchannel(i).reduce(factor) for i in range(len(image.getbands()))]
        return Image.merge(image.mode, bands)
    return image.reduce(factor)


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


def check_size(size: int, limits: ImageLimits) -> None:
    """Refuse by byte count alone: called with an object's stored size, before reading it."""
    if size <= 0:
        raise RejectedInput("the file is empty")
    if size > limits.max_bytes:
        raise RejectedInput(
            f"the file is {format_size(size)}, over the limit of {format_size(limits.max_bytes)}"
        )


# The budget holds per decode, so decodes take turns, and in one thread: a function
# server's threads or the web app's thumbnail requests never add their budgets up,
# and every decode allocates from the same malloc arena. (glibc gives each thread an
# arena of its own; with decodes taking turns across 20 request threads, the pages one
# freed were not reused by the next and the web app's peak grew to two budgets.)
_decoder: tuple[int, ThreadPoolExecutor] | None = None
_decoder_lock = threading.Lock()


def _decoding_thread() -> ThreadPoolExecutor:
    """The process's one decoding thread (made anew in a forked child, which inherits no threads)."""
    global _decoder
    with _decoder_lock:
        if _decoder is None or _decoder[0] != os.getpid():
            _decoder = (os.getpid(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode"))
        return _decoder[1]


def decode_image(data: bytes, limits: ImageLimits | None = None) -> Image.Image:
    """Bytes of an upload to an upright RGB image, or ``RejectedInput`` saying why not."""
    limits = limits or ImageLimits()
    check_size(len(data), limits)
    _check_webp(data, limits)
    return _decoding_thread().submit(_decode, data, limits).result()


def _decode(data: bytes, limits: ImageLimits) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            _check_header(image, limits)
            _draft(image)
            _check_cost(image, limits)
            image.seek(0)  # first frame of an animation only
            image.load()
            # read before reducing: the reduced copy carries no EXIF
            orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
            small = _reduce(image)
            if small is not image:
                image.close()  # the full-size pixels go now, not when the caller is done
            if method := _UPRIGHT.get(orientation):
                small = small.transpose(method)
            return _to_rgb(small)
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
