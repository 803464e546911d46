"""The function servers: functions-framework's own gunicorn application, with limits.

``functions-framework`` runs gunicorn with no request-size limit, no limit on the
request line and no time limit on reading a request: a 200 MB POST is held in
memory and a dozen slow clients hold every thread. ``bloodcell function`` builds
the same functions-framework app and runs it under the same gunicorn application
class, with the limits from settings (the same variables locally, on Knative and
on Cloud Run):

- a request body over ``FUNCTION_MAX_REQUEST_BYTES`` gets 413 before it is read
  (Flask's ``MAX_CONTENT_LENGTH``; chunked bodies are cut at the same size);
- a client must send its whole request within ``FUNCTION_READ_TIMEOUT_SECONDS``
  or its connection is closed, so slow clients cost a thread for seconds, not forever;
- idle keep-alive connections close after ``FUNCTION_IDLE_TIMEOUT_SECONDS``;
- ``FUNCTION_WORKERS`` processes of ``FUNCTION_THREADS`` threads each, and no more.

Faults raised before the function runs (functions-framework parsing the CloudEvent:
JSON nested 50,000 deep, invalid UTF-8, a body the SDK cannot read) are answered by
the same rule as faults inside it (``errors.retryable``): 400 and one log line when
permanent, 507 for a full disk, 500 (retried) otherwise.
"""

from __future__ import annotations

import gc
import io
import json
import logging
import os
import socket
import time
from typing import Any

from gunicorn.http.errors import NoMoreData
from gunicorn.workers.gthread import ThreadWorker

from bloodcell.errors import BloodcellError, MalformedEvent, disk_full, permanent
from bloodcell.names import escape
from bloodcell.settings import Settings, get_settings

log = logging.getLogger("bloodcell.event")

_HEARTBEAT_DIR = "/dev/shm"


class _TooSlow(NoMoreData):  # type: ignore[misc]
    """The request did not arrive in time: closed like a client that went away, quietly."""


class _DeadlineSocket:
    """A client socket whose reads share one deadline: the time allowed for a whole request.

    A per-``recv`` timeout would let a client sending a byte every few seconds hold a
    thread indefinitely; a deadline over the whole request cannot be stretched.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.deadline: float | None = None

    def _arm(self) -> None:
        if self.deadline is not None:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise _TooSlow(b"")
            self._sock.settimeout(remaining)

    def recv(self, size: int, *flags: int) -> bytes:
        self._arm()
        try:
            return self._sock.recv(size, *flags)
        except TimeoutError as exc:
            raise _TooSlow(b"") from exc

    def recv_into(self, buffer: Any, *args: int) -> int:
        self._arm()
        try:
            return self._sock.recv_into(buffer, *args)
        except TimeoutError as exc:
            raise _TooSlow(b"") from exc

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class BoundedThreadWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's threaded worker, with a deadline on reading each request."""

    read_timeout = 10.0  # set from settings before gunicorn forks its workers

    def handle(self, conn: Any) -> Any:
        if not isinstance(conn.sock, _DeadlineSocket):
            conn.sock = _DeadlineSocket(conn.sock)
        conn.sock.deadline = time.monotonic() + self.read_timeout
        try:
            return super().handle(conn)
        finally:
            # responses are written, and keep-alive waits, without the read deadline
            conn.sock.deadline = None


def gunicorn_options(settings: Settings) -> dict[str, Any]:
    """The gunicorn settings every function server runs with (they replace functions-framework's)."""
    return {
        "workers": settings.function_workers,
        "threads": settings.function_threads,
        "worker_class": f"{__name__}.BoundedThreadWorker",
        "keepalive": settings.function_idle_timeout_seconds,
        # a worker whose main loop stops answering the arbiter this long is replaced
        "timeout": 60,
        "graceful_timeout": 10,
        "limit_request_line": 8190,
        "limit_request_fields": 100,
        "limit_request_field_size": 8190,
        "worker_connections": 100,
        "backlog": 64,
        # the worker's heartbeat touches a file at every turn of its loop, once per request
        # or more: on a disk that is a metadata write each time (7 % of a function's CPU per
        # request here), in memory it is not; gunicorn's docs advise /dev/shm for this
        "worker_tmp_dir": _HEARTBEAT_DIR if os.path.isdir(_HEARTBEAT_DIR) else None,
        # a dead worker's metric files stop counting as live (prometheus-client multiprocess mode)
        "child_exit": _child_exit,
    }


def _child_exit(_server: Any, worker: Any) -> None:
    from bloodcell.metrics import worker_exited

    worker_exited(worker.pid)


def add_metrics_route(app: Any) -> None:
    """``GET /metrics`` beside the function (whose routes take POST only): Prometheus' scrape."""
    import flask

    from bloodcell.metrics import exposition

    def metrics() -> Any:
        body, content_type = exposition()
        return flask.Response(body, content_type=content_type)

    app.add_url_rule("/metrics", "bloodcell_metrics", metrics, methods=["GET"])


def limit_body(app: Any, limit: int) -> None:
    """413 for any body over ``limit``, announced or chunked, before the function sees it.

    Flask's ``MAX_CONTENT_LENGTH`` answers 413 to a Content-Length over the limit, but
    silently truncates a chunked body; that would reach the function as a
    malformed event instead of an answer saying why.
    """
    import flask

    app.config["MAX_CONTENT_LENGTH"] = limit

    def chunked_body() -> None:
        environ = flask.request.environ
        if flask.request.content_length is not None or "chunked" not in environ.get(
            "HTTP_TRANSFER_ENCODING", ""
        ):
            return
        body = environ["wsgi.input"].read(limit + 1)
        if len(body) > limit:
            flask.abort(413)
        environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))

    app.before_request(chunked_body)


def answer_faults(app: Any, stage: str) -> None:
    """Every exception the function's view lets out is answered by ``errors``' one rule.

    Without this, Flask answers 500 to anything functions-framework or the CloudEvents SDK
    raise while parsing, and the sender retries a body that can never parse.
    """
    from cloudevents.exceptions import GenericException
    from werkzeug.exceptions import HTTPException

    if app.extensions.get("bloodcell.answer_faults"):
        return  # main.py installed it already (plain functions-framework runs main.py alone)
    app.extensions["bloodcell.answer_faults"] = stage

    def answer(exc: Exception) -> Any:
        if isinstance(exc, HTTPException):
            return exc  # 413, 400 and 507 chosen on purpose elsewhere
        if disk_full(exc):
            log.warning("stage=%s outcome=retry reason=%s", stage, escape(f"disk full: {exc}"[:300]))
            return "the disk is full: retry once space is freed\n", 507
        if permanent(exc) or isinstance(exc, GenericException):
            reason = escape(f"{type(exc).__name__}: {exc}"[:300])
            log.error("stage=%s event=- outcome=malformed reason=%s", stage, reason)
            return "malformed event: not retried\n", 400
        if not isinstance(exc, BloodcellError):  # ours were logged, one line each, where raised
            log.error("stage=%s outcome=retry", stage, exc_info=exc)
        return "transient error: retry\n", 500

    def structured_body_parses() -> Any:
        # The SDK parses a structured-mode body with a bare json.loads before the function
        # runs; what it raises for 5,000 digits is a plain ValueError, told apart here.
        import flask

        request = flask.request
        if not request.mimetype.startswith("application/cloudevents"):
            return None
        try:
            json.loads(request.get_data())
        except (ValueError, RecursionError) as exc:
            return answer(MalformedEvent(f"CloudEvent body is not JSON ({type(exc).__name__}: {exc})"))
        return None

    app.register_error_handler(Exception, answer)
    app.before_request(structured_body_parses)


def make_app(target: str, source: str, settings: Settings) -> Any:
    """The functions-framework app of one function, with our limits and fault answers."""
    import functions_framework

    app = functions_framework.create_app(target, source, "cloudevent")
    limit_body(app, settings.function_max_request_bytes)
    answer_faults(app, target)
    add_metrics_route(app)
    return app


def run(target: str, source: str, host: str, port: int, settings: Settings | None = None) -> None:
    """Serve one CloudEvent function until SIGTERM, under the configured limits."""
    from functions_framework._http.gunicorn import GunicornApplication

    from bloodcell.metrics import prepare_multiprocess

    settings = settings or get_settings()
    prepare_multiprocess()  # before the function's module imports prometheus_client
    app = make_app(target, source, settings)
    BoundedThreadWorker.read_timeout = float(settings.function_read_timeout_seconds)
    server = GunicornApplication(app, host, port, False, **gunicorn_options(settings))
    # Everything loaded so far (the model, the libraries) lives as long as the process:
    # out of the collector's sight, every collection in a worker stops re-walking it, and
    # the forked workers stop touching (copying) those pages (Python's gc docs advise
    # freeze() before fork).
    gc.freeze()
    server.run()
