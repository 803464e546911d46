"""bloodcell: classify white blood cells in microscope images, locally or as a serverless pipeline.

Research tool, not a diagnostic device. Examples:

  bloodcell serve                       the whole system on this machine: http://127.0.0.1:8080
  bloodcell classify cells/ --json      classify files or folders in-process, one JSON result a line

Every subcommand reads the same UPPER_SNAKE environment variables as the deployed
functions (see the README's configuration table); a flag beats its variable.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bloodcell.errors import ConfigurationError
from bloodcell.formats import KINDS, is_image_name
from bloodcell.logs import configure_logging
from bloodcell.reports.kinds import FORMATS
from bloodcell.results import Result, Source, iso
from bloodcell.settings import Settings

log = logging.getLogger("bloodcell.cli")


def _settings(args: argparse.Namespace, **defaults: Any) -> Settings:
    """Flags beat environment beats defaults; a flag left out is None and does not count."""
    overrides = {name: getattr(args, name, None) for name in ("data_dir", "port", "host")}
    settings = Settings.from_env(overrides=overrides, defaults=defaults)
    configure_logging(settings)
    return settings


def _wait_for_signal() -> None:
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    stopping.wait()


def cmd_serve(args: argparse.Namespace) -> int:
    from bloodcell.serve import LocalStack

    settings = _settings(args, host="127.0.0.1")
    stack = LocalStack(settings.data_dir, port=settings.port, web=not args.no_web, host=settings.host)
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


def cmd_eventsource(args: argparse.Namespace) -> int:
    """The bucket event source alone, configured by environment (as in Knative)."""
    import tempfile

    from bloodcell.eventsource import EventSource
    from bloodcell.storage import open_storage

    settings = _settings(args)
    mode = args.mode or settings.event_source_mode
    routes = settings.routes
    if not routes:
        raise ConfigurationError("set K_SINK or EVENT_SINKS: the event source has nowhere to send events")
    if mode == "watch" and settings.storage != "local":
        raise ConfigurationError("EVENT_SOURCE_MODE=watch needs folder buckets (BLOODCELL_STORAGE=local)")
    storage = open_storage(settings)
    verify: bool | str = True
    if settings.ca_certs:  # the SinkBinding hands PEM text; requests wants a file
        with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as pem:
            pem.write(settings.ca_certs)
        verify = pem.name
    source = EventSource.for_settings(settings, storage, routes, verify)
    if mode == "receive":
        from bloodcell.receiver import webhook_receiver

        announcer = webhook_receiver(settings.host, settings.port, settings.event_webhook_token)
    else:
        from bloodcell.watch import folder_watcher

        announcer = folder_watcher(storage, {b: settings.data_dir / b for b in routes})
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    source.run(stop, announcer=announcer)
    return 0


def cmd_webapp(args: argparse.Namespace) -> int:
    from bloodcell.web.app import main as web_main

    web_main(_settings(args))
    return 0


def _images(paths: Sequence[str]) -> Iterator[Path]:
    """Files as given; folders walked for image files, and a folder holding none is said so."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and is_image_name(p.name))
            if not found:
                log.warning("%r holds no image files (accepted: %s)", str(path), KINDS)
            yield from found
        else:
            yield path


def _classify_one(path: Path, settings: Settings) -> Result:
    from bloodcell.imaging import ImageLimits
    from bloodcell.model import default_model_dir, load_classifier
    from bloodcell.pipeline import classify_bytes

    classifier = load_classifier(settings.model_dir or default_model_dir(), settings.model_threads)
    limits = ImageLimits(max_bytes=settings.max_upload_bytes, max_pixels=settings.max_image_pixels)
    try:
        data = path.read_bytes()
        uploaded = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError as exc:
        source = Source(bucket="file", name=str(path), generation="")
        return Result.rejected(source, f"cannot read file: {exc.strerror or exc}", "preprocess", {}, {})
    digest = hashlib.sha256(data).hexdigest()
    # a local file's generation is its content: the same bytes are the same version
    source = Source("file", str(path), digest[:16], digest, len(data), iso(uploaded))
    return classify_bytes(data, source, classifier, limits)


def cmd_classify(args: argparse.Namespace) -> int:
    settings = _settings(args)
    failures = classified = 0
    for path in _images(args.paths):
        result = _classify_one(path, settings)
        failures += result.source.generation == ""  # unreadable, as opposed to not an image
        classified += 1
        if args.json:
            print(result.to_json(indent=None).decode(), flush=True)
        elif result.is_classified:
            flag = "  (uncertain)" if result.uncertain else ""
            print(f"{path}\t{result.label}\t{result.confidence:.3f}{flag}", flush=True)
        else:
            print(f"{path}\trejected\t{result.reason}", flush=True)
    if not classified:
        print(f"bloodcell classify: no image files found (accepted: {KINDS})", file=sys.stderr)
        return 1
    return 1 if failures else 0


def cmd_report(args: argparse.Namespace) -> int:
    """One slide's report from the same buckets the running system uses, through the storage layer."""
    from bloodcell.errors import RejectedInput
    from bloodcell.reports.render import report_bytes
    from bloodcell.storage import open_storage

    settings = _settings(args)
    try:
        data = report_bytes(open_storage(settings), settings, args.slide, args.format, args.wbc)
    except RejectedInput as exc:
        print(f"bloodcell report: {exc.reason}", file=sys.stderr)
        return 1
    if args.out and str(args.out) != "-":
        args.out.write_bytes(data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0


EXAMPLES = {
    "serve": "example: bloodcell serve --data-dir /srv/cells --port 9000",
    "classify": "examples:\n  bloodcell classify cell.jpg\n  bloodcell classify slides/ --json > out.jsonl",
    "eventsource": "example: K_SINK=http://preprocess.default.svc bloodcell eventsource",
    "webapp": "example: PORT=8080 BLOODCELL_STORAGE=gcs UPLOAD_BUCKET=my-uploads bloodcell webapp",
    "report": "examples:\n  bloodcell report lame-042 --out lame-042.pdf\n"
    "  bloodcell report lame-042 --format fhir --wbc 6.8 > lame-042.fhir.json",
}


def _command(sub: Any, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=summary,
        description=description,
        epilog=EXAMPLES[name],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bloodcell", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = _command(
        sub,
        "serve",
        "run the whole system locally on folder buckets",
        "Start both functions as real servers, the event source and the web app on folder buckets;\n"
        "drop images into <data-dir>/uploads/ or upload them on the page. Ctrl-C stops it.",
    )
    serve.add_argument(
        "--data-dir",
        type=Path,
        help="folder of the uploads/, tensors/, results/, archive/ buckets "
        "(BLOODCELL_DATA_DIR, default ./bloodcell-data)",
    )
    serve.add_argument("--port", type=int, help="web app port (PORT, default 8080)")
    serve.add_argument("--host", help="web app interface (HOST, default 127.0.0.1 for serve)")
    serve.add_argument("--no-web", action="store_true", help="run the pipeline without the web app")
    serve.set_defaults(func=cmd_serve)
    classify = _command(
        sub,
        "classify",
        "classify image files or folders in-process",
        "Classify files, or every image in folders, through the same code as the functions, without\n"
        "any server. Prints one line per image; --json prints each result document (README schema).",
    )
    classify.add_argument("paths", nargs="+", metavar="PATH", help="image file or folder")
    classify.add_argument("--json", action="store_true", help="one result document per line (JSON Lines)")
    classify.set_defaults(func=cmd_classify)
    source = _command(
        sub,
        "eventsource",
        "run the bucket event source alone (K_SINK / EVENT_SINKS)",
        "Turn new objects into CloudEvents POSTed to K_SINK (Knative) or the EVENT_SINKS routes:\n"
        "watching folder buckets (inotify), or receiving S3-format bucket notifications on PORT.",
    )
    source.add_argument(
        "--mode",
        choices=("watch", "receive"),
        help="watch folder buckets (inotify) or receive bucket notifications on HOST:PORT "
        "(EVENT_SOURCE_MODE; default watch for local storage, receive otherwise)",
    )
    source.set_defaults(func=cmd_eventsource)
    web = _command(
        sub,
        "webapp",
        "run the web app alone, configured from the environment",
        "The NiceGUI web app on HOST:PORT against the buckets the environment names.",
    )
    web.add_argument("--host", help="interface to listen on (HOST, default 0.0.0.0)")
    web.add_argument("--port", type=int, help="port (PORT, default 8080)")
    web.set_defaults(func=cmd_webapp)
    report = _command(
        sub,
        "report",
        "one slide's report: PDF, FHIR R4 bundle, or CSV",
        "Read one slide (a folder of the upload bucket) and its results from the buckets the\n"
        "environment names, and write its report: pdf, fhir (R4 Bundle), csv (one row per cell)\n"
        "or summary (one row per class). See docs/reports.md.",
    )
    report.add_argument("slide", help="the slide: a folder of the upload bucket")
    report.add_argument("--format", choices=tuple(FORMATS), default="pdf")
    report.add_argument("--out", type=Path, help="file to write (default: standard output)")
    report.add_argument(
        "--data-dir",
        type=Path,
        help="local backend's folder buckets (BLOODCELL_DATA_DIR, default ./bloodcell-data)",
    )
    report.add_argument("--wbc", type=float, help="white-cell count from the analyser, x10^9/L")
    report.set_defaults(func=cmd_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigurationError as exc:
        print(f"bloodcell: configuration error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        extra = "web" if exc.name in ("nicegui", "fastapi", "starlette", "uvicorn") else "all"
        extra = "reports" if (exc.name or "").split(".")[0] in ("scipy", "reportlab") else extra
        print(
            f"bloodcell: {args.command} needs {exc.name!r}, which is not installed: "
            f"pip install 'bloodcell[{extra}]'",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
