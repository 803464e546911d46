"""Receive mode: an object store's own bucket notifications in, GCS-style CloudEvents out.

S3-compatible stores (RustFS, Garage, SeaweedFS, MinIO, Ceph RGW) POST S3-format
notification bodies (``{"Records": [...]}``, keys URL-encoded) to a webhook and keep
their own persistent queue until it answers 2xx. This server is that webhook:

- ``POST /``: each ``ObjectCreated`` record is forwarded, synchronously, as the same
  CloudEvent the watch mode sends, to ``K_SINK`` with ``K_CE_OVERRIDES`` applied (TLS
  verified against ``K_CA_CERTS`` when set). 200 once every record is delivered; 502
  when the sink failed, so the store retries from its queue; 400 for a body that is not
  a notification (a retry would not help); 401 without the bearer token
  ``EVENT_WEBHOOK_TOKEN`` when one is set. A test event (empty ``Records``, or
  ``"Event": "s3:TestEvent"``) is answered 200.
- ``GET`` or ``HEAD`` on ``/healthz`` or ``/``: 200 while the server runs, for the
  probes and for the store itself: MinIO-family stores send ``HEAD`` to the webhook URL
  to check the target is up (RustFS only opens a TCP connection). Health answers need no
  token; they say nothing but "up".
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bloodcell.errors import MalformedEvent
from bloodcell.events import object_refs
from bloodcell.eventsource import EventSource
from bloodcell.names import escape
from bloodcell.storage import ObjectInfo

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 4 * 1024 * 1024  # a notification batch is kilobytes; refuse anything huge


def _event_time(record: Any) -> datetime:
    try:
        return datetime.fromisoformat(str(record["eventTime"]).replace("Z", "+00:00"))
    except (KeyError, TypeError, ValueError):
        return datetime.now(UTC)


def notification_objects(body: bytes) -> list[ObjectInfo]:
    """The created objects an S3 notification body names (none for a test event)."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise MalformedEvent("notification body is not JSON") from exc
    if isinstance(data, dict) and "Records" not in data and data.get("Event") == "s3:TestEvent":
        return []
    if not isinstance(data, dict) or not isinstance(data.get("Records"), list):
        raise MalformedEvent("notification body has no Records list")
    refs = object_refs(data)
    created = [
        r
        for r in data["Records"]
        if str(r.get("eventName", "s3:ObjectCreated:")).startswith(("s3:ObjectCreated:", "ObjectCreated:"))
    ]
    objects = []
    for ref, record in zip(refs, created, strict=True):
        content_type = (record.get("s3") or {}).get("object", {}).get("contentType")
        objects.append(
            ObjectInfo(
                bucket=ref.bucket,
                name=ref.name,
                generation=ref.generation or str(record.get("s3", {}).get("object", {}).get("sequencer", "")),
                size=ref.size or 0,
                updated=_event_time(record),
                content_type=str(content_type) if content_type else None,
            )
        )
    return objects


HEALTH_PATHS = ("/healthz", "/")


def make_server(source: EventSource, host: str, port: int, token: str = "") -> ThreadingHTTPServer:
    """The webhook server; deliveries share the source's bounded concurrency."""
    slots = threading.BoundedSemaphore(source.concurrency)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            log.debug("receive: " + format, *args)

        def _answer(self, code: int, text: str) -> None:
            body = (text + "\n").encode("utf-8")
            self.send_response(code)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer(200, "ok") if self.path in HEALTH_PATHS else self._answer(404, "not found")

        def do_HEAD(self) -> None:
            # MinIO-family stores probe a webhook target with HEAD on its URL before sending
            # to it (any answer means "up"); headers only, as HEAD requires
            code = 200 if self.path in HEALTH_PATHS else 404
            self.send_response(code)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", "3" if code == 200 else "10")
            self.end_headers()

        def do_POST(self) -> None:
            if token and not hmac.compare_digest(
                self.headers.get("Authorization", "").encode(), f"Bearer {token}".encode()
            ):
                self._answer(401, "missing or wrong bearer token")
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._answer(413, "notification body too large")
                return
            try:
                objects = notification_objects(self.rfile.read(length))
            except MalformedEvent as exc:
                log.error("receive: malformed notification: %s", escape(str(exc)))
                self._answer(400, str(exc))
                return
            failed = []
            for info in objects:
                url = source.routes.get(info.bucket)
                if url is None:
                    log.info("receive: %s is not a watched bucket", escape(info.bucket))
                    continue
                with slots:
                    error = source.deliver(info, url)
                if error is not None:
                    failed.append(info)
                    log.warning(
                        "receive: forwarding %s failed (%s)",
                        escape(f"{info.bucket}/{info.name}"),
                        escape(error),
                    )
            self._answer(502 if failed else 200, f"{len(failed)} of {len(objects)} not delivered")

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def webhook_receiver(
    host: str, port: int, token: str = ""
) -> Callable[[EventSource, threading.Event], Callable[[], None]]:
    """An announcer for ``EventSource.run``: the webhook server in a thread of its own."""

    def start(source: EventSource, _stop: threading.Event) -> Callable[[], None]:
        server = make_server(source, host, port, token)
        threading.Thread(target=server.serve_forever, name="receive", daemon=True).start()
        log.info("receive: listening on %s:%d", host, server.server_address[1])

        def close() -> None:
            server.shutdown()
            server.server_close()

        return close

    return start
