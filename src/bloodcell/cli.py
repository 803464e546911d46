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
import os
import signal
import stat
import sys
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bloodcell.errors import ConfigurationError
from bloodcell.formats import KINDS, format_size, is_image_name
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
    from bloodcell.serve import LocalStack, StackError

    settings = _settings(args, host="127.0.0.1")
    if not args.no_web:  # a web app that could never let anyone in: say why before starting anything
        from bloodcell.web.auth import check_config

        check_config(settings)
    stack = LocalStack(settings.data_dir, port=settings.port, web=not args.no_web, host=settings.host)
    try:
        stack.start()
    except StackError as exc:
        stack.stop()
        print(f"bloodcell serve: {exc}", file=sys.stderr, flush=True)
        return 1
    except BaseException:
        stack.stop()
        raise
    try:
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
    if settings.metrics_port:
        from bloodcell.metrics import serve_metrics

        serve_metrics(settings.metrics_port, backlog=source.backlog)
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


def _child_of(args: argparse.Namespace) -> None:
    """Started by ``serve`` (``--parent-pid``): end with it, even when it is SIGKILLed."""
    if args.parent_pid:
        from bloodcell.lifecycle import die_with_parent

        die_with_parent(args.parent_pid)


def cmd_function(args: argparse.Namespace) -> int:
    """One CloudEvent function under functions-framework's gunicorn, with the FUNCTION_* limits."""
    from bloodcell.funcserver import run

    _child_of(args)
    settings = _settings(args, host="0.0.0.0")
    run(args.target, args.source, settings.host, settings.port, settings)
    return 0


def _accounts_file(args: argparse.Namespace) -> Path | None:
    """--file, else WEB_ACCOUNTS_FILE: the file the running web app re-reads when it changes."""
    if args.file is not None:
        return Path(args.file)
    return _settings(args).web_accounts_file


def cmd_user_add(args: argparse.Namespace) -> int:
    """Add (or re-password) an account: into the accounts file, or printed as a line for WEB_ACCOUNTS."""
    import getpass

    from bloodcell.web.accounts import hash_line, put_account

    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            print("bloodcell user add: the passwords differ", file=sys.stderr)
            return 1
    else:  # scripted: the first line of standard input
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 8:
        print("bloodcell user add: use a password of at least 8 characters", file=sys.stderr)
        return 1
    try:
        line = hash_line(args.name, password, tuple(args.role))
        if args.file is None:
            print(line, flush=True)
        else:  # replaces an existing line: the account's sessions end (new password)
            put_account(Path(args.file), line)
    except (ValueError, ConfigurationError, OSError) as exc:
        print(f"bloodcell user add: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_user_edit(args: argparse.Namespace) -> int:
    """remove / set-role: rewrite the accounts file; the web app ends that account's sessions at once."""
    from bloodcell.web.accounts import remove_account, set_roles

    verb = args.user_command
    file = _accounts_file(args)
    if file is None:
        print(f"bloodcell user {verb}: give --file or set WEB_ACCOUNTS_FILE", file=sys.stderr)
        return 1
    try:
        if verb == "remove":
            remove_account(file, args.name)
        else:
            set_roles(file, args.name, tuple(args.role))
    except KeyError:
        print(f"bloodcell user {verb}: no account {args.name!r} in {file}", file=sys.stderr)
        return 1
    except (ValueError, ConfigurationError, OSError) as exc:
        print(f"bloodcell user {verb}: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_webapp(args: argparse.Namespace) -> int:
    from bloodcell.web.app import main as web_main

    _child_of(args)
    web_main(_settings(args), health_token=args.health_token)
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


def _classify_one(path: Path, settings: Settings, pipeline: Any = None) -> Result:
    from bloodcell.imaging import ImageLimits
    from bloodcell.model import default_model_dir, load_classifier
    from bloodcell.pipeline import classify_bytes

    # with --data-dir, the data folder's active calibration, read as the predict function reads it
    if pipeline is not None:
        classifier = pipeline.classifier
    else:
        classifier = load_classifier(settings.model_dir or default_model_dir(), settings.model_threads)
    limits = ImageLimits(max_bytes=settings.max_upload_bytes, max_pixels=settings.max_image_pixels)
    try:
        # the size is checked before the bytes are held, and at most max_bytes + 1 are read
        with path.open("rb") as handle:
            st = os.fstat(handle.fileno())
            uploaded = datetime.fromtimestamp(st.st_mtime, UTC)
            too_big = stat.S_ISREG(st.st_mode) and st.st_size > limits.max_bytes
            data = b"" if too_big else handle.read(limits.max_bytes + 1)
    except OSError as exc:
        source = Source(bucket="file", name=str(path), generation="")
        return Result.rejected(source, f"cannot read file: {exc.strerror or exc}", "preprocess", {}, {})
    if too_big:
        source = Source("file", str(path), f"mtime-{st.st_mtime_ns}", None, st.st_size, iso(uploaded))
        reason = f"the file is {format_size(st.st_size)}, over the limit of {format_size(limits.max_bytes)}"
        return Result.rejected(source, reason, "preprocess", {}, {"uploaded": source.uploaded or ""})
    digest = hashlib.sha256(data).hexdigest()
    # a local file's generation is its content: the same bytes are the same version
    source = Source("file", str(path), digest[:16], digest, len(data), iso(uploaded))
    return classify_bytes(data, source, classifier, limits)


def cmd_classify(args: argparse.Namespace) -> int:
    from bloodcell.pipeline import Pipeline

    settings = _settings(args)
    pipeline = Pipeline(settings) if args.data_dir is not None else None
    failures = classified = 0
    for path in _images(args.paths):
        result = _classify_one(path, settings, pipeline)
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
    "function": "example: bloodcell function --target=preprocess --source=functions/preprocess/main.py",
    "user": "examples:\n  bloodcell user add alice --role reviewer --file accounts.txt\n"
    "  bloodcell user set-role alice --file accounts.txt   (no extra role: reviewer taken away)\n"
    "  bloodcell user remove alice --file accounts.txt\n"
    "The running web app re-reads the file and ends the account's sessions at once.",
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
    classify.add_argument(
        "--data-dir", type=Path, help="classify with this data folder's active calibration (MODEL_BUCKET)"
    )
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
    function = _command(
        sub,
        "function",
        "serve one function (preprocess or predict) under the FUNCTION_* limits",
        "functions-framework's gunicorn server for one CloudEvent function, with a request body limit,\n"
        "a read deadline, an idle timeout and bounded workers/threads (the images run this command).",
    )
    function.add_argument("--target", required=True, help="function name in the source file")
    function.add_argument("--source", required=True, help="the function's main.py")
    function.add_argument("--host", help="interface to listen on (HOST, default 0.0.0.0)")
    function.add_argument("--port", type=int, help="port (PORT, default 8080)")
    function.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    function.set_defaults(func=cmd_function)
    user = _command(
        sub,
        "user",
        "make web app accounts (hash lines for WEB_ACCOUNTS / WEB_ACCOUNTS_FILE)",
        "Account lines for the web app's built-in sign-in. The password is asked for (or read from\n"
        "standard input's first line) and only its argon2id hash is printed; nothing is stored.",
    )
    user_sub = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    add = user_sub.add_parser(
        "add", help="add an account to --file (a new password if it exists), or print its line"
    )
    add.add_argument("name", help="the name people sign in with")
    add.add_argument("--role", action="append", default=[], choices=["reviewer"], help="extra role")
    add.add_argument("--file", type=Path, help="accounts file to write (else the line is printed)")
    add.set_defaults(func=cmd_user_add)
    remove = user_sub.add_parser("remove", help="remove an account from the accounts file")
    remove.add_argument("name")
    remove.set_defaults(func=cmd_user_edit)
    set_role = user_sub.add_parser("set-role", help="give an account exactly these extra roles")
    set_role.add_argument("name")
    set_role.add_argument("--role", action="append", default=[], choices=["reviewer"], help="extra role")
    for sub_parser in (remove, set_role):
        sub_parser.add_argument("--file", type=Path, help="accounts file (default WEB_ACCOUNTS_FILE)")
    set_role.set_defaults(func=cmd_user_edit)
    web = _command(
        sub,
        "webapp",
        "run the web app alone, configured from the environment",
        "The NiceGUI web app on HOST:PORT against the buckets the environment names.",
    )
    web.add_argument("--host", help="interface to listen on (HOST, default 0.0.0.0)")
    web.add_argument("--port", type=int, help="port (PORT, default 8080)")
    web.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    # answered on /healthz, so `serve` knows the app on its port is the one it started
    web.add_argument("--health-token", default="", help=argparse.SUPPRESS)
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
    from bloodcell.calibration.commands import add_commands as add_calibration
    from bloodcell.calibration.qccommands import add_commands as add_qc
    from bloodcell.opscli import add_commands as add_ops

    add_calibration(sub)
    add_qc(sub)  # the QC panel and drift alarm
    add_ops(sub)  # erase, retention sweep
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
