"""Profile the local stack under a burst: py-spy samples every process, stacks are summed per process.

    pip install py-spy
    python bench/profile.py --images 300 [--model-dir DIR] [--no-spy]

``--no-spy`` runs the same burst without the profiler attached (py-spy pauses each
process to read its stacks), for CPU milliseconds per image alone.

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


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--model-dir")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-spy", action="store_true", help="CPU per image only, no profiler attached")
    args = parser.parse_args()
    if not args.no_spy and not shutil.which("py-spy"):
        raise SystemExit("pip install py-spy first")
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="profile-", dir=OUT))
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
