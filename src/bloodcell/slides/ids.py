"""Slide ids and image names: which folder is a slide, what people called an image, how names print.

Names come from anyone (a folder copied into the bucket keeps its file names),
so ``printable`` makes any of them safe to show or write: bytes that were not
UTF-8 and bidi controls that could make a name read backwards are escaped, never
passed on.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from datetime import UTC, datetime

from bloodcell.errors import RejectedInput
from bloodcell.slides.vocabulary import REVIEW_PREFIX

# Letters of any script (labs name samples "lame-été-3"), digits, '.', '_', '-': no space, no '/'.
_ID = re.compile(r"[^\W_][\w.-]{0,63}")  # used with fullmatch: "$" would let a newline through
# Folders that are not slides: the batch page's own uploads, and the review records' prefix.
RESERVED = ("web", REVIEW_PREFIX.rstrip("/"))
_TOKEN = re.compile(r"^[0-9a-f]{10}-(.+)$")
_PREFIXED = re.compile(r"^web/\d{8}/[0-9a-f]{10}-(.+)$")
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Explicit direction marks, embeddings, overrides and isolates (Unicode's bidi controls).
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class SlideIdError(RejectedInput, ValueError):
    """A slide id people typed that cannot name a folder; the message says why."""


def check_slide_id(slide: str) -> str:
    """The one rule for slide ids, for the review pages and the reports alike.

    One folder name of the upload bucket, short and plain, so it can never escape
    the bucket nor name one of the reserved folders; ``slide_of`` lists exactly
    the folders that pass it.
    """
    slide = slide.strip()
    if not _ID.fullmatch(slide):
        raise SlideIdError(
            f"{slide!r} is not a slide id: one is 1 to 64 letters, digits, '.', '_' or '-' "
            "(no spaces, no '/'), starting with a letter or digit."
        )
    if slide in RESERVED:
        raise SlideIdError(f"{slide!r} is reserved; choose another id.")
    return slide


def slide_of(upload_name: str) -> str | None:
    """The slide an upload belongs to, or None for files outside any slide folder."""
    head, sep, rest = upload_name.partition("/")
    if not sep or not rest or not _ID.fullmatch(head) or head in RESERVED:
        return None
    return head


def new_slide_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"S{now:%Y%m%d}-{uuid.uuid4().hex[:6]}"


def printable(name: str) -> str:
    """A name as it may be shown or written anywhere: undecodable bytes and bidi controls escaped.

    Storage hands names that were not UTF-8 through as lone surrogates
    (``surrogateescape``); each becomes ``\\xNN`` for its byte. Bidi controls become
    ``\\u202e`` and the like, and other control characters their escape, so a name
    can neither break an encoder nor make itself read differently than it is.
    """
    out = []
    for char in name:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF or char in _BIDI:
            out.append(f"\\u{code:04x}")
        elif unicodedata.category(char) == "Cc":
            out.append(char.encode("unicode_escape").decode("ascii"))
        else:
            out.append(char)
    return "".join(out)


def image_name(upload_name: str) -> str:
    """What people called the image: the part after the slide, without the app's random token."""
    rest = upload_name.partition("/")[2] or upload_name
    match = _TOKEN.match(rest)
    return match.group(1) if match else rest


def display_name(name: str) -> str:
    """The name people gave a batch file, recovered from the object name the app made."""
    match = _PREFIXED.match(name)
    return match.group(1) if match else name.rsplit("/", 1)[-1]


def sanitise_name(original: str, max_length: int = 80) -> str:
    """A file name safe as one object-name segment, whatever the browser sent.

    Folders, accents, spaces and control characters from the client never reach
    a storage path; only ``[A-Za-z0-9._-]`` survives and the suffix is lower-cased.
    """
    base = original.replace("\\", "/").rsplit("/", 1)[-1]
    ascii_name = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode("ascii")
    stem, dot, suffix = ascii_name.rpartition(".")
    if not dot:
        stem, suffix = ascii_name, ""
    stem = _SAFE.sub("_", stem).strip("._-") or "image"
    suffix = _SAFE.sub("", suffix).lower()
    stem = stem[: max(1, max_length - len(suffix) - 1)]
    return f"{stem}.{suffix}" if suffix else stem


def upload_object_name(slide: str, original: str, token: str | None = None) -> str:
    """``<slide>/<10 hex>-<sanitised name>``: two files named ``cell.jpg`` on one slide never collide."""
    return f"{slide}/{token or uuid.uuid4().hex[:10]}-{sanitise_name(original)}"
