"""What every storage backend offers: a few object operations with one error vocabulary.

Backends translate their own exceptions into ``ObjectNotFound``,
``PreconditionFailed`` and ``TransientError`` so the pipeline decides retry versus
reject once, whatever the cloud. ``generation`` is an opaque string that changes
whenever an object's content is replaced: GCS's generation, the S3 ETag, or the
file's mtime in nanoseconds locally.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from bloodcell.errors import RejectedInput
from bloodcell.formats import format_size


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    name: str
    generation: str
    size: int
    updated: datetime
    metadata: Mapping[str, str] = field(default_factory=dict)
    content_type: str | None = None


class UnreadableObject(RejectedInput):
    """An object that exists but whose bytes will never be read: answered from ``info`` alone."""

    def __init__(self, info: ObjectInfo, reason: str) -> None:
        super().__init__(reason)
        self.info = info


class ObjectTooLarge(UnreadableObject):
    """A read with ``max_bytes`` found a bigger object: refused before its bytes were held."""

    def __init__(self, info: ObjectInfo, max_bytes: int) -> None:
        super().__init__(
            info, f"the file is {format_size(info.size)}, over the limit of {format_size(max_bytes)}"
        )


class NotAFile(UnreadableObject):
    """A folder bucket entry that is no regular file (a symbolic link, a FIFO, a socket, a
    device): never opened, since opening a FIFO blocks and a link may lead anywhere."""


MAX_KEY_BYTES = 1024  # S3 and GCS object keys


def impossible_key(name: str) -> bool:
    """A key no flat store can hold (over 1,024 bytes of UTF-8, or not Unicode at all): such
    an object does not exist, so asking the store (which answers 400, retried) is pointless."""
    try:
        return len(name.encode("utf-8")) > MAX_KEY_BYTES
    except UnicodeEncodeError:
        return True


def check_read_size(info: ObjectInfo, data_size: int, max_bytes: int | None) -> None:
    """Backends call this with the stored size before reading, and with what they read after."""
    if max_bytes is not None and max(info.size, data_size) > max_bytes:
        raise ObjectTooLarge(info if info.size > max_bytes else replace(info, size=data_size), max_bytes)


class Storage(Protocol):
    """Object storage as the pipeline needs it; implementations must be thread-safe."""

    def read(self, bucket: str, name: str, *, max_bytes: int | None = None) -> tuple[bytes, ObjectInfo]:
        """Content and description of the current version, read consistently.

        With ``max_bytes``, an object over it raises ``ObjectTooLarge`` having read at
        most ``max_bytes + 1`` bytes: an upload's size is checked before it is held.
        """
        ...

    def stat(self, bucket: str, name: str) -> ObjectInfo | None:
        """Description of the current version, or None when absent."""
        ...

    def write(
        self,
        bucket: str,
        name: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
        if_absent: bool = False,
    ) -> ObjectInfo:
        """Replace (or, with ``if_absent``, only create) an object, atomically."""
        ...

    def delete(self, bucket: str, name: str) -> bool:
        """Remove an object; False when there was none (deleting twice is not an error).

        Only for what must stop being claimed (a reopened slide's verified labels):
        uploads, results and review records are never deleted.
        """
        ...

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object in the bucket under ``prefix``, in no promised order.

        Listings carry metadata only where it comes free (GCS); ``stat`` has it always.
        """
        ...
