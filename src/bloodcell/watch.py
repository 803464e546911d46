"""Folder buckets announce their own new files, through inotify (the ``watchdog`` library).

A file is announced only once its writer is done with it: when a file opened for
writing is closed (``IN_CLOSE_WRITE``), or when a finished file is moved in
(``IN_MOVED_TO``: an atomic rename, ``mv``, a folder moved in whole). A file half
copied by a slow ``cp`` is therefore never announced, and nothing waits on a settle
poll. Hidden names are announced too (``EventSource`` holds them back for a grace period,
so rsync's temporary files are renamed away before anyone answers them). When the
kernel's inotify queue overflows (a folder of tens of thousands of files dropped at
once), events are lost: watchdog only logs it, so that log record starts a reconcile,
which announces every object still without output. When the kernel's watch limit
(``fs.inotify.max_user_watches``) is reached, watchdog silently leaves a new subfolder
unwatched: each new folder is therefore checked against the limit, and once it is reached
the error is logged and the buckets are reconciled every ``DEGRADED_SWEEP_SECONDS`` until
restart, slow but complete. An entry that is no regular file (``ln -s``, ``mkfifo``, a
socket) is never closed after writing: it is announced when created (``IN_CREATE``), so
it gets its one rejected answer too. Where inotify is missing (macOS),
watchdog's native observer is used and modified files are announced too; the pipeline's
generation checks keep that correct.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver

from bloodcell.errors import TransientError
from bloodcell.eventsource import EventSource
from bloodcell.names import escape
from bloodcell.storage import Storage

log = logging.getLogger(__name__)
WATCHDOG_LOGGER = "watchdog.observers"  # where watchdog reports a queue overflow
WATCH_LIMIT = Path("/proc/sys/fs/inotify/max_user_watches")
DEGRADED_SWEEP_SECONDS = 30.0  # reconcile period once new folders can no longer be watched
_IN_CREATE = 0x100


class WatchLimit:
    """Whether the kernel still grants inotify watches (Linux; elsewhere always yes).

    watchdog swallows the error when it cannot watch a new subfolder, so the files that
    land there would never be announced. A probe watch on the new folder, on an inotify
    instance of its own and removed at once, fails with ENOSPC exactly then. (If watchdog
    took the very last watch, the probe reports the limit a folder early: one more
    reconcile than needed, never one fewer.)
    """

    def __init__(self) -> None:
        self._fd = -1
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            self._add = libc.inotify_add_watch
            self._add.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
            self._rm = libc.inotify_rm_watch
            self._rm.argtypes = [ctypes.c_int, ctypes.c_int]
            self._fd = libc.inotify_init1(os.O_CLOEXEC)
        except (OSError, AttributeError):  # not Linux: watchdog's native observer
            pass

    def reached(self, folder: str | bytes) -> bool:
        if self._fd < 0:
            return False
        wd = self._add(self._fd, os.fsencode(folder), _IN_CREATE)
        if wd < 0:
            return ctypes.get_errno() == errno.ENOSPC
        self._rm(self._fd, wd)
        return False

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class _BucketHandler(FileSystemEventHandler):
    def __init__(
        self, source: EventSource, storage: Storage, bucket: str, root: Path, alarm: _Alarm, limit: WatchLimit
    ) -> None:
        self.source = source
        self.storage = storage
        self.bucket = bucket
        self.root = root
        self.alarm = alarm
        self.limit = limit

    def _announce(self, path: str | bytes) -> None:
        if not path:
            return
        try:
            name = Path(os.fsdecode(path)).relative_to(self.root).as_posix()
        except ValueError:
            return  # moved out of the bucket
        for attempt in range(3):
            try:
                info = self.storage.stat(self.bucket, name)
                break
            except TransientError:
                time.sleep(0.05 * 2**attempt)
            except Exception as exc:  # the reconcile at the next start tries it again
                log.warning("watch: cannot stat %s: %s", escape(f"{self.bucket}/{name}"), escape(str(exc)))
                return
        else:
            log.warning(
                "watch: %s keeps failing to stat; left to the reconcile", escape(f"{self.bucket}/{name}")
            )
            return
        if info is not None:
            self.source.announce(info)

    def _announce_tree(self, top: str | bytes) -> None:
        for folder, _dirs, files in os.walk(os.fsdecode(top)):
            for file in files:
                self._announce(os.path.join(folder, file))

    def _check_limit(self, folder: str | bytes) -> None:
        """A new folder that may have gone unwatched: once the limit is met, sweep instead."""
        if not self.alarm.degraded.is_set() and self.limit.reached(folder):
            self.alarm.degrade(folder)

    def on_any_event(self, event: FileSystemEvent) -> None:
        try:
            if isinstance(event, FileClosedEvent | FileModifiedEvent):
                self._announce(event.src_path)
            elif isinstance(event, FileMovedEvent):
                self._announce(event.dest_path)
            elif isinstance(event, FileCreatedEvent) and _not_a_file(event.src_path):
                self._announce(event.src_path)  # a link or FIFO: no close event will follow
            elif isinstance(event, DirMovedEvent) and not event.src_path and event.dest_path:
                self._announce_tree(event.dest_path)  # moved in from outside: its files are complete
                self._check_limit(event.dest_path)
            elif isinstance(event, DirCreatedEvent):
                # inotify watches a new folder only once it exists: files that landed in it
                # before the watch did would go unseen; a write still under way there gets its
                # close event later and a new generation, so the final answer is for the last bytes
                self._announce_tree(event.src_path)
                self._check_limit(event.src_path)
        except Exception:  # the observer thread must outlive any one odd event
            log.exception("watch: could not handle %r", event)


def _not_a_file(path: str | bytes) -> bool:
    """A link, FIFO, socket or device: created whole, never written and closed."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


class _Alarm(logging.Handler):
    """What makes the watcher reconcile: watchdog saying the kernel dropped events (its
    only signal of it: a log record), or new folders that can no longer be watched."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.raised = threading.Event()
        self.degraded = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.raised.set()

    def degrade(self, folder: str | bytes) -> None:
        try:
            limit = WATCH_LIMIT.read_text().strip()
        except OSError:
            limit = "?"
        log.error(
            "watch: the inotify watch limit (fs.inotify.max_user_watches = %s) is reached: %s and "
            "folders made after it are not watched. Reconciling the buckets every %.0f s until "
            "restart; raise the limit (sysctl fs.inotify.max_user_watches=...) and restart",
            limit,
            escape(os.fsdecode(folder)),
            DEGRADED_SWEEP_SECONDS,
        )
        self.degraded.set()
        self.raised.set()


def _reconcile_on_alarm(source: EventSource, alarm: _Alarm, stop: threading.Event) -> None:
    swept = time.monotonic()
    while not stop.is_set():
        due = alarm.degraded.is_set() and time.monotonic() - swept >= DEGRADED_SWEEP_SECONDS
        if not due and not alarm.raised.wait(0.5):
            continue
        time.sleep(1.0)  # one reconcile for a whole storm of overflows (or new folders)
        alarm.raised.clear()
        if not alarm.degraded.is_set():
            log.warning("watch: the inotify queue overflowed and events were lost; reconciling the buckets")
        swept = time.monotonic()
        try:
            source.reconcile()
        except Exception:  # the next alarm or sweep, or the next start, tries again
            log.exception("watch: reconcile after an alarm failed")


def _observer() -> tuple[BaseObserver, list[type[FileSystemEvent]]]:
    try:
        from watchdog.observers.inotify import InotifyObserver
    except ImportError:  # not Linux
        from watchdog.observers import Observer

        return Observer(), [
            FileClosedEvent,
            FileCreatedEvent,
            FileModifiedEvent,
            FileMovedEvent,
            DirMovedEvent,
            DirCreatedEvent,
        ]
    kinds: list[type[FileSystemEvent]] = [
        FileClosedEvent,
        FileCreatedEvent,
        FileMovedEvent,
        DirMovedEvent,
        DirCreatedEvent,
    ]
    return InotifyObserver(generate_full_events=True), kinds


def folder_watcher(
    storage: Storage, roots: dict[str, Path]
) -> Callable[[EventSource, threading.Event], Callable[[], None]]:
    """An announcer for ``EventSource.run``: one recursive watch per bucket folder."""

    def start(source: EventSource, _stop: threading.Event) -> Callable[[], None]:
        observer, kinds = _observer()
        alarm, limit = _Alarm(), WatchLimit()
        for bucket, root in roots.items():
            root.mkdir(parents=True, exist_ok=True)
            handler = _BucketHandler(source, storage, bucket, root.resolve(), alarm, limit)
            observer.schedule(handler, str(root), recursive=True, event_filter=kinds)
        watchdog_log = logging.getLogger(WATCHDOG_LOGGER)
        watchdog_log.addHandler(alarm)
        done = threading.Event()
        overflow = threading.Thread(
            target=_reconcile_on_alarm, args=(source, alarm, done), name="watch-alarm", daemon=True
        )
        overflow.start()
        observer.start()

        def close() -> None:
            observer.stop()
            observer.join(timeout=5)
            done.set()
            overflow.join(timeout=5)
            watchdog_log.removeHandler(alarm)
            limit.close()

        return close

    return start
