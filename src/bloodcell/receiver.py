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

It is a small ASGI app under uvicorn (h11), not a hand-written server, with HTTP limits
(``WebhookLimits``), each answered in words and logged in one line:

- a body over 4 MiB gets 413 before it is held, announced or chunked; a malformed
  ``Content-Length`` (``-1``, ``abc``) or request line gets 400 from the HTTP parser;
- headers over 16 KiB get 431 (400 when they arrive in pieces); headers not complete
  within ``header_timeout`` (10 s) of connecting, or of the previous answer, close the
  connection; a body not received within
  ``body_timeout`` (30 s) gets 408; idle keep-alive connections close after 5 s;
- at most ``max_connections`` (100) connections at once: the next gets 503 and is closed.
  Idle connections cost a socket, never a thread; deliveries run on the source's
  ``concurrency`` threads;
- a body that cannot be a notification (not JSON, nested 50,000 deep, ``"size": 1e400``,
  invalid UTF-8, wrong types) gets 400 exactly once: ``errors.retryable`` decides.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import socket
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bloodcell.errors import MalformedEvent, retryable
from bloodcell.events import object_refs
from bloodcell.eventsource import EventSource
from bloodcell.names import escape
from bloodcell.storage import ObjectInfo

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 4 * 1024 * 1024  # a notification batch is kilobytes; refuse anything huge

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True)
class WebhookLimits:
    """What one client may cost the webhook; tests shorten the times."""

    max_body_bytes: int = MAX_BODY_BYTES
    max_header_bytes: int = 16 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    idle_timeout: int = 5
    max_connections: int = 100


def _event_time(record: Any) -> datetime:
    try:
        return datetime.fromisoformat(str(record["eventTime"]).replace("Z", "+00:00"))
    except (KeyError, TypeError, ValueError):
        return datetime.now(UTC)


def notification_objects(body: bytes) -> list[ObjectInfo]:
    """The created objects an S3 notification body names (none for a test event)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # invalid UTF-8 is a ValueError too
        raise MalformedEvent(f"notification body is not JSON ({type(exc).__name__})") from exc
    if isinstance(data, dict) and "Records" not in data and data.get("Event") == "s3:TestEvent":
        return []
    if not isinstance(data, dict) or not isinstance(data.get("Records"), list):
        raise MalformedEvent("notification body has no Records list")
    refs = object_refs(data)  # checks every record's shape, names, sizes and ETags
    created = [
        r
        for r in data["Records"]
        if str(r.get("eventName", "s3:ObjectCreated:")).startswith(("s3:ObjectCreated:", "ObjectCreated:"))
    ]
    objects = []
    for ref, record in zip(refs, created, strict=True):
        obj = record["s3"]["object"]
        content_type = obj.get("contentType")
        sequencer = obj.get("sequencer")
        objects.append(
            ObjectInfo(
                bucket=ref.bucket,
                name=ref.name,
                generation=ref.generation or (sequencer if isinstance(sequencer, str) else ""),
                size=ref.size or 0,
                updated=_event_time(record),
                content_type=content_type if isinstance(content_type, str) and content_type else None,
            )
        )
    return objects


HEALTH_PATHS = ("/healthz", "/")


class _Refused(Exception):
    """An answer given before the body was read whole: the connection closes after it."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


class _Gone(Exception):
    """The client went away mid-request: nobody to answer."""


class WebhookApp:
    """The webhook as an ASGI application (HTTP only; uvicorn runs it)."""

    def __init__(
        self, source: EventSource, token: str, limits: WebhookLimits, pool: ThreadPoolExecutor
    ) -> None:
        self.source = source
        self.token = token
        self.limits = limits
        self.pool = pool

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        close = False
        try:
            code, text = await self._respond(scope, receive)
        except _Refused as refused:
            code, text, close = refused.code, refused.text, True
            log.warning("receive: %d %s", code, text)
        except _Gone:
            return
        except Exception as exc:  # a bug: answered, logged once, retried by the store
            log.error("receive: unexpected error", exc_info=exc)
            code, text = 500, "internal error"
        body = (text + "\n").encode("utf-8")
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
        ]
        if close:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": code, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _respond(self, scope: MutableMapping[str, Any], receive: Receive) -> tuple[int, str]:
        method, path = scope["method"], scope["path"]
        # h11 bounds headers that arrive in pieces; these arrived whole, in one read
        if sum(len(k) + len(v) + 4 for k, v in scope["headers"]) > self.limits.max_header_bytes:
            raise _Refused(431, f"request headers over {self.limits.max_header_bytes} bytes")
        if method in ("GET", "HEAD"):
            return (200, "ok") if path in HEALTH_PATHS else (404, "not found")
        if method != "POST":
            raise _Refused(405, "only POST, GET and HEAD are answered")
        headers = dict(scope["headers"])
        expected = f"Bearer {self.token}".encode()
        if self.token and not hmac.compare_digest(headers.get(b"authorization", b""), expected):
            raise _Refused(401, "missing or wrong bearer token")
        body = await self._body(headers.get(b"content-length"), receive)
        try:
            objects = notification_objects(body)
        except Exception as exc:
            if retryable(exc):
                raise
            log.error("receive: malformed notification: %s", escape(f"{type(exc).__name__}: {exc}"[:300]))
            return 400, f"not a bucket notification: {type(exc).__name__}"
        loop = asyncio.get_running_loop()
        failed = await loop.run_in_executor(self.pool, self._forward, objects)
        return (502 if failed else 200), f"{failed} of {len(objects)} not delivered"

    async def _body(self, declared: bytes | None, receive: Receive) -> bytes:
        """The whole body within the time and size limits (h11 has checked Content-Length's form)."""
        cap = self.limits.max_body_bytes
        if declared is not None and (len(declared) > 12 or int(declared) > cap):
            raise _Refused(413, f"notification body over {cap} bytes")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.body_timeout
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise _Refused(408, f"body not received within {self.limits.body_timeout:g}s") from None
            if message["type"] == "http.disconnect":
                raise _Gone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > cap:
                raise _Refused(413, f"notification body over {cap} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _forward(self, objects: list[ObjectInfo]) -> int:
        """Deliver each object to its sink, on one of the source's threads; how many failed."""
        failed = 0
        for info in objects:
            url = self.source.routes.get(info.bucket)
            if url is None:
                log.info("receive: %s is not a watched bucket", escape(info.bucket))
                continue
            error = self.source.deliver(info, url)
            if error is not None:
                failed += 1
                log.warning(
                    "receive: forwarding %s failed (%s)", escape(f"{info.bucket}/{info.name}"), escape(error)
                )
        return failed


def _protocol(limits: WebhookLimits) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol with what it lacks: a deadline on headers and a hard connection cap.

    uvicorn closes a keep-alive connection idle after an answer, but waits forever for the
    first request's headers (or a later one's, once a byte of it came): 300 silent
    connections would stay open. Here each request's headers must be complete within
    ``header_timeout`` of the connection or of the previous answer.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    text = b"too many connections; retry shortly\n"
    busy = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    busy += b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(text), text)

    class DeadlinedH11(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections:
                log.warning("receive: 503 more than %d connections", limits.max_connections)
                self.transport.write(busy)
                self.transport.close()
                return
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def _arm(self) -> None:
            self.loop.call_later(limits.header_timeout, self._expire, self.cycle)

        def _expire(self, cycle: Any) -> None:
            waiting = cycle is None or cycle.response_complete  # no request under way since
            if self.cycle is cycle and waiting and not self.transport.is_closing():
                log.info("receive: closed a connection with no request within %gs", limits.header_timeout)
                self.transport.close()

    return DeadlinedH11


class WebhookServer:
    """uvicorn in a thread of its own, on a socket bound before it starts (port 0 allowed)."""

    def __init__(self, source: EventSource, host: str, port: int, token: str, limits: WebhookLimits) -> None:
        import uvicorn

        self.pool = ThreadPoolExecutor(max(1, source.concurrency), thread_name_prefix="receive")
        app = WebhookApp(source, token, limits, self.pool)
        config = uvicorn.Config(
            app,
            http=_protocol(limits),
            loop="asyncio",
            ws="none",
            lifespan="off",
            interface="asgi3",
            # uvicorn's own bound answers 503 at a request once it is *reached*; ours (in
            # the protocol) once it is passed: every allowed connection is served
            limit_concurrency=limits.max_connections + 1,
            timeout_keep_alive=limits.idle_timeout,
            h11_max_incomplete_event_size=limits.max_header_bytes,
            access_log=False,
            log_config=None,
            server_header=False,
            timeout_graceful_shutdown=5,
        )
        self.server = uvicorn.Server(config)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((host, port))
        self.socket.listen(128)  # connections wait in the backlog until uvicorn's loop runs
        self.port: int = self.socket.getsockname()[1]
        self.thread = threading.Thread(target=self._run, name="receive", daemon=True)

    def _run(self) -> None:
        self.server.run(sockets=[self.socket])

    def start(self) -> WebhookServer:
        self.thread.start()
        return self

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.socket.close()


def make_server(
    source: EventSource, host: str, port: int, token: str = "", limits: WebhookLimits | None = None
) -> WebhookServer:
    """The webhook server (not started); deliveries share the source's bounded concurrency."""
    return WebhookServer(source, host, port, token, limits or WebhookLimits())


def webhook_receiver(
    host: str, port: int, token: str = "", limits: WebhookLimits | None = None
) -> Callable[[EventSource, threading.Event], Callable[[], None]]:
    """An announcer for ``EventSource.run``: the webhook server in a thread of its own."""

    def start(source: EventSource, _stop: threading.Event) -> Callable[[], None]:
        server = make_server(source, host, port, token, limits).start()
        log.info("receive: listening on %s:%d", host, server.port)
        return server.close

    return start
