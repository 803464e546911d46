"""A full disk (ENOSPC, EDQUOT) is transient: events wait, nothing is dead-lettered for it, and
everything completes once space returns, with no restart.

The real thing where it can be had: a small tmpfs mounted for the test (root; CI runs as
root), filled with a filler file and freed by removing it. The event source's side needs no
disk: a sink that answers 507 until told otherwise.
"""

from __future__ import annotations

import errno
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bloodcell import handlers
from bloodcell.deadletters import DeadLetters
from bloodcell.errors import StorageFull, disk_full, retryable
from bloodcell.events import gcs_event, structured_http
from bloodcell.eventsource import EventSource
from bloodcell.funcserver import make_app
from bloodcell.settings import Settings
from bloodcell.storage import LocalStorage, ObjectInfo
from bloodcell.web.history_page import disk_status
from tests.support.common import REPO
from tests.support.stack import check_end_state, drop, smear_batch, wait_for, wait_results

DISK_MB = 24


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """tmp_path/data on a tmpfs of its own, DISK_MB big (the ``env`` fixture's data folder)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    mount = tmp_path / "data"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(mount)], check=False
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, leave: int = 0) -> Path:
    """Fill the disk with one file, then give back ``leave`` bytes; the file, to free it all later."""
    filler = disk / ".tmp" / "filler"
    filler.parent.mkdir(exist_ok=True)
    written = 0
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * (1 << 20))
                out.flush()
                written += 1 << 20
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    size = filler.stat().st_size
    os.truncate(filler, max(0, size - leave))
    return filler


def test_a_write_on_a_full_disk_is_storage_full_and_leaves_nothing(small_disk: Path) -> None:
    storage = LocalStorage(small_disk)
    filler = fill(small_disk)

    with pytest.raises(StorageFull) as full:
        storage.write("results", "a.jpg.json", b"x" * 100_000, metadata={"k": "v"})

    assert disk_full(full.value) and retryable(full.value)
    assert [p.name for p in (small_disk / ".tmp").iterdir()] == ["filler"]
    filler.unlink()
    assert storage.write("results", "a.jpg.json", b"x" * 100_000, metadata={"k": "v"}).size == 100_000


def test_the_function_answers_507_on_a_full_disk_then_200_once_space_returns(
    small_disk: Path, settings: Settings, cell_jpeg: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FUNCTION_TARGET", "")
    handlers.pipeline.cache_clear()
    storage = LocalStorage(small_disk)
    upload = storage.write("uploads", "cell.jpg", cell_jpeg)
    client = make_app("preprocess", str(REPO / "functions/preprocess/main.py"), settings).test_client()
    headers, body = structured_http(gcs_event(upload))
    filler = fill(small_disk)

    full = client.post("/", headers=headers, data=body)
    status_while_full = disk_status(settings)
    filler.unlink()
    again = client.post("/", headers=headers, data=body)
    handlers.pipeline.cache_clear()

    assert full.status_code == 507
    assert status_while_full is not None and "disk is full" in status_while_full
    assert again.status_code == 200 and storage.stat("tensors", "cell.jpg.npy") is not None
    assert disk_status(settings) is None


class _Sink(BaseHTTPRequestHandler):
    """507 until the test sets ``space``: a function server whose disk is full, then freed."""

    space = threading.Event()
    codes: list[int] = []  # noqa: RUF012 - one class per test (type() in the fixture)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        code = 200 if self.space.is_set() else 507
        self.codes.append(code)
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def full_sink() -> Iterator[tuple[str, type[_Sink]]]:
    handler = type("Sink", (_Sink,), {"space": threading.Event(), "codes": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/", handler
    server.shutdown()
    server.server_close()


def test_the_event_source_waits_out_507_past_max_attempts_and_never_dead_letters(
    tmp_path: Path, full_sink: tuple[str, type[_Sink]], caplog: pytest.LogCaptureFixture
) -> None:
    url, sink = full_sink
    storage = LocalStorage(tmp_path / "data")
    letters = DeadLetters(storage, "dead-letters")
    source = EventSource(
        storage, {"uploads": url}, backoff=(0.001, 0.01), max_attempts=2, dead_letters=letters, concurrency=2
    )
    uploads = [storage.write("uploads", f"u{i}.jpg", b"x%d" % i) for i in range(5)]
    stop = threading.Event()
    thread = threading.Thread(target=source.run, args=(stop,), daemon=True)
    thread.start()
    try:
        for info in uploads:
            source.announce(info)
        # well past max_attempts for every event: the old rule had dead-lettered them all
        wait_for("507s past max_attempts", lambda: sink.codes.count(507) >= 5 * 4, 60)
        assert source.dead_lettered == 0 and source.waiting_for_space == 5
        sink.space.set()
        wait_for("every delivery", lambda: source.delivered == 5, 60)
    finally:
        stop.set()
        thread.join(timeout=30)

    assert source.dead_lettered == 0 and source.waiting_for_space == 0
    assert list(letters.list()) == []
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if m.startswith("the disk is full")]) == 5  # one line per event
    assert any(m.startswith("disk space is back") for m in messages)


def test_a_dead_letter_that_cannot_be_written_is_kept_and_written_once_space_returns(
    small_disk: Path, full_sink: tuple[str, type[_Sink]]
) -> None:
    """Dead-lettered for another reason (here: the sink refuses with 500) on a full disk."""
    storage = LocalStorage(small_disk)
    letters = DeadLetters(storage, "dead-letters")
    source = EventSource(storage, {"uploads": "http://127.0.0.1:9/"}, backoff=(0.001, 0.01), max_attempts=1)
    source.dead_letters = letters
    info = ObjectInfo("uploads", "細胞.jpg", "g1", 10, datetime.now(UTC))
    filler = fill(small_disk)
    source.start_workers(stop := threading.Event())
    try:
        source.announce(info)
        wait_for("the dead letter", lambda: source.dead_lettered == 1, 60)
        left_while_full = source.flush_dead_letters()
        filler.unlink()
        left_after = source.flush_dead_letters()
    finally:
        stop.set()

    assert left_while_full == 1 and left_after == 0
    assert [letter.name for letter in letters.list()] == ["細胞.jpg"]


def test_a_full_disk_under_the_whole_stack_holds_events_and_all_complete_once_freed(
    make_stack: Any, small_disk: Path, settings: Settings, datasets: Path, tmp_path: Path
) -> None:
    """The issue's scenario: `bloodcell serve` on a small tmpfs, uploads whose tensors find no room."""
    stack = make_stack(small_disk, EVENT_SOURCE_MAX_ATTEMPTS="2")
    files = smear_batch(datasets, 12)
    total = sum(path.stat().st_size for path in files.values())
    filler = fill(small_disk, leave=total + 64 * 1024)  # room for the uploads, not their tensors
    drop(small_disk, files, small_disk / ".tmp" / "staging")  # renamed in: the same file system

    def waits(name: str) -> int:
        where = re.escape(f'object="uploads/{name}"')
        return len(re.findall(rf"stage=preprocess .*{where}.*the disk is full", stack.log_path.read_text()))

    # three attempts at one upload, past EVENT_SOURCE_MAX_ATTEMPTS=2: it was not dead-lettered
    wait_for("three attempts on a full disk", lambda: any(waits(n) >= 3 for n in files), 120)
    status_while_full = disk_status(settings)
    filler.unlink()
    wait_results(small_disk, files, timeout=180, log=stack.log_tail)

    check_end_state(small_disk, files)
    log = stack.log_path.read_text()
    assert status_while_full is not None
    assert "): dead-lettered" not in log and "Traceback" not in log
    assert "the disk is full" in log and "disk space is back" in log
    assert not (small_disk / "dead-letters").exists() or not list(
        (small_disk / "dead-letters").rglob("*.json")
    )
