"""Hostile and changing inputs among good uploads: poison files, and overwrites of the same name.

Every poison file is rejected once with a reason and never blocks the queue; a new version of an
upload is classified again and its result replaces the old one.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import struct
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bloodcell import pipeline as pipeline_module
from bloodcell.pipeline import Pipeline
from bloodcell.settings import Settings
from bloodcell.storage import LocalStorage
from tests.support.stack import (
    check_end_state,
    drop,
    image_pool,
    smear_batch,
    wait_for,
    wait_results,
)

# ---- poison input among good uploads ----


def _png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares a huge image (a decompression bomb)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 100, 150)).save(buffer, "PNG")
    return buffer.getvalue()


def test_poison_input_is_rejected_and_does_not_block_the_queue(
    make_stack: Any, tmp_path: Path, datasets: Path, cell_jpeg: bytes
) -> None:
    stack = make_stack()
    data = stack.data_dir
    before = {n: stack.function_pids(n) for n in ("preprocess", "predict")}
    poison: dict[str, bytes | Path] = {
        "empty.jpg": b"",
        "notes.jpg": b"this is a text file with a .jpg name\n" * 20,
        "truncated.jpg": cell_jpeg[: len(cell_jpeg) // 3],
        "tiny.png": _png((8, 8)),
        "sliver.png": _png((3000, 40)),
        "bomb.png": _png_declaring(40000, 40000),
        "garbage.tif": os.urandom(4096),
    }
    good = smear_batch(datasets, 40, prefix="good")
    drop(data, poison, tmp_path / "staging")  # poison first: the good ones queue behind it
    started = time.monotonic()
    drop(data, good, tmp_path / "staging")
    # and a bad tensor straight into the tensor bucket: predict's own poison
    (data / "tensors" / "stray.npy").write_bytes(b"\x93NUMPY not really")

    wait_results(data, good, timeout=60, log=stack.log_tail)
    elapsed = time.monotonic() - started
    found = wait_results(data, set(poison), timeout=30, final=lambda n, r: True)
    stray_ignored = r'object="tensors/stray\.npy" .* outcome=ignored'
    wait_for("the stray tensor's answer", lambda: re.search(stray_ignored, stack.log_path.read_text()), 30)

    state = check_end_state(data, {*good, *poison}, extra_tensors={"stray.npy"})
    for name in poison:
        result = found[name]
        assert result["status"] == "rejected", (name, result)
        assert result["reason"] and result["rejected_by"] == "preprocess"
    assert "decompression bomb" in found["bomb.png"]["reason"]
    assert "stray" not in found  # a tensor that proves no source never makes a result
    assert {state.results[n]["status"] for n in good} == {"classified"}
    # rejected once and acknowledged: no retry loop, no crash, no restart
    log = stack.log_path.read_text()
    for name in poison:
        assert len(re.findall(rf'object="uploads/{re.escape(name)}" .* outcome=rejected', log)) == 1, name
    # the stray tensor proves no source: ignored once, and it invents no result
    assert len(re.findall(stray_ignored, log)) == 1
    assert "restarting it" not in log
    assert {n: stack.function_pids(n) for n in before} == before
    assert elapsed < 60
    print(f"\npoison: {len(poison)} rejected with reasons; {len(good)} good ones done in {elapsed:.1f}s")


# ---- overwrites: a new generation of the same name ----


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_overwrite_is_classified_again_and_replaces_the_result(
    make_stack: Any, tmp_path: Path, datasets: Path
) -> None:
    stack = make_stack()
    data = stack.data_dir
    storage = LocalStorage(data)
    pool = image_pool(datasets, 3)
    path = data / "uploads" / "cell.jpg"
    archived: list[str] = []

    def settled(content: bytes) -> dict[str, Any]:
        found = wait_results(data, {"cell.jpg"}, timeout=30, log=stack.log_tail)["cell.jpg"]
        info = storage.stat("uploads", "cell.jpg")
        assert info is not None and found["source"]["generation"] == info.generation
        assert found["source"]["sha256"] == _sha(content)
        return found

    # v1 dropped, v2 renamed over it, v3 rewritten in place (same inode), v4 not an image
    versions = [p.read_bytes() for p in pool]
    drop(data, {"cell.jpg": versions[0]}, tmp_path / "staging")
    first = settled(versions[0])
    drop(data, {"cell.jpg": versions[1]}, tmp_path / "staging")
    second = settled(versions[1])
    with path.open("r+b") as handle:
        handle.truncate(0)
        handle.write(versions[2])
    third = settled(versions[2])
    for result in (first, second, third):
        assert result["status"] == "classified"
        archived += [result["archive"]["location"], result["archive"]["location"] + ".json"]
    assert len({r["source"]["generation"] for r in (first, second, third)}) == 3
    drop(data, {"cell.jpg": b"no longer an image"}, tmp_path / "staging")
    fourth = settled(b"no longer an image")
    assert fourth["status"] == "rejected"

    # one result, for the newest version; the archive keeps every classified version
    check_end_state(data, {"cell.jpg"}, extra_archive=archived)

    # rapid overwrites: the second version lands while the first is still being processed
    names = [f"rapid-{i:02d}.jpg" for i in range(20)]
    pool = image_pool(datasets, 40)
    old: dict[str, str] = {}
    for i, name in enumerate(names):
        drop(data, {name: pool[2 * i]}, tmp_path / "staging")
        old[name] = storage.stat("uploads", name).generation  # type: ignore[union-attr]
    for i, name in enumerate(names):
        drop(data, {name: pool[2 * i + 1]}, tmp_path / "staging")
    results = wait_results(data, names, timeout=60, log=stack.log_tail)
    for i, name in enumerate(names):
        assert results[name]["source"]["sha256"] == _sha(pool[2 * i + 1].read_bytes()), name
    # an old version may or may not have been archived before it was superseded; never twice
    old_copies = [k for k in _archive_listing(data) if any(f"/{old[n]}/{n}" in k for n in names)]
    check_end_state(data, {"cell.jpg", *names}, extra_archive=archived + old_copies)


def _archive_listing(data: Path) -> list[str]:
    root = data / "archive"
    return [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]


@pytest.mark.parametrize("stage", ["preprocess", "predict"])
def test_overwrite_while_the_old_version_is_in_flight_leaves_the_newest_result(
    settings: Settings, datasets: Path, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    """v1 is still being preprocessed (or classified) when v2 replaces it and goes all the way
    through: v1's late output must not overwrite v2's tensor or result."""
    from bloodcell.events import ObjectRef
    from bloodcell.model import load_classifier

    local = LocalStorage(settings.data_dir)
    entered, release = threading.Event(), threading.Event()

    def hold_old(call: Any) -> Any:
        def gated(*args: Any) -> Any:
            if threading.current_thread().name == "old-version":
                entered.set()
                assert release.wait(20)
            return call(*args)

        return gated

    real = load_classifier(settings.model_dir, 1)

    class Gated:
        info = real.info
        predict = staticmethod(hold_old(real.predict) if stage == "predict" else real.predict)

    if stage == "preprocess":
        monkeypatch.setattr(pipeline_module, "make_tensor", hold_old(pipeline_module.make_tensor))
    pipe = Pipeline(settings, local, archive=local, classifier=lambda: Gated())

    def run(step: str, bucket: str, name: str) -> Any:
        info = local.stat(bucket, name)
        assert info is not None
        return getattr(pipe, step)(ObjectRef(bucket, name, info.generation))

    first, second = (p.read_bytes() for p in image_pool(datasets, 2))
    local.write("uploads", "cell.jpg", first, content_type="image/jpeg")
    if stage == "predict":
        run("preprocess", "uploads", "cell.jpg")
    old_bucket, old_name = ("uploads", "cell.jpg") if stage == "preprocess" else ("tensors", "cell.jpg.npy")
    outcomes: list[Any] = []
    old = threading.Thread(
        target=lambda: outcomes.append(run(stage, old_bucket, old_name)), name="old-version"
    )
    old.start()
    assert entered.wait(20)

    local.write("uploads", "cell.jpg", second, content_type="image/jpeg")
    assert run("preprocess", "uploads", "cell.jpg").status == "preprocessed"
    assert run("predict", "tensors", "cell.jpg.npy").status == "classified"
    tensor = local.stat("tensors", "cell.jpg.npy")
    release.set()
    old.join(timeout=30)
    if local.stat("tensors", "cell.jpg.npy") != tensor:  # a new tensor version gets its own event
        run("predict", "tensors", "cell.jpg.npy")

    state = check_end_state(settings.data_dir, {"cell.jpg"})
    assert state.results["cell.jpg"]["source"]["sha256"] == _sha(second)
    assert outcomes and outcomes[0].status == "stale", outcomes
