"""The targets of issue 6, judged against a run's figures, and the table printed from them."""

from __future__ import annotations

from typing import Any


def _get(data: dict[str, Any], path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


# (name, figure path, comparison, limit, unit)
TARGETS = [
    ("Predict cold start (whole process)", "coldstart.litert_predict.to_answer_s.median", "<=", 0.5, "s"),
    ("Cold start: TensorFlow / LiteRT", "coldstart.tensorflow_over_litert_predict.median", ">=", 10.0, "x"),
    ("Inference, 1 thread", "inference.invoke_ms.median", "<=", 3.0, "ms"),
    ("Idle stack, upload to result p50", "e2e.idle.latency_ms.median", "<=", 150.0, "ms"),
    ("Burst: fraction of in-process throughput", "e2e.pipeline_fraction_of_in_process", ">=", 0.70, ""),
    ("Burst: images lost", "e2e.burst.lost", "<=", 0, ""),
    ("Predict peak RSS", "e2e.memory.predict.peak_rss_mb", "<=", 200.0, "MB"),
    ("Predict runtime dependencies", "sizes.predict.runtime_deps_mb", "<=", 250.0, "MB"),
    # issue 10: events, not listings
    ("Idle stack, upload to result p50 (events)", "e2e.idle.latency_ms.median", "<=", 30.0, "ms"),
    ("Burst: fraction of in-process (events)", "e2e.pipeline_fraction_of_in_process", ">=", 0.5, ""),
    ("Burst: stack CPU per image / in-process", "e2e.cpu_per_image_over_in_process", "<=", 3.0, "x"),
    ("Idle CPU, large/small bucket, watch", "scale.watch.idle_cpu_ratio", "<=", 1.5, "x"),
    ("Idle CPU, large/small bucket, receive (S3)", "scale.receive.idle_cpu_ratio", "<=", 1.5, "x"),
    ("Event source memory, large/small, watch", "scale.watch.rss_ratio", "<=", 1.2, "x"),
    ("Event source memory, large/small, receive", "scale.receive.rss_ratio", "<=", 1.2, "x"),
    ("Slide page: longest task while reviewing", "reviewpage.review.max_ms", "<=", 200.0, "ms"),
    ("Slide page: longest task while uploading", "reviewpage.upload.max_ms", "<=", 200.0, "ms"),
]


def judge(figures: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name, path, op, limit, unit in TARGETS:
        value = _get(figures, path)
        met = None if value is None else (value <= limit if op == "<=" else value >= limit)
        out.append(
            {"target": name, "figure": path, "value": value, "limit": f"{op} {limit:g}{unit}", "met": met}
        )
    return out


def _s(stats: dict[str, Any] | None, unit: str = "", scale: float = 1.0, digits: int = 1) -> str:
    if not stats or stats.get("median") is None:
        return "n/a"
    med = stats["median"] * scale
    p95 = stats.get("p95")
    text = f"{med:.{digits}f}{unit}"
    if p95 is not None:
        text += f" (p95 {p95 * scale:.{digits}f}{unit})"
    return text


def table(results: dict[str, Any]) -> str:
    f = results["figures"]
    cold, inf, pre, e2e, sizes = (
        f.get(k, {}) for k in ("coldstart", "inference", "preprocess", "e2e", "sizes")
    )
    rows: list[tuple[str, str, str]] = []
    tf_ratio = _get(cold, "tensorflow_over_litert_predict.median")
    rows += [
        (
            "Predict cold start, LiteRT (import module, load, classify)",
            _s(_get(cold, "litert_predict.to_answer_s"), " s", 1, 2),
            f"to exit {_get(cold, 'litert_predict.wall_s.median')} s",
        ),
        (
            "Same steps, TensorFlow 2 tf.lite.Interpreter",
            _s(_get(cold, "tensorflow.to_answer_s"), " s", 1, 2),
            f"to exit {_get(cold, 'tensorflow.wall_s.median')} s",
        ),
        ("  ratio TensorFlow / LiteRT (interleaved pairs)", f"{tf_ratio}x" if tf_ratio else "n/a", ""),
        (
            "  bare LiteRT interpreter script (like for like)",
            _s(_get(cold, "litert_bare.to_answer_s"), " s", 1, 2),
            f"TF/bare {_get(cold, 'tensorflow_over_litert_bare.median')}x",
        ),
        (
            "Inference, LiteRT 1 thread",
            _s(inf.get("invoke_ms"), " ms", 1, 2),
            f"{inf.get('mflops')} MFLOPs, {inf.get('achieved_gflops')} GFLOP/s "
            f"({inf.get('fraction_of_reference')} of 1-thread GEMM "
            f"{inf.get('cpu_reference_gflops')} GFLOP/s)",
        ),
    ]
    for size, data in pre.items():
        rows.append(
            (
                f"Preprocess {size.replace('_', ' ')}",
                _s(data.get("ms"), " ms", 1, 1),
                f"{data.get('mean_kb')} KB",
            )
        )
    burst = e2e.get("burst", {})
    rows += [
        (
            "Idle stack, one image, upload to result",
            _s(_get(e2e, "idle.latency_ms"), " ms", 1, 0),
            f"n={_get(e2e, 'idle.latency_ms.n')}",
        ),
        (
            f"Burst of {burst.get('images')}, upload to result",
            _s(burst.get("latency_ms"), " ms", 1, 0),
            f"max {_get(burst, 'latency_ms.max')} ms",
        ),
        (
            "  throughput through the stack",
            f"{burst.get('throughput_images_per_s')} images/s",
            f"lost {burst.get('lost')}",
        ),
        (
            "  in-process limit (same steps, one loop)",
            f"{_get(e2e, 'in_process.images_per_s')} images/s",
            f"stack = {e2e.get('pipeline_fraction_of_in_process')} of it",
        ),
    ]
    per_burst = [r.get("cpu_ms_per_image") or {} for r in burst.get("runs") or []]
    if per_burst and per_burst[0]:
        # the median burst by total, the same kind of figure as the ratio's median
        cpu = sorted(per_burst, key=lambda c: sum(c.values()))[len(per_burst) // 2]
        parts = ", ".join(f"{k.split(' ')[0]} {v}" for k, v in sorted(cpu.items()))
        totals = ", ".join(str(round(sum(c.values()), 1)) for c in per_burst)
        rows.append(
            (
                "  CPU per image in the stack (ms)",
                f"{round(sum(cpu.values()), 1)} ms",
                f"median of {len(per_burst)} bursts ({totals}): {parts}; in-process "
                f"{_get(e2e, 'in_process.ms_per_image')} ms; creating a file cost "
                f"{e2e.get('file_create_cpu_us_at_start')} µs of CPU at the start",
            )
        )
    idle_cpu = e2e.get("idle_cpu_percent_after_run") or {}
    if idle_cpu:
        rows.append(
            (
                f"  idle stack CPU, {idle_cpu.get('uploads_in_bucket')} uploads in the bucket",
                f"{idle_cpu.get('serve (event source)')} % of a core",
                "inotify announces files: nothing is listed while idle",
            )
        )
    for mode in ("watch", "receive"):
        scale = _get(f, f"scale.{mode}") or {}
        if scale:
            small, large = scale["small"], scale["large"]
            rows.append(
                (
                    f"Event source ({mode}), {scale['objects'][0]} vs {scale['objects'][1]} objects",
                    f"idle CPU x{scale['idle_cpu_ratio']}, RSS x{scale['rss_ratio']}",
                    f"{small['idle_cpu_percent']} -> {large['idle_cpu_percent']} % of a core; "
                    f"{small['rss_mb']} -> {large['rss_mb']} MB; reconcile {large['reconcile_s']} s",
                )
            )
    for function in ("preprocess", "predict"):
        mem = _get(e2e, f"memory.{function}") or {}
        rows.append(
            (
                f"Peak RSS, {function} server",
                f"{mem.get('peak_rss_mb')} MB",
                f"tree PSS peak {mem.get('peak_pss_mb')} MB",
            )
        )
    for function in ("preprocess", "predict"):
        s = sizes.get(function, {})
        rows.append(
            (
                f"Runtime deps, {function}",
                f"{s.get('runtime_deps_mb')} MB",
                f"with TensorFlow {s.get('with_tensorflow_mb')} MB",
            )
        )
    page = f.get("reviewpage", {})
    if page.get("skipped"):
        rows.append(("Slide page in Chromium (upload, review)", "n/a", f"skipped: {page['skipped']}"))
    elif page:
        for phase in ("upload", "page_load", "review"):
            p = page.get(phase, {})
            rows.append(
                (
                    f"Slide page, {page.get('images')} images, {phase.replace('_', ' ')}: longest task",
                    f"{p.get('max_ms')} ms",
                    f"{p.get('long_tasks')} tasks > 50 ms, {p.get('over_200ms')} > 200 ms",
                )
            )
        rows.append(
            (
                "  review key to next cell",
                _s(_get(page, "review.key_to_next_cell_ms"), " ms"),
                "A key, one cell each",
            )
        )
    lines = ["| figure | median (p95) | notes |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    lines += ["", "| target | limit | value | met |", "|---|---|---|---|"]
    for t in results["targets"]:
        met = {True: "MET", False: "**MISSED**", None: "not measured"}[t["met"]]
        lines.append(f"| {t['target']} | {t['limit']} | {t['value']} | {met} |")
    return "\n".join(lines)


# Every figure a run must produce (the quick smoke test checks each is a number).
# Those marked True need the TensorFlow environment, which a quick run may not have:
# they may be None there, with the reason beside them.
FIGURES = [
    ("coldstart.litert_predict.to_answer_s.median", False),
    ("coldstart.litert_predict.wall_s.median", False),
    ("coldstart.litert_bare.to_answer_s.median", False),
    ("coldstart.tensorflow.to_answer_s.median", True),
    ("coldstart.tensorflow_over_litert_predict.median", True),
    ("inference.invoke_ms.median", False),
    ("inference.invoke_ms.p95", False),
    ("inference.mflops", False),
    ("inference.achieved_gflops", False),
    ("preprocess.jpeg_320x240.ms.median", False),
    ("preprocess.jpeg_640x480.ms.median", False),
    ("preprocess.jpeg_360x363.ms.median", False),
    ("preprocess.jpeg_4000x3000.ms.median", False),
    ("preprocess.png_640x480.ms.median", False),
    ("e2e.idle.latency_ms.median", False),
    ("e2e.burst.latency_ms.median", False),
    ("e2e.burst.latency_ms.p95", False),
    ("e2e.burst.latency_ms.max", False),
    ("e2e.burst.throughput_images_per_s", False),
    ("e2e.burst.lost", False),
    ("e2e.in_process.images_per_s", False),
    ("e2e.pipeline_fraction_of_in_process", False),
    ("e2e.memory.preprocess.peak_rss_mb", False),
    ("e2e.memory.predict.peak_rss_mb", False),
    ("sizes.preprocess.runtime_deps_mb", False),
    ("sizes.predict.runtime_deps_mb", False),
    ("sizes.preprocess.with_tensorflow_mb", True),
    ("sizes.predict.with_tensorflow_mb", True),
    ("e2e.cpu_per_image_over_in_process", False),
    ("e2e.file_create_cpu_us_at_start", False),
    ("scale.watch.idle_cpu_ratio", False),
    ("scale.watch.rss_ratio", False),
    ("scale.receive.idle_cpu_ratio", False),
    ("scale.receive.rss_ratio", False),
    ("reviewpage.upload.max_ms", False),
    ("reviewpage.review.max_ms", False),
    ("reviewpage.review.key_to_next_cell_ms.median", False),
]


def missing_figures(results: dict[str, Any]) -> list[str]:
    """Figures that are not numbers (TensorFlow ones are excused when no TF env was used)."""
    has_tf = bool(_get(results, "figures.coldstart.tf_python"))
    out = []
    for path, needs_tf in FIGURES:
        value = _get(results["figures"], path)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            continue
        if needs_tf and not has_tf:
            continue
        out.append(path)
    return out
