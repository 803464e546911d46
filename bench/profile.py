"""Profile the local stack under a burst: py-spy samples every process, stacks are summed per process.

    pip install py-spy
    python bench/profile.py --images 300 [--model-dir DIR] [--no-spy]

``--no-spy`` runs the same burst without the profiler attached (py-spy pauses each
process to read its stacks), for CPU milliseconds per image alone. ``--steps`` runs no
servers at all: both pipeline steps in this one process over a folder bucket, against
the bare steps (``make_tensor`` then ``predict``) on the same images, so what storage
costs per image shows apart from HTTP and the frameworks.

Writes bench/out/profile-<time>.txt (py-spy's raw collapsed stacks) and prints, per
process (event source, preprocess server, predict server), the functions with the
most on-CPU samples, inclusive and self, plus CPU milliseconds per image.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import OUT, model_dir, real_images
from e2e import Stack
from memory import cpu_seconds

_IDLE = (
    "_worker (concurrent/futures/thread.py:8",
    "wait_for_signals",
    "EpollSelector.select",
    "Condition.wait",
    "Event.wait",
    "SocketIO.readinto",
    "sleep",
)


def summarise(raw: Path, top: int) -> str:
    incl: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    own: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    totals: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")
        procs = [i for i, f in enumerate(frames) if f.startswith("process ")]
        head = frames[procs[-1]] if procs else "?"
        who = (
            "predict"
            if "target=predict" in head
            else "preprocess"
            if "target=preprocess" in head
            else "serve"
        )
        frames = frames[(procs[-1] + 1) if procs else 0 :]
        if not frames or any(k in frames[-1] for k in _IDLE):
            continue
        n = int(count)
        totals[who] += n
        own[who][frames[-1]] += n
        for frame in set(frames):
            incl[who][frame] += n
    out = []
    for who, total in totals.most_common():
        out.append(f"== {who}: {total} on-CPU samples")
        out += [f"   incl {c / total:6.1%}  {f}" for f, c in incl[who].most_common(top)]
        out += [f"   self {c / total:6.1%}  {f}" for f, c in own[who].most_common(top // 2)]
    return "\n".join(out)


def steps_only(mdir: Path, images: list[Path], work: Path) -> str:
    """CPU ms per image: the two steps over a LocalStorage, and the bare steps, in this process."""
    import os

    from bloodcell import names
    from bloodcell.events import ObjectRef
    from bloodcell.pipeline import Pipeline, make_tensor
    from bloodcell.settings import Settings
    from bloodcell.storage import LocalStorage

    env = dict(os.environ, BLOODCELL_STORAGE="local", ARCHIVE_STORAGE="local", MODEL_DIR=str(mdir))
    settings = Settings.from_env(env | {"BLOODCELL_DATA_DIR": str(work)})
    # one storage per step, as the two function processes each have their own caches
    pre, pred = Pipeline(settings, LocalStorage(work)), Pipeline(settings, LocalStorage(work))
    blobs = [p.read_bytes() for p in images]
    pred.classifier.predict(make_tensor(blobs[0], pre.limits))  # load and warm up
    started = time.process_time()
    for blob in blobs:
        pred.classifier.predict(make_tensor(blob, pre.limits))
    bare = (time.process_time() - started) * 1000 / len(blobs)
    uploads = work / settings.upload_bucket
    uploads.mkdir(parents=True, exist_ok=True)
    upload_names = [f"s{i:05d}-{p.name}" for i, p in enumerate(images)]
    for src, name in zip(images, upload_names, strict=True):
        shutil.copyfile(src, uploads / name)
    source = LocalStorage(work)  # what the event source would have announced
    refs = []
    for name in upload_names:
        info = source.stat(settings.upload_bucket, name)
        assert info is not None
        refs.append(ObjectRef(info.bucket, info.name, info.generation, info.size))
    started = time.process_time()
    for ref in refs:
        pre.preprocess(ref)
    preprocess = (time.process_time() - started) * 1000 / len(refs)
    tensors = []
    for name in upload_names:
        info = source.stat(settings.tensor_bucket, names.tensor_name(name))
        assert info is not None
        tensors.append(ObjectRef(info.bucket, info.name, info.generation, info.size))
    started = time.process_time()
    outcomes = [pred.predict(ref).status for ref in tensors]
    predict = (time.process_time() - started) * 1000 / len(tensors)
    assert outcomes.count("classified") == len(tensors), outcomes
    return (
        f"{len(images)} images, CPU ms per image: bare steps {bare:.2f}; over a folder bucket "
        f"preprocess {preprocess:.2f} + predict {predict:.2f} = {preprocess + predict:.2f} "
        f"(storage and checks: {preprocess + predict - bare:.2f})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--model-dir")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-spy", action="store_true", help="CPU per image only, no profiler attached")
    parser.add_argument("--steps", action="store_true", help="the two steps in one process, no servers")
    parser.add_argument(
        "--data-parent",
        type=Path,
        default=OUT,
        help="where the stack's data folder is made (default bench/out; /dev/shm: the disk's share)",
    )
    args = parser.parse_args()
    print(f"load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    if args.steps:
        args.data_parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="steps-", dir=args.data_parent))
        try:
            print(steps_only(model_dir(args.model_dir), real_images(args.images), work))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return 0
    if not args.no_spy and not shutil.which("py-spy"):
        raise SystemExit("pip install py-spy first")
    OUT.mkdir(parents=True, exist_ok=True)
    args.data_parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="profile-", dir=args.data_parent))
    stack = Stack(work / "data", model_dir(args.model_dir), work / "serve.log")
    raw = OUT / f"profile-{time.strftime('%Y%m%d-%H%M%S')}.txt"
    images = real_images(args.images)
    try:
        time.sleep(1.0)
        spy = (
            None
            if args.no_spy
            else subprocess.Popen(
                [
                    "py-spy",
                    "record",
                    "-p",
                    str(stack.process.pid),
                    "--subprocesses",
                    "-r",
                    "250",
                    "-f",
                    "raw",
                    "-o",
                    str(raw),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        time.sleep(2.0)
        before = cpu_seconds(stack.process.pid)
        started = time.monotonic()
        for i, src in enumerate(images):
            shutil.copyfile(src, stack.uploads / f"p{i:05d}-{src.name}")
        while len(list(stack.results.glob("*.json"))) < len(images) and time.monotonic() - started < 300:
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        after = cpu_seconds(stack.process.pid)
        if spy is not None:
            spy.send_signal(2)
            spy.wait(timeout=60)
    finally:
        stack.stop()
    shutil.rmtree(work, ignore_errors=True)
    per_image = {k: round((after[k] - before.get(k, 0)) * 1000 / len(images), 2) for k in after}
    print(
        f"{len(images)} images in {elapsed:.1f}s ({len(images) / elapsed:.1f}/s); CPU ms per image:",
        per_image,
        f"total {sum(per_image.values()):.2f}",
    )
    if spy is not None:
        print(summarise(raw, args.top))
        print(f"raw stacks: {raw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
