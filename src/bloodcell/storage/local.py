"""Folder buckets: the embedded default, and what people drop files into by hand.

Names come from users, so every name is checked to stay inside its bucket folder:
no absolute names, no ``..``, and no symlink that resolves elsewhere. Writes go
to a temporary file outside the bucket and are renamed into place, so a watcher
never sees half an object under its final name. Object metadata lives in a
sidecar tree beside the buckets (``.meta/<bucket>/<hh>/<sha256 of name>.json``:
fixed-length names, whatever the object's), not inside them. An object written with no
metadata and the content type its suffix implies (the archive's copies) gets no
sidecar: creating a file is the costliest step of a write.

A generation means "these bytes": the first 128 bits of the content's SHA-256.
Changed content always gets a new one (even with the same size, mtime and inode);
the same content keeps it across ``cp -a``, a restore or a move of the data folder.
Hashes are cached per process, keyed by everything a change of content touches
(device, inode, size, mtime and ctime: ctime cannot be set back by ``cp -p``).

An entry that is no regular file (a symbolic link, a FIFO, a socket, a device) is an
object all the same, so it gets its one answer like any unusable upload: listed and
described from ``lstat``, never opened or followed (``NotAFile`` on read). A full disk
or quota (ENOSPC, EDQUOT) is ``StorageFull``: transient, waited out, never a rejection.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import stat
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from bloodcell.errors import ObjectNotFound, PreconditionFailed, RejectedInput, StorageFull, TransientError
from bloodcell.formats import IMAGE_TYPES, suffix_of
from bloodcell.storage.base import NotAFile, ObjectInfo, ObjectTooLarge, check_read_size

_META = ".meta"
_TMP = ".tmp"
_LOCKS = ".locks"  # inside .meta; bucket names never start with a dot
_LOCK_STRIPES = 64
_MAX_NAME_BYTES = 4096  # PATH_MAX: what a folder can hold; bloodcell.names says what is processable
_HASH_CHUNK = 1 << 20
_CACHE_SIZE = 2048  # recent versions only: memory must not follow the bucket
_StatKey = tuple[str, int, int, int, int, int]


def _stat_key(path: Path, st: os.stat_result) -> _StatKey:
    return (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _digest_generation(digest: str) -> str:
    return digest[:32]


def _described(
    bucket: str,
    name: str,
    generation: str,
    st: os.stat_result,
    metadata: dict[str, str],
    content_type: str | None,
) -> ObjectInfo:
    """An object's description from its file's stat: one place for stat, read and write."""
    return ObjectInfo(
        bucket=bucket,
        name=name,
        generation=generation,
        size=st.st_size,
        updated=datetime.fromtimestamp(st.st_mtime_ns / 1e9, UTC),
        metadata=metadata,
        content_type=content_type,
    )


def implied_type(name: str) -> str | None:
    """The content type a name's suffix implies: what an object without a sidecar reports."""
    return "application/json" if name.endswith(".json") else IMAGE_TYPES.get(suffix_of(name))


def _make_folder(folder: Path) -> None:
    """``mkdir -p``, asking first: a stat is far cheaper than a mkdir that fails with
    EEXIST, and the folder almost always exists already."""
    if not os.path.isdir(folder):
        folder.mkdir(parents=True, exist_ok=True)


def _read_fd(fd: int, size: int | None) -> bytes:
    """``size`` bytes (what fstat said: one read call), or to the end when ``size`` is None.

    A file that changes meanwhile is caught by the caller's second fstat, not here."""
    chunks = []
    total = 0
    while size is None or total < size:
        chunk = os.read(fd, 1 << 16 if size is None else size - total)
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _read_file(path: str) -> bytes:
    """A small file's bytes with bare system calls: ``Path.read_text`` adds an fstat, an
    ioctl and a seek to every read, and sidecars are read on every stat."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return _read_fd(fd, None)
    finally:
        os.close(fd)


def _write_file(fd: int, data: bytes) -> None:
    """All of ``data`` to ``fd``, then close it (a short write is resumed, never dropped)."""
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _discard(path: str) -> None:
    with suppress(FileNotFoundError):
        os.unlink(path)


_KINDS = {
    stat.S_IFLNK: "a symbolic link",
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}
_FULL = {errno.ENOSPC, errno.EDQUOT}
_NO_SUCH_NAME = {errno.ENAMETOOLONG, errno.ELOOP}


def _odd_kind(st: os.stat_result) -> str | None:
    """What a non-regular, non-folder entry is, in words; None for a file or a folder."""
    if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
        return None
    return _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")


def _odd_generation(path: Path, st: os.stat_result) -> str:
    """A version of an entry that has no bytes of its own: changes whenever it is replaced."""
    target = os.readlink(path) if stat.S_ISLNK(st.st_mode) else ""
    key = f"{stat.S_IFMT(st.st_mode)}\0{st.st_ino}\0{st.st_mtime_ns}\0{st.st_rdev}\0{target}"
    return _digest_generation(hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest())


def _storage_error(what: str, exc: OSError) -> TransientError:
    if exc.errno in _FULL:
        return StorageFull(f"{what}: the disk is full ({exc.strerror})")
    return TransientError(f"{what}: {exc}")


def free_bytes(root: Path) -> int | None:
    """Space left to unprivileged writers under ``root``; None where it cannot be told."""
    try:
        st = os.statvfs(root)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def data_generation(data: bytes) -> str:
    """The generation of an object holding exactly these bytes."""
    return _digest_generation(hashlib.sha256(data).hexdigest())


def check_object_name(name: str) -> str:
    """Accept a user-supplied object name, or refuse it with a reason people can read.

    Only what storage itself needs: the name stays inside its bucket. Control characters
    and backslashes are legal file names; the pipeline answers them (``bloodcell.names``).
    """
    try:
        encoded = name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as exc:  # a lone surrogate from a forged event: no file has it
        raise RejectedInput("object name is not valid Unicode") from exc
    if not name or len(encoded) > _MAX_NAME_BYTES:
        raise RejectedInput(f"object name is empty or longer than {_MAX_NAME_BYTES} bytes")
    if "\x00" in name:
        raise RejectedInput("object name holds a NUL character")
    if name.startswith("/") or any(part in ("", ".", "..") for part in name.split("/")):
        raise RejectedInput("object name is absolute or has empty, '.' or '..' parts")
    return name


class LocalStorage:
    """Buckets are folders under ``root``; thread-safe through atomic renames."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / _TMP).mkdir(exist_ok=True)
        self._tmp = str(self.root / _TMP)
        self._buckets: dict[str, Path] = {}
        self._hashes: OrderedDict[_StatKey, str] = OrderedDict()
        self._hash_lock = threading.Lock()

    # ---- generations: content hashes, cached by stat ----

    def _cached(self, key: _StatKey) -> str | None:
        with self._hash_lock:
            found = self._hashes.get(key)
            if found is not None:
                self._hashes.move_to_end(key)
            return found

    def _remember(self, key: _StatKey, generation: str) -> None:
        with self._hash_lock:
            self._hashes[key] = generation
            self._hashes.move_to_end(key)
            while len(self._hashes) > _CACHE_SIZE:
                self._hashes.popitem(last=False)

    def _generation(self, path: Path, st: os.stat_result) -> str:
        key = _stat_key(path, st)
        cached = self._cached(key)
        if cached is not None:
            return cached
        for _ in range(5):  # a file being rewritten: hash it again once it holds still
            with path.open("rb") as handle:
                before = _stat_key(path, os.fstat(handle.fileno()))
                digest = hashlib.sha256()
                while chunk := handle.read(_HASH_CHUNK):
                    digest.update(chunk)
                after = _stat_key(path, os.fstat(handle.fileno()))
            if before == after:
                generation = _digest_generation(digest.hexdigest())
                self._remember(after, generation)
                return generation
        raise TransientError(f"{path.name} keeps changing while it is read")

    def sweep_temporary(self) -> int:
        """Remove what writers killed mid-write left in ``.tmp/`` (a failed write cleans up
        after itself; a SIGKILLed one cannot). Only safe while no writer runs: at start-up."""
        removed = 0
        for leftover in (self.root / _TMP).iterdir():
            leftover.unlink(missing_ok=True)
            removed += 1
        return removed

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
        # Only the name's own folder parts can be links leading out: the bucket folder is
        # resolved already, and the last part is never followed (a link there is an object
        # of its own, ``NotAFile``). lstat them (usually none) instead of resolving the whole
        # absolute path, a dozen lstat calls per object touched; resolve only at a link.
        current = str(base)
        for part in name.split("/")[:-1]:
            current = f"{current}/{part}"
            try:
                mode = os.lstat(current).st_mode
            except OSError:
                break  # nothing exists further down: nothing there to follow
            if stat.S_ISLNK(mode):
                if not path.parent.resolve().is_relative_to(base):
                    raise RejectedInput(f"object name {name!r} resolves outside its bucket")
                break
        return path

    def _meta_path(self, bucket: str, name: str) -> str:
        digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()
        return f"{self.root}/{_META}/{bucket}/{digest[:2]}/{digest}.json"

    def _info(
        self, bucket: str, name: str, path: Path, st: os.stat_result, generation: str | None = None
    ) -> ObjectInfo:
        meta: dict[str, str] = {}
        content_type = implied_type(name)  # unless a sidecar describes this version
        generation = generation or self._generation(path, st)
        try:
            side = json.loads(_read_file(self._meta_path(bucket, name)))
            # the sidecar names the new version just before the object is renamed into
            # place; until then the version being replaced is still described
            for entry in (side, side.get("previous") or {}):
                if entry.get("generation") == generation:
                    meta = dict(entry.get("metadata", {}))
                    content_type = entry.get("content_type")
                    break
        except (OSError, ValueError):
            pass
        return _described(bucket, name, generation, st, meta, content_type)

    def _odd(self, bucket: str, name: str, path: Path, st: os.stat_result) -> NotAFile | None:
        kind = _odd_kind(st)
        if kind is None:
            return None
        info = _described(bucket, name, _odd_generation(path, st), st, {}, None)
        return NotAFile(replace(info, size=0), f"the upload is {kind}, not a regular file")

    def read(self, bucket: str, name: str, *, max_bytes: int | None = None) -> tuple[bytes, ObjectInfo]:
        path = self._path(bucket, name)
        try:
            odd = self._odd(bucket, name, path, os.lstat(path))
            if odd is not None:
                raise odd
            # O_NOFOLLOW | O_NONBLOCK: a link or FIFO swapped in since the lstat is not
            # followed, nor waited on; the fstat below refuses it
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
            try:
                before = os.fstat(fd)
                if stat.S_ISDIR(before.st_mode):
                    raise IsADirectoryError(path)
                if (odd := self._odd(bucket, name, path, before)) is not None:
                    raise odd
                if max_bytes is not None and before.st_size > max_bytes:  # refused unread
                    raise ObjectTooLarge(self._info(bucket, name, path, before), max_bytes)
                data = _read_fd(fd, before.st_size)  # a larger one was refused above
                after = os.fstat(fd)
            finally:
                os.close(fd)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectNotFound(f"{bucket}/{name}") from exc
        except OSError as exc:
            if exc.errno in _NO_SUCH_NAME:  # too long for any file, or a link swapped in
                raise ObjectNotFound(f"{bucket}/{name}") from exc
            raise _storage_error(f"cannot read {bucket}/{name}", exc) from exc
        key = _stat_key(path, after)
        if _stat_key(path, before) != key:
            raise TransientError(f"{bucket}/{name} changed while it was read")
        generation = self._cached(key)  # written or hashed by this process at this very version
        if generation is None:
            generation = data_generation(data)
            self._remember(key, generation)
        info = self._info(bucket, name, path, after, generation)
        check_read_size(info, len(data), max_bytes)
        return data, info

    def stat(self, bucket: str, name: str) -> ObjectInfo | None:
        path = self._path(bucket, name)
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            if exc.errno in _NO_SUCH_NAME:  # no file can have this name
                return None
            raise _storage_error(f"cannot stat {bucket}/{name}", exc) from exc
        if (odd := self._odd(bucket, name, path, st)) is not None:
            return odd.info
        return self._info(bucket, name, path, st) if stat.S_ISREG(st.st_mode) else None

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
            try:
                _make_folder(path.parent)
            except (FileExistsError, NotADirectoryError) as exc:
                raise RejectedInput(f"a file stands where {bucket}/{name} needs a folder") from exc
            if path.is_dir():
                raise RejectedInput(f"a folder stands where {bucket}/{name} would be written")
            fd, tmp = tempfile.mkstemp(dir=self._tmp)
            try:
                _write_file(fd, data)
                generation = data_generation(data)
                if if_absent:
                    try:
                        os.link(tmp, path)
                    except FileExistsError as exc:
                        raise PreconditionFailed(f"{bucket}/{name} exists") from exc
                    finally:
                        os.unlink(tmp)
                    self._write_meta(bucket, name, generation, content_type, metadata)
                    # a hard link raises only IN_CREATE, which a watcher cannot tell from a
                    # file just opened for writing: close it once for writing (no change to
                    # bytes or times), so it is announced by IN_CLOSE_WRITE like any finished file
                    os.close(os.open(path, os.O_WRONLY))
                else:
                    # metadata first, so a watcher never sees the object without it; one
                    # writer at a time, or concurrent writers of one name (duplicate events)
                    # could leave one version's object beside another version's metadata
                    with self._exclusive(bucket, name):
                        if not self._bare(bucket, name, content_type, metadata):
                            self._write_meta(bucket, name, generation, content_type, metadata, path)
                        os.replace(tmp, path)
                        st = path.stat()
                        self._remember(_stat_key(path, st), generation)
            except BaseException:
                _discard(tmp)  # a failed write leaves no temporary file behind
                raise
        except OSError as exc:
            raise _storage_error(f"cannot write {bucket}/{name}", exc) from exc
        if if_absent:
            st = path.stat()
            self._remember(_stat_key(path, st), generation)
        # what was just written, not read back from the sidecar
        return _described(bucket, name, generation, st, dict(metadata or {}), content_type)

    def _bare(self, bucket: str, name: str, content_type: str, metadata: Mapping[str, str] | None) -> bool:
        """True when a sidecar would say nothing the object's name doesn't (no metadata, the
        type its suffix implies) and no sidecar describes an earlier version: the archive's
        copies. A sidecar is a second file to create, the costliest step of a write."""
        return (
            not metadata
            and content_type == implied_type(name)
            and not os.path.lexists(self._meta_path(bucket, name))
        )

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
        _make_folder(Path(side).parent)
        body: dict[str, object] = {
            "generation": generation,
            "content_type": content_type,
            "metadata": dict(metadata or {}),
        }
        if replacing is not None:
            try:
                old = json.loads(_read_file(side))
                if old.get("generation") == self._generation(replacing, replacing.stat()):
                    body["previous"] = {k: old.get(k) for k in ("generation", "content_type", "metadata")}
            except (OSError, ValueError, TransientError):
                pass
        fd, tmp = tempfile.mkstemp(dir=self._tmp)
        try:
            _write_file(fd, json.dumps(body).encode())  # json.dump: the pure-Python encoder
            os.replace(tmp, side)
        except BaseException:
            _discard(tmp)  # a failed write leaves no temporary file behind
            raise

    def delete(self, bucket: str, name: str) -> bool:
        path = self._path(bucket, name)
        try:
            with self._exclusive(bucket, name):
                if path.is_dir():
                    return False
                try:
                    path.unlink()
                except (FileNotFoundError, NotADirectoryError):
                    return False
                _discard(self._meta_path(bucket, name))
        except OSError as exc:
            raise _storage_error(f"cannot delete {bucket}/{name}", exc) from exc
        return True

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
                name = rel + entry.name
                try:
                    if entry.is_dir():  # a link to a folder inside the bucket is a way in
                        if not entry.is_symlink() or Path(entry.path).resolve().is_relative_to(base):
                            stack.append((Path(entry.path), name + "/"))
                        continue
                    if not name.startswith(prefix):
                        continue
                    st = entry.stat(follow_symlinks=False)
                    if (odd := self._odd(bucket, name, Path(entry.path), st)) is not None:
                        yield odd.info  # listed, so it gets its one (rejected) answer
                        continue
                    if not stat.S_ISREG(st.st_mode):
                        continue
                    generation = self._generation(Path(entry.path), st)
                except (OSError, TransientError):
                    continue
                yield _described(bucket, name, generation, st, {}, None)  # listings skip sidecars
