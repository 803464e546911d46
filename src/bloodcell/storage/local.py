"""Folder buckets: the embedded default, and what people drop files into by hand.

Names come from users, so every name is checked to stay inside its bucket folder:
no absolute names, no ``..``, and no symlink that resolves elsewhere. Writes go
to a temporary file outside the bucket and are renamed into place, so a watcher
never sees half an object under its final name. Object metadata lives in a
sidecar tree beside the buckets (``.meta/``), not inside them.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
import unicodedata
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from bloodcell.errors import ObjectNotFound, PreconditionFailed, RejectedInput, TransientError
from bloodcell.storage.base import ObjectInfo, check_read_size

_META = ".meta"
_TMP = ".tmp"
_LOCKS = ".locks"  # inside .meta; bucket names never start with a dot
_LOCK_STRIPES = 64
_MAX_NAME_BYTES = 1024


def _generation(st: os.stat_result) -> str:
    """mtime alone can repeat within one clock tick; a rename brings a new inode too."""
    return f"{st.st_mtime_ns}-{st.st_ino}"


def check_object_name(name: str) -> str:
    """Accept a user-supplied object name, or refuse it with a reason people can read."""
    if not name or len(name.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES:
        raise RejectedInput("object name is empty or longer than 1024 bytes")
    if "\x00" in name or "\\" in name or any(unicodedata.category(c) == "Cc" for c in name):
        raise RejectedInput(f"object name {name!r} holds control characters or backslashes")
    if name.startswith("/") or any(part in ("", ".", "..") for part in name.split("/")):
        raise RejectedInput(f"object name {name!r} is absolute or has empty, '.' or '..' parts")
    return name


class LocalStorage:
    """Buckets are folders under ``root``; thread-safe through atomic renames."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / _TMP).mkdir(exist_ok=True)
        self._buckets: dict[str, Path] = {}

    def _bucket_dir(self, bucket: str) -> Path:
        """The bucket's resolved folder, made and resolved once per process, not once per call:
        every stat, read and write needs it, and profiling showed the mkdir and realpath."""
        known = self._buckets.get(bucket)
        if known is not None:
            return known
        if not bucket or "/" in bucket or bucket.startswith("."):
            raise RejectedInput(f"bad bucket name {bucket!r}")
        path = self.root / bucket
        path.mkdir(exist_ok=True)
        resolved = path.resolve()
        self._buckets[bucket] = resolved
        return resolved

    def _path(self, bucket: str, name: str) -> Path:
        base = self._bucket_dir(bucket)
        path = base / check_object_name(name)
        if not path.resolve().is_relative_to(base):
            raise RejectedInput(f"object name {name!r} resolves outside its bucket")
        return path

    def _meta_path(self, bucket: str, name: str) -> Path:
        return self.root / _META / bucket / (name + ".json")

    def _info(self, bucket: str, name: str, path: Path, st: os.stat_result) -> ObjectInfo:
        meta: dict[str, str] = {}
        content_type = None
        try:
            side = json.loads(self._meta_path(bucket, name).read_text())
            # the sidecar names the new version just before the object is renamed into
            # place; until then the version being replaced is still described
            for entry in (side, side.get("previous") or {}):
                if entry.get("generation") == _generation(st):
                    meta = dict(entry.get("metadata", {}))
                    content_type = entry.get("content_type")
                    break
        except (OSError, ValueError):
            pass
        return ObjectInfo(
            bucket=bucket,
            name=name,
            generation=_generation(st),
            size=st.st_size,
            updated=datetime.fromtimestamp(st.st_mtime_ns / 1e9, UTC),
            metadata=meta,
            content_type=content_type,
        )

    def read(self, bucket: str, name: str, *, max_bytes: int | None = None) -> tuple[bytes, ObjectInfo]:
        path = self._path(bucket, name)
        try:
            with path.open("rb") as handle:
                before = os.fstat(handle.fileno())
                if max_bytes is not None:
                    check_read_size(self._info(bucket, name, path, before), 0, max_bytes)
                data = handle.read() if max_bytes is None else handle.read(max_bytes + 1)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectNotFound(f"{bucket}/{name}") from exc
        except OSError as exc:
            raise TransientError(f"cannot read {bucket}/{name}: {exc}") from exc
        info = self._info(bucket, name, path, before)
        check_read_size(info, len(data), max_bytes)
        return data, info

    def stat(self, bucket: str, name: str) -> ObjectInfo | None:
        path = self._path(bucket, name)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return self._info(bucket, name, path, st) if path.is_file() else None

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
        path = self._path(bucket, name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=self.root / _TMP)
            tmp = Path(tmp_name)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                generation = _generation(tmp.stat())
                if if_absent:
                    try:
                        os.link(tmp, path)
                    except FileExistsError as exc:
                        raise PreconditionFailed(f"{bucket}/{name} exists") from exc
                    self._write_meta(bucket, name, generation, content_type, metadata)
                else:
                    # metadata first, so a watcher never sees the object without it; one
                    # writer at a time, or concurrent writers of one name (duplicate events)
                    # could leave one version's object beside another version's metadata
                    with self._exclusive(bucket, name):
                        self._write_meta(bucket, name, generation, content_type, metadata, path)
                        os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
        except OSError as exc:
            raise TransientError(f"cannot write {bucket}/{name}: {exc}") from exc
        return self._info(bucket, name, path, path.stat())

    @contextmanager
    def _exclusive(self, bucket: str, name: str) -> Iterator[None]:
        """One writer of an object at a time, across threads and processes (each call opens
        its own lock-file description). Striped by name over a few lock files, so writers of
        different objects don't queue behind a single lock in a burst."""
        digest = hashlib.blake2b(f"{bucket}/{name}".encode("utf-8", "surrogatepass"), digest_size=4)
        stripe = int.from_bytes(digest.digest(), "big") % _LOCK_STRIPES
        lock = self.root / _META / _LOCKS / f"{stripe:02d}.lock"
        try:
            handle = lock.open("a")
        except FileNotFoundError:  # the first locked write (or .meta was removed under us)
            lock.parent.mkdir(parents=True, exist_ok=True)
            handle = lock.open("a")
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def _write_meta(
        self,
        bucket: str,
        name: str,
        generation: str,
        content_type: str,
        metadata: Mapping[str, str] | None,
        replacing: Path | None = None,
    ) -> None:
        side = self._meta_path(bucket, name)
        side.parent.mkdir(parents=True, exist_ok=True)
        body: dict[str, object] = {
            "generation": generation,
            "content_type": content_type,
            "metadata": dict(metadata or {}),
        }
        if replacing is not None:
            try:
                old = json.loads(side.read_text())
                if old.get("generation") == _generation(replacing.stat()):
                    body["previous"] = {k: old.get(k) for k in ("generation", "content_type", "metadata")}
            except (OSError, ValueError):
                pass
        fd, tmp = tempfile.mkstemp(dir=self.root / _TMP)
        with os.fdopen(fd, "w") as handle:
            json.dump(body, handle)
        os.replace(tmp, side)

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        """Cheap enough to poll often: one scandir pass, no metadata sidecars read."""
        base = self._bucket_dir(bucket)
        stack = [(base, "")]
        while stack:
            folder, rel = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue  # vanished while we walked
            for entry in entries:
                if entry.name.startswith("."):
                    continue  # editors' swap files, .DS_Store: never objects
                name = rel + entry.name
                try:
                    if entry.is_symlink() and not Path(entry.path).resolve().is_relative_to(base):
                        continue
                    if entry.is_dir():
                        stack.append((Path(entry.path), name + "/"))
                        continue
                    if not name.startswith(prefix) or not entry.is_file():
                        continue
                    st = entry.stat()
                except OSError:
                    continue
                yield ObjectInfo(
                    bucket=bucket,
                    name=name,
                    generation=_generation(st),
                    size=st.st_size,
                    updated=datetime.fromtimestamp(st.st_mtime_ns / 1e9, UTC),
                )
