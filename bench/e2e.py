"""4. End to end through the local stack (and 5, memory, sampled meanwhile).

``bloodcell serve --data-dir D --no-web`` runs as a real process, exactly as a
person starts it. The bench copies files into D/uploads like a person would and
times each result from the files themselves: latency is the result file's mtime
minus the upload file's mtime (one clock, the file system's, no polling error);
the bench only polls to know when everything has arrived.

- idle: one image at a time on a quiet stack, waiting for its result before the next.
- burst: N images copied into uploads at once; per-image latency, throughput as
  N / (last result - first upload), and the count of uploads with no result (lost).
- in-process limit: the same preprocess and predict steps (``make_tensor`` then
  ``Classifier.predict``) in one loop in this process over the same images, run just
  before each burst (A/B interleaved; the stack is up but idle meanwhile). The pipeline's
  fraction is the median over bursts of burst throughput / its paired in-process rate.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import summary
from memory import Sampler, cpu_seconds


def _mtime(path: Path) -> float:
    return path.stat().st_mtime_ns / 1e9


def in_process(model_dir: Path, images: list[Path]) -> dict[str, float]:
    from bloodcell.imaging import ImageLimits
    from bloodcell.model import load_classifier
    from bloodcell.pipeline import make_tensor

    classifier = load_classifier(model_dir, 1)
    limits = ImageLimits()
    blobs = [p.read_bytes() for p in images]
    classifier.predict(make_tensor(blobs[0], limits))  # warm-up
    started, cpu_started = time.perf_counter(), time.process_time()
    for blob in blobs:
        classifier.predict(make_tensor(blob, limits))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "images": len(blobs),
        "seconds": round(elapsed, 3),
        "images_per_s": round(len(blobs) / elapsed, 1),
        "cpu_ms_per_image": round(cpu * 1000 / len(blobs), 3),
    }


class Stack:
    def __init__(self, data_dir: Path, model_dir: Path, log_path: Path) -> None:
        self.data_dir = data_dir
        env = dict(os.environ)
        env.update(MODEL_DIR=str(model_dir), BLOODCELL_STORAGE="local", ARCHIVE_STORAGE="local")
        env.pop("BLOODCELL_DATA_DIR", None)
        self.log = log_path.open("wb")
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bloodcell.cli", "serve", "--data-dir", str(data_dir), "--no-web"],
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=env,
        )
        ready = threading.Event()

        def watch() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                self.log.write(b"[stdout] " + line)
                if line.startswith(b"bloodcell ready"):
                    ready.set()

        threading.Thread(target=watch, daemon=True).start()
        if not ready.wait(180):
            self.stop()
            raise RuntimeError(f"bloodcell serve did not get ready; see {log_path}")
        self.ready_s = time.perf_counter() - started
        self.uploads = data_dir / "uploads"
        self.results = data_dir / "results"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def _collect(stack: Stack, names: list[str]) -> tuple[list[float], list[dict], list[str]]:
    latencies, records, missing = [], [], []
    for name in names:
        result = stack.results / f"{name}.json"
        if not result.is_file():
            missing.append(name)
            continue
        latencies.append((_mtime(result) - _mtime(stack.uploads / name)) * 1000)
        records.append(json.loads(result.read_text()))
    return latencies, records, missing


def _breakdown(records: list[dict]) -> dict[str, object]:
    """Where the time went, from the result documents' own stamps and timings."""
    from datetime import datetime

    def stamp(value: str) -> float:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()

    to_tensor, to_result, pre, inf = [], [], [], []
    for r in records:
        ts = r.get("timestamps", {})
        if ts.get("uploaded") and ts.get("preprocessed") and ts.get("classified"):
            to_tensor.append((stamp(ts["preprocessed"]) - stamp(ts["uploaded"])) * 1000)
            to_result.append((stamp(ts["classified"]) - stamp(ts["preprocessed"])) * 1000)
        timings = r.get("timings_ms", {})
        if "preprocess" in timings:
            pre.append(timings["preprocess"])
        if "inference" in timings:
            inf.append(timings["inference"])
    out: dict[str, object] = {}
    for key, values in (
        ("upload_to_tensor_ms", to_tensor),
        ("tensor_to_classified_ms", to_result),
        ("preprocess_step_ms", pre),
        ("predict_step_ms", inf),
    ):
        if values:
            out[key] = summary(values, 1)
    return out


def _wait_for(paths: list[Path], timeout: float, poll: float) -> float:
    deadline = time.monotonic() + timeout
    pending = list(paths)
    while pending and time.monotonic() < deadline:
        pending = [p for p in pending if not p.exists()]
        if pending:
            time.sleep(poll)
    return time.monotonic()


def file_create_us(folder: Path, n: int = 200) -> float:
    """CPU microseconds to create one small file and rename it into place, median of n.

    On this machine's root file system (ext4 without a journal) the cost swings tenfold
    with how many files were deleted nearby in the last minutes, so the run records it.
    The files are left in place: deleting them would raise the cost of what follows."""
    probe = folder / ".create-probe"
    probe.mkdir()
    costs = []
    for i in range(n):
        started = time.process_time()
        fd, tmp = tempfile.mkstemp(dir=probe)
        os.write(fd, b"x" * 4096)
        os.close(fd)
        os.replace(tmp, probe / f"{i}")
        costs.append((time.process_time() - started) * 1e6)
    return round(statistics.median(costs), 1)


def run(model_dir: Path, images: list[Path], idle_repeats: int, bursts: int, work: Path) -> dict[str, object]:
    data_dir = work / "e2e-data"  # private to this run: runs side by side must not share buckets
    data_dir.mkdir(parents=True)
    create_us = file_create_us(work)
    stack = Stack(data_dir, model_dir, work / "serve.log")
    sampler = Sampler(stack.process.pid)
    sampler.start()
    try:
        # ---- one image at a time on an idle stack ----
        time.sleep(1.0)
        idle_names, observed = [], []
        for i in range(idle_repeats):
            src = images[i % len(images)]
            name = f"idle-{i:03d}-{src.name}"
            started = time.time()
            shutil.copyfile(src, stack.uploads / name)
            _wait_for([stack.results / f"{name}.json"], 30, 0.002)
            observed.append((time.time() - started) * 1000)
            idle_names.append(name)
            time.sleep(0.3)
        idle_lat, idle_records, idle_missing = _collect(stack, idle_names)

        # ---- N images at once, each burst paired with an in-process run just before it ----
        burst_runs, limits, all_latencies = [], [], []
        for b in range(bursts):
            time.sleep(0.5)
            limits.append(in_process(model_dir, images))
            time.sleep(0.5)
            names = [f"burst{b}-{i:04d}-{src.name}" for i, src in enumerate(images)]
            cpu_before = cpu_seconds(stack.process.pid)
            for src, name in zip(images, names, strict=True):
                shutil.copyfile(src, stack.uploads / name)
            _wait_for([stack.results / f"{n}.json" for n in names], max(120.0, 0.5 * len(names)), 0.1)
            cpu_after = cpu_seconds(stack.process.pid)
            lat, records, missing = _collect(stack, names)
            all_latencies += lat
            first_upload = min(_mtime(stack.uploads / n) for n in names)
            last_result = max(
                (
                    _mtime(stack.results / f"{n}.json")
                    for n in names
                    if (stack.results / f"{n}.json").is_file()
                ),
                default=first_upload,
            )
            span = last_result - first_upload
            burst_runs.append(
                {
                    "latency_ms": summary(lat, 1) if lat else None,
                    "throughput_images_per_s": round(len(lat) / span, 1) if span > 0 else None,
                    "span_s": round(span, 2),
                    "lost": len(missing),
                    "rejected": sum(1 for r in records if r.get("status") != "classified"),
                    "breakdown": _breakdown(records),
                    "in_process_images_per_s": limits[-1]["images_per_s"],
                    "cpu_ms_per_image": {
                        k: round((cpu_after[k] - cpu_before.get(k, 0.0)) * 1000 / len(names), 2)
                        for k in cpu_after
                    },
                }
            )
        # what the idle stack costs once its buckets hold every upload and tensor of the run
        time.sleep(1.0)
        idle_before, idle_t = cpu_seconds(stack.process.pid), time.monotonic()
        time.sleep(3.0)
        idle_after, idle_span = cpu_seconds(stack.process.pid), time.monotonic() - idle_t
        idle_cpu = {
            k: round((idle_after[k] - idle_before.get(k, 0.0)) / idle_span * 100, 1) for k in idle_after
        }
        objects = sum(1 for _ in stack.uploads.iterdir())
        memory = sampler.stop()
    finally:
        if sampler._thread.is_alive():
            sampler.stop()
        stack.stop()
    limit = statistics.median(r["images_per_s"] for r in limits)
    throughputs = [r["throughput_images_per_s"] or 0.0 for r in burst_runs]
    throughput = statistics.median(throughputs)
    fractions = [t / r["images_per_s"] for t, r in zip(throughputs, limits, strict=True)]
    cpu_ratios = [  # CPU against CPU: wall time would flatter the stack on a loaded machine
        sum(run["cpu_ms_per_image"].values()) / r["cpu_ms_per_image"]
        for run, r in zip(burst_runs, limits, strict=True)
    ]
    return {
        "stack_ready_s": round(stack.ready_s, 2),
        "file_create_cpu_us_at_start": create_us,
        "idle": {
            "latency_ms": summary(idle_lat, 1) if idle_lat else None,
            "observed_by_bench_ms": summary(observed, 1),
            "lost": len(idle_missing),
            "breakdown": _breakdown(idle_records),
        },
        "burst": {
            "images": len(images),
            "bursts": len(burst_runs),
            "latency_ms": summary(all_latencies, 1) if all_latencies else None,
            "throughput_images_per_s": throughput,
            "throughput_min_max": [min(throughputs), max(throughputs)],
            "lost": sum(r["lost"] for r in burst_runs),
            "rejected": sum(r["rejected"] for r in burst_runs),
            "runs": burst_runs,
        },
        "in_process": {
            "images_per_s": round(limit, 1),
            "ms_per_image": round(1000 / limit, 2),
            "runs": limits,
        },
        # median over bursts of (burst throughput / the in-process run just before it)
        "pipeline_fraction_of_in_process": round(statistics.median(fractions), 2),
        "pipeline_fraction_per_burst": [round(f, 2) for f in fractions],
        # CPU of every process of the stack per image, over the in-process CPU per image (median)
        "cpu_per_image_over_in_process": round(statistics.median(cpu_ratios), 2),
        "memory": memory,
        "idle_cpu_percent_after_run": {"uploads_in_bucket": objects, **idle_cpu},
    }
