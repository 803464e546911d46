"""The ``bloodcell`` command: serve the local stack, classify files, run one component."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import stat
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bloodcell.errors import ConfigurationError, RejectedInput

if TYPE_CHECKING:
    from bloodcell.imaging import ImageLimits

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp"}


def _setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")


def _wait_for_signal() -> None:
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    stopping.wait()


def cmd_serve(args: argparse.Namespace) -> int:
    from bloodcell.serve import LocalStack

    stack = LocalStack(Path(args.data_dir), port=args.port, web=not args.no_web, host=args.host)
    try:
        stack.start()
        web = stack.web_url or "no web app"
        print(
            f"bloodcell ready: {web}; drop images into {stack.data_dir / stack.settings.upload_bucket}",
            flush=True,
        )
        _wait_for_signal()
    finally:
        stack.stop()
    return 0


def cmd_eventsource(_args: argparse.Namespace) -> int:
    """The bucket event source alone, configured by environment (as in Knative)."""
    from bloodcell.eventsource import EventSource
    from bloodcell.pipeline import Pipeline
    from bloodcell.settings import get_settings
    from bloodcell.storage import open_storage

    settings = get_settings()
    routes = {b: url for b, url in settings.event_sinks if b in settings.event_source_buckets}
    if not routes:
        raise ConfigurationError("set K_SINK or EVENT_SINKS: the event source has nowhere to send events")
    storage = open_storage(settings)
    pipeline = Pipeline(settings, storage)
    done = {settings.upload_bucket: pipeline.upload_done, settings.tensor_bucket: pipeline.tensor_done}
    source = EventSource(
        storage,
        routes,
        poll_seconds=settings.event_source_poll_seconds,
        concurrency=settings.event_source_concurrency,
        is_done={b: f for b, f in done.items() if b in routes},
        settle=settings.storage == "local",
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    source.run(stop)
    return 0


def cmd_function(args: argparse.Namespace) -> int:
    """One CloudEvent function under functions-framework's gunicorn, with the FUNCTION_* limits."""
    from bloodcell.funcserver import run
    from bloodcell.settings import get_settings

    settings = get_settings()
    run(args.target, args.source, args.host, args.port or settings.port, settings)
    return 0


def cmd_webapp(args: argparse.Namespace) -> int:
    from bloodcell.web.app import main as web_main

    web_main(host=os.environ.get("HOST", args.host))
    return 0


def _images(paths: Sequence[str]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
        else:
            yield path


def _read_bounded(path: Path, limits: ImageLimits) -> bytes:
    """At most ``max_bytes + 1`` bytes, refused from the file's size before any is read."""
    from bloodcell.imaging import check_size

    with path.open("rb") as handle:
        st = os.fstat(handle.fileno())
        if stat.S_ISREG(st.st_mode):
            check_size(st.st_size, limits)
        data = handle.read(limits.max_bytes + 1)
    check_size(len(data), limits)  # a file still growing, or one stat cannot size (a pipe)
    return data


def cmd_classify(args: argparse.Namespace) -> int:
    from bloodcell.imaging import ImageLimits
    from bloodcell.model import default_model_dir, load_classifier
    from bloodcell.pipeline import make_tensor
    from bloodcell.settings import get_settings

    settings = get_settings()
    classifier = load_classifier(settings.model_dir or default_model_dir(), settings.model_threads)
    limits = ImageLimits(max_bytes=settings.max_upload_bytes, max_pixels=settings.max_image_pixels)
    failures = 0
    for path in _images(args.paths):
        record: dict[str, object] = {
            "path": str(path),
            "status": "rejected",
            "label": None,
            "confidence": None,
            "uncertain": None,
            "probabilities": None,
            "reason": None,
        }
        try:
            prediction = classifier.predict(make_tensor(_read_bounded(path, limits), limits))
            record.update(
                status="classified",
                label=prediction.label,
                confidence=prediction.confidence,
                uncertain=prediction.uncertain,
                probabilities=prediction.probabilities,
            )
        except RejectedInput as exc:
            record["reason"] = exc.reason
        except OSError as exc:
            record["reason"] = f"cannot read file: {exc.strerror or exc}"
            failures += 1
        if args.json:
            print(json.dumps(record), flush=True)
        elif record["status"] == "classified":
            flag = "  (uncertain)" if record["uncertain"] else ""
            print(f"{path}\t{record['label']}\t{record['confidence']:.3f}{flag}", flush=True)
        else:
            print(f"{path}\trejected\t{record['reason']}", flush=True)
    return 1 if failures else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bloodcell", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the whole pipeline locally on folder buckets")
    serve.add_argument(
        "--data-dir",
        default=os.environ.get("BLOODCELL_DATA_DIR", "bloodcell-data"),
        help="folder holding the uploads/, tensors/, results/ and archive/ buckets",
    )
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")), help="web app port")
    serve.add_argument("--host", default="127.0.0.1", help="web app interface")
    serve.add_argument("--no-web", action="store_true", help="run the pipeline without the web app")
    serve.set_defaults(func=cmd_serve)
    classify = sub.add_parser("classify", help="classify image files or folders in-process")
    classify.add_argument("paths", nargs="+")
    classify.add_argument("--json", action="store_true", help="one JSON object per line")
    classify.set_defaults(func=cmd_classify)
    source = sub.add_parser("eventsource", help="run the bucket event source (K_SINK / EVENT_SINKS)")
    source.set_defaults(func=cmd_eventsource)
    function = sub.add_parser("function", help="serve one function (preprocess or predict) with limits")
    function.add_argument("--target", required=True, help="function name in the source file")
    function.add_argument("--source", required=True, help="the function's main.py")
    function.add_argument("--host", default="0.0.0.0")
    function.add_argument("--port", type=int, default=None, help="default: PORT")
    function.set_defaults(func=cmd_function)
    web = sub.add_parser("webapp", help="run the web app alone (PORT, bucket settings from env)")
    web.add_argument("--host", default="0.0.0.0")
    web.set_defaults(func=cmd_webapp)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(os.environ.get("LOG_LEVEL", "INFO").upper())
    try:
        return int(args.func(args))
    except ConfigurationError as exc:
        print(f"bloodcell: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
