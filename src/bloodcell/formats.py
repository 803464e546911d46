"""What an upload may be, and how sizes read: one table and one formatter for every surface.

The web app's picker, its refusals, ``bloodcell classify``'s folder walk and the
pipeline's rejection reasons all speak from here, so "which files are accepted"
and "how big is too big" read the same everywhere.
"""

from __future__ import annotations

# suffix -> content type; the decoder (Pillow) reads every one of these
IMAGE_TYPES: dict[str, str] = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".bmp": "image/bmp",
    ".gif": "image/gif",
    ".webp": "image/webp",
}
ACCEPTED_SUFFIXES = tuple(IMAGE_TYPES)
# the spellings people know, without the aliases (.jpeg, .tif)
KINDS = "JPG, PNG, TIFF, BMP, GIF, WEBP"


def suffix_of(filename: str) -> str:
    return "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""


def is_image_name(filename: str) -> bool:
    return suffix_of(filename) in IMAGE_TYPES


def content_type(filename: str) -> str:
    return IMAGE_TYPES.get(suffix_of(filename), "application/octet-stream")


def format_size(size: int | float) -> str:
    """Binary units, as limits are set (MAX_UPLOAD_BYTES=20971520 reads "20 MiB", not "21 MB")."""
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            if unit == "bytes":
                return f"{int(value)} bytes"
            return f"{value:.1f} {unit}".replace(".0 ", " ")
        value /= 1024
    raise AssertionError("unreachable")
