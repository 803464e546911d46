"""One storage contract, three backends: folder buckets, S3 over moto's HTTP server, GCS emulator."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bloodcell.errors import ObjectNotFound, PreconditionFailed, RejectedInput, TransientError
from bloodcell.storage import LocalStorage, NotAFile, ObjectInfo, ObjectTooLarge, Storage
from bloodcell.storage.gcs import GcsStorage
from bloodcell.storage.s3 import S3Storage
from tests.support.common import free_port
from tests.support.gcs_proxy import PreconditionProxy

ODD_NAMES = ["my cell (1).jpg", "dossier/été 2026/cellule №5.png", "a+b%20c.jpg"]
# gcp-storage-emulator echoes the name in a latin-1 HTTP header and crashes on
# characters outside it, and it reads "+" in a path as a space; real GCS does
# neither, and the other backends test those names.
GCS_NAMES = ["my cell (1).jpg", "dossier/été 2026/cellule 5.png", "cell [2] copy.jpg"]


@pytest.fixture(params=["local", "s3", "gcs"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Storage, str]]:
    if request.param == "local":
        yield LocalStorage(tmp_path / "root"), "uploads"
    elif request.param == "s3":
        endpoint, bucket = request.getfixturevalue("s3_bucket")
        yield S3Storage(endpoint_url=endpoint, region="us-east-1"), bucket
    else:
        request.getfixturevalue("gcs_emulator")
        storage = GcsStorage(project="test", retry_seconds=2)
        bucket = f"b-{uuid.uuid4().hex[:12]}"
        storage.client.create_bucket(bucket)
        yield storage, bucket


@pytest.mark.parametrize("index", range(len(ODD_NAMES)))
def test_write_read_stat_list_round_trip(backend: tuple[Storage, str], index: int) -> None:
    storage, bucket = backend
    name = (GCS_NAMES if isinstance(storage, GcsStorage) else ODD_NAMES)[index]

    written = storage.write(bucket, name, b"pixels", content_type="image/png", metadata={"source-name": name})
    data, info = storage.read(bucket, name)
    stat = storage.stat(bucket, name)
    listed = {item.name: item for item in storage.list(bucket)}

    assert data == b"pixels"
    assert info.generation == written.generation == listed[name].generation
    assert stat is not None and stat.metadata["source-name"] == name
    assert stat.size == 6


def test_replacing_an_object_changes_its_generation(backend: tuple[Storage, str]) -> None:
    storage, bucket = backend
    first = storage.write(bucket, "cell.jpg", b"one")

    second = storage.write(bucket, "cell.jpg", b"two")

    assert first.generation != second.generation
    assert storage.read(bucket, "cell.jpg")[0] == b"two"


def test_missing_objects(backend: tuple[Storage, str]) -> None:
    storage, bucket = backend

    assert storage.stat(bucket, "absent.jpg") is None
    with pytest.raises(ObjectNotFound):
        storage.read(bucket, "absent.jpg")


def test_delete_removes_an_object_once(backend: tuple[Storage, str]) -> None:
    storage, bucket = backend
    storage.write(bucket, "dossier/cell.jpg.verified.json", b"{}", content_type="application/json")
    storage.write(bucket, "dossier/cell.jpg", b"pixels")

    removed, again = (
        storage.delete(bucket, "dossier/cell.jpg.verified.json"),
        storage.delete(bucket, "dossier/cell.jpg.verified.json"),
    )

    assert (removed, again) == (True, False)
    assert storage.stat(bucket, "dossier/cell.jpg.verified.json") is None
    assert [info.name for info in storage.list(bucket)] == ["dossier/cell.jpg"]  # its neighbour stays


def test_gcs_create_only_write_asks_for_generation_zero_and_maps_412(
    gcs_precondition_proxy: PreconditionProxy,
) -> None:
    """The request is checked over real HTTP; the 412 is the proxy's mock of GCS (the emulator has none)."""
    storage = GcsStorage(project="test", retry_seconds=2)
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    storage.client.create_bucket(bucket)
    storage.write(bucket, "_review/S1/r.json", b"first", if_absent=True)
    storage.write(bucket, "plain.json", b"one")

    with pytest.raises(PreconditionFailed):
        storage.write(bucket, "_review/S1/r.json", b"second", if_absent=True)
    storage.write(bucket, "plain.json", b"two")  # an ordinary write still replaces

    uploads = gcs_precondition_proxy.uploads()
    assert [u.query.get("ifGenerationMatch") for u in uploads] == [["0"], None, ["0"], None]
    assert gcs_precondition_proxy.refused == 1
    assert storage.read(bucket, "_review/S1/r.json")[0] == b"first"
    assert storage.read(bucket, "plain.json")[0] == b"two"


@pytest.mark.parametrize("kind", ["local", "s3"])  # GCS: the test above, through the proxy
def test_create_only_write_refuses_to_overwrite(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if kind == "local":
        storage: Storage = LocalStorage(tmp_path)
        bucket = "results"
    else:
        endpoint, bucket = request.getfixturevalue("s3_bucket")
        storage = S3Storage(endpoint_url=endpoint, region="us-east-1")
    storage.write(bucket, "r.json", b"first", if_absent=True)

    with pytest.raises(PreconditionFailed):
        storage.write(bucket, "r.json", b"second", if_absent=True)

    assert storage.read(bucket, "r.json")[0] == b"first"


@pytest.mark.parametrize("name", ["../escape.jpg", "/etc/passwd", "a/../../b.jpg", "x\x00y", "./a", ""])
def test_local_names_never_escape_the_bucket(tmp_path: Path, name: str) -> None:
    storage = LocalStorage(tmp_path / "root")

    with pytest.raises(RejectedInput):
        storage.write("uploads", name, b"x")

    assert not (tmp_path / "escape.jpg").exists()
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == [".tmp", "uploads"]


def test_local_backslashes_are_literal_characters_inside_the_bucket(tmp_path: Path) -> None:
    """On POSIX a backslash separates nothing: storage keeps such a name inside its bucket
    (and the pipeline answers it with a rejected result, see tests/test_names.py)."""
    storage = LocalStorage(tmp_path / "root")

    storage.write("uploads", "a\\..\\b", b"x")

    assert [p.name for p in (tmp_path / "root" / "uploads").iterdir()] == ["a\\..\\b"]


def test_local_symlinks_out_of_the_bucket_are_never_read_nor_entered(tmp_path: Path) -> None:
    """A link leading out is listed as what it is (so it gets its one rejected answer), never
    followed: reading it is refused before anything is opened, and a folder link is not entered."""
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read")
    storage = LocalStorage(tmp_path / "root")
    (tmp_path / "root" / "uploads").mkdir()
    os.symlink(secret, tmp_path / "root" / "uploads" / "link.jpg")
    os.symlink(tmp_path, tmp_path / "root" / "uploads" / "dirlink")

    with pytest.raises(NotAFile) as refused:
        storage.read("uploads", "link.jpg")
    with pytest.raises(RejectedInput):
        storage.write("uploads", "dirlink/new.jpg", b"x")
    listed = list(storage.list("uploads"))

    assert "symbolic link" in refused.value.reason and refused.value.info.size == 0
    assert [info.name for info in listed] == ["link.jpg"]
    assert listed[0].generation == refused.value.info.generation
    assert storage.stat("uploads", "link.jpg") == listed[0]


@pytest.mark.parametrize("kind", ["symlink-inside", "dangling-symlink", "fifo", "socket", "device"])
def test_local_entries_that_are_no_regular_file_are_objects_never_opened(tmp_path: Path, kind: str) -> None:
    """Each is listed and stat-ed with a stable generation, and read raises NotAFile without
    opening it: opening a FIFO would block the reader for ever, a device may do anything."""
    import socket
    import stat as stat_module

    storage = LocalStorage(tmp_path / "root")
    storage.write("uploads", "real.jpg", b"jpeg")
    path = tmp_path / "root" / "uploads" / "odd.jpg"
    if kind == "symlink-inside":
        os.symlink(tmp_path / "root" / "uploads" / "real.jpg", path)
    elif kind == "dangling-symlink":
        os.symlink(tmp_path / "nowhere.jpg", path)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
    elif os.geteuid() == 0:
        os.mknod(path, 0o600 | stat_module.S_IFCHR, os.makedev(1, 3))  # /dev/null's numbers
    else:
        pytest.skip("making a device node needs root")

    with pytest.raises(NotAFile) as refused:
        storage.read("uploads", "odd.jpg")
    listed = {info.name: info for info in storage.list("uploads")}

    assert set(listed) == {"real.jpg", "odd.jpg"}
    assert storage.stat("uploads", "odd.jpg") == listed["odd.jpg"] == refused.value.info
    assert storage.read("uploads", "real.jpg")[0] == b"jpeg"


def test_local_links_are_checked_at_any_depth_of_the_name(tmp_path: Path) -> None:
    """Only the name's own parts are followed: a link deep inside, out of the bucket, is
    refused; one that stays inside is an ordinary way in."""
    storage = LocalStorage(tmp_path / "root")
    storage.write("uploads", "inside/cell.jpg", b"jpeg")
    (tmp_path / "root" / "uploads" / "a" / "b").mkdir(parents=True)
    os.symlink(tmp_path, tmp_path / "root" / "uploads" / "a" / "b" / "out")
    os.symlink(tmp_path / "root" / "uploads" / "inside", tmp_path / "root" / "uploads" / "a" / "in")

    with pytest.raises(RejectedInput):
        storage.write("uploads", "a/b/out/new.jpg", b"x")
    with pytest.raises(RejectedInput):
        storage.stat("uploads", "a/b/out/secret.txt")
    assert storage.read("uploads", "a/in/cell.jpg")[0] == b"jpeg"
    assert not (tmp_path / "new.jpg").exists()


def test_local_plain_copies_need_no_sidecar_and_keep_their_type(tmp_path: Path) -> None:
    """The archive's copies carry no metadata: no sidecar file is made for them, and their
    type is the one their suffix implies. A version that had a sidecar never lends its
    metadata to a later plain version, even of the same bytes."""
    storage = LocalStorage(tmp_path)

    written = storage.write("archive", "d/cell.jpg", b"jpeg", content_type="image/jpeg")
    storage.write("archive", "d/cell.jpg.json", b"{}", content_type="application/json")

    assert not list((tmp_path / ".meta").rglob("*.json"))  # (its lock files are shared)
    found = storage.stat("archive", "d/cell.jpg")
    assert found is not None and found.content_type == "image/jpeg" and found.metadata == {}
    assert found.generation == written.generation
    other = storage.write("archive", "d/cell.jpg", b"jpeg", content_type="image/png", metadata={"k": "v"})
    assert other.metadata == {"k": "v"}
    storage.write("archive", "d/cell.jpg", b"jpeg", content_type="image/jpeg")
    again = storage.stat("archive", "d/cell.jpg")
    assert again is not None and again.metadata == {} and again.content_type == "image/jpeg"


def test_local_writes_leave_no_partial_file_under_the_final_name(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)

    storage.write("tensors", "deep/a.npy", b"x" * 100_000)

    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert [f for f in files if not f.startswith(".meta/")] == ["tensors/deep/a.npy"]


def test_s3_endpoint_down_is_transient() -> None:
    storage = S3Storage(endpoint_url=f"http://127.0.0.1:{free_port()}", region="us-east-1")

    with pytest.raises(TransientError):
        storage.write("archive", "a.jpg", b"x")


def test_gcs_endpoint_down_is_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{free_port()}")
    storage = GcsStorage(project="test", retry_seconds=1)

    with pytest.raises(TransientError):
        storage.stat("uploads", "a.jpg")


def test_archive_can_use_its_own_s3_credentials(s3_bucket: tuple[str, str]) -> None:
    from bloodcell.settings import Settings
    from bloodcell.storage import open_archive

    endpoint, bucket = s3_bucket
    settings = Settings.from_env(
        {
            "ARCHIVE_STORAGE": "s3",
            "ARCHIVE_S3_ENDPOINT_URL": endpoint,
            "ARCHIVE_AWS_ACCESS_KEY_ID": "archive-key",
            "ARCHIVE_AWS_SECRET_ACCESS_KEY": "archive-secret",
        }
    )

    archive = open_archive(settings)
    archive.write(bucket, "a.jpg", b"x")

    assert archive.client._request_signer._credentials.access_key == "archive-key"  # type: ignore[attr-defined]
    assert "archive-secret" not in repr(settings)


def test_archive_credentials_come_in_pairs() -> None:
    from bloodcell.errors import ConfigurationError
    from bloodcell.settings import Settings

    with pytest.raises(ConfigurationError):
        Settings.from_env({"ARCHIVE_AWS_ACCESS_KEY_ID": "only-the-id"})


@pytest.mark.parametrize("size", [10, 11, 4096])
def test_a_bounded_read_refuses_what_is_over_the_limit(backend: tuple[Storage, str], size: int) -> None:
    storage, bucket = backend
    storage.write(bucket, "big.png", b"x" * size)

    if size <= 10:
        data, info = storage.read(bucket, "big.png", max_bytes=10)
        assert data == b"x" * size and info.size == size
    else:
        with pytest.raises(ObjectTooLarge) as caught:
            storage.read(bucket, "big.png", max_bytes=10)
        assert caught.value.info.size == size
        assert "over the limit" in caught.value.reason


def test_create_only_writes_are_announced_by_the_folder_watcher(tmp_path: Path) -> None:
    """The web app stores uploads with if_absent (a hard link): inotify must still see them finished."""
    import threading
    import time

    from bloodcell.eventsource import EventSource
    from bloodcell.watch import folder_watcher

    storage = LocalStorage(tmp_path / "root")
    source = EventSource(storage, {"uploads": "http://127.0.0.1:9/"}, max_attempts=1)
    announced: list[str] = []

    def announce(info: ObjectInfo) -> bool:
        announced.append(info.name)
        return True

    source.announce = announce  # type: ignore[method-assign]
    stop = threading.Event()
    close = folder_watcher(storage, {"uploads": tmp_path / "root" / "uploads"})(source, stop)
    try:
        storage.write("uploads", "web.jpg", b"from the browser", if_absent=True)
        deadline = time.monotonic() + 10
        while not announced and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        close()

    assert announced == ["web.jpg"]


def test_thumbnails_of_entries_that_are_no_regular_file_are_placeholders(
    settings: Any, cell_jpeg: bytes
) -> None:
    """The web app's /thumb answers these with its placeholder (None here), never a 500."""
    from bloodcell.web import results_feed

    storage = LocalStorage(settings.data_dir)
    storage.write(settings.upload_bucket, "real.jpg", cell_jpeg)
    folder = settings.data_dir / settings.upload_bucket
    os.symlink(folder / "real.jpg", folder / "link.jpg")
    os.symlink(settings.data_dir.parent, folder / "outside")
    os.mkfifo(folder / "fifo.jpg")

    shown = {
        name: results_feed.thumbnail(settings, name) for name in ("link.jpg", "fifo.jpg", "outside/x.jpg")
    }

    assert results_feed.thumbnail(settings, "real.jpg") is not None
    assert all(found is None or found.data is None for found in shown.values()), shown
