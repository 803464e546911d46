"""The receive-mode webhook under hostile HTTP: every limit holds and is answered in words.

The real server (uvicorn, ``bloodcell.receiver``) on a free port, fed raw bytes over
sockets, since a well-behaved client library cannot send ``Content-Length: -1``. Its
sink is a small recording server. Waits are for the server's own answer or close, never
sleeps: a test that waits for a timeout reads until the server closes the socket.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import pytest

from bloodcell.eventsource import EventSource
from bloodcell.receiver import WebhookLimits, WebhookServer, make_server
from bloodcell.storage import LocalStorage

TOKEN = "s3cret"
AUTH = f"Authorization: Bearer {TOKEN}\r\n".encode()


class _Sink(BaseHTTPRequestHandler):
    received: list[bytes] = []  # noqa: RUF012 - one list per test, set by the fixture

    def do_POST(self) -> None:
        self.received.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def webhook(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[WebhookServer, list[bytes]]]:
    limits = getattr(request, "param", WebhookLimits(header_timeout=0.5, body_timeout=0.5, max_connections=8))
    sink = ThreadingHTTPServer(("127.0.0.1", 0), type("Sink", (_Sink,), {"received": []}))
    Thread(target=sink.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{sink.server_port}/"
    source = EventSource(LocalStorage(tmp_path / "data"), {"uploads": url}, timeout=10)
    server = make_server(source, "127.0.0.1", 0, TOKEN, limits).start()
    try:
        yield server, sink.RequestHandlerClass.received  # type: ignore[attr-defined]
    finally:
        server.close()
        sink.shutdown()
        sink.server_close()


def _exchange(port: int, data: bytes, sock: socket.socket | None = None) -> tuple[int, bytes]:
    """Send raw bytes; read until the server closes; the status code (0: closed unanswered) and body."""
    sock = sock or socket.create_connection(("127.0.0.1", port), timeout=30)
    with sock:
        # it may answer (and close) before all of an oversized request was sent
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        reply = b""
        try:
            while chunk := sock.recv(65536):
                reply += chunk
        except ConnectionResetError:  # closed with our unread bytes pending: answer read first
            pass
    if not reply:
        return 0, b""
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def _post(headers: bytes, body: bytes = b"") -> bytes:
    return b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + AUTH + headers + b"\r\n" + body


def _notification(key: str = "a.jpg") -> bytes:
    record = {
        "eventName": "s3:ObjectCreated:Put",
        "s3": {"bucket": {"name": "uploads"}, "object": {"key": key}},
    }
    return json.dumps({"Records": [record]}).encode()


def bad_notifications() -> dict[str, bytes]:
    """S3 notification bodies that can never be forwarded: the webhook's share of the family."""

    def with_object(**fields: Any) -> str:
        record = {"eventName": "s3:ObjectCreated:Put", "s3": {"bucket": {"name": "uploads"}, "object": {}}}
        record["s3"]["object"] = {"key": "a.jpg", **fields}  # type: ignore[index]
        return json.dumps({"Records": [record]})

    deep = "[" * 50_000 + "]" * 50_000
    return {
        "size 1e400": with_object(size="@").replace('"@"', "1e400").encode(),
        "size NaN": with_object(size="@").replace('"@"', "NaN").encode(),
        "size 5000 digits": with_object(size="@").replace('"@"', "9" * 5000).encode(),
        "size -1": with_object(size=-1).encode(),
        "size list": with_object(size=[1]).encode(),
        "eTag object": with_object(eTag={"a": 1}).encode(),
        "eTag 1 MB": with_object(eTag="e" * 1_000_000).encode(),
        "key number": with_object(key=7).encode(),
        "nested 50,000 deep": deep.encode(),
        "records nested 50,000 deep": b'{"Records": ' + deep.encode() + b"}",
        "invalid UTF-8": b'{"Records": [{"s3": {"bucket": {"name": "\xff"}}}]}',
        "records of numbers": b'{"Records": [1]}',
        "not JSON": b"{not json",
    }


def test_a_good_notification_is_forwarded_once(webhook: tuple[WebhookServer, list[bytes]]) -> None:
    server, received = webhook
    body = _notification("my cell.jpg")

    status, _ = _exchange(server.port, _post(b"Content-Length: %d\r\n" % len(body), body))

    assert status == 200
    assert [json.loads(event)["data"]["name"] for event in received] == ["my cell.jpg"]


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        (b"Content-Length: -1\r\n", b"x" * 1_000_000, 400),  # was read to the end, past the cap
        (b"Content-Length: abc\r\n", b"{}", 400),  # was a dropped connection
        (b"Content-Length: 1e3\r\n", b"{}", 400),
        (b"Content-Length: 12, 13\r\n", b"{}", 400),
        (b"Content-Length: 4194305\r\n", b"", 413),  # refused before a byte of it is read
        (b"Content-Length: 99999999999999999999999\r\n", b"", 400),  # h11 refuses absurd lengths
        (b"Transfer-Encoding: chunked\r\n", (b"100000\r\n" + b"a" * 0x100000 + b"\r\n") * 5, 413),
        (b"Transfer-Encoding: chunked\r\n", b"zz\r\nab\r\n0\r\n\r\n", 400),
        (b"X-Big: " + b"a" * 20_000 + b"\r\n", b"", 431),
    ],
    ids=["length -1", "length abc", "length 1e3", "two lengths", "over 4 MiB", "huge length", "chunked 5 MiB",
         "bad chunk", "huge header"],
)  # fmt: skip
def test_malformed_or_oversized_requests_get_a_clear_4xx(
    webhook: tuple[WebhookServer, list[bytes]], headers: bytes, body: bytes, expected: int
) -> None:
    server, received = webhook

    status, _ = _exchange(server.port, _post(headers, body))

    assert status == expected
    assert received == []


def test_a_client_that_never_finishes_its_headers_is_closed(
    webhook: tuple[WebhookServer, list[bytes]],
) -> None:
    """300 such connections used to hold 300 threads for ever; now each is closed at its deadline."""
    server, _ = webhook
    silent = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(3)]
    slow = socket.create_connection(("127.0.0.1", server.port), timeout=30)

    answers = [_exchange(server.port, b"", sock) for sock in silent]
    slow_answer = _exchange(server.port, b"POST / HTTP/1.1\r\nHost: x\r\n", slow)

    assert answers == [(0, b"")] * 3 and slow_answer == (0, b"")  # closed, nothing to say
    assert _exchange(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[0] == 200


def test_a_body_that_does_not_arrive_gets_408(webhook: tuple[WebhookServer, list[bytes]]) -> None:
    server, received = webhook

    status, body = _exchange(server.port, _post(b"Content-Length: 100\r\n", b'{"Records": '))

    assert status == 408 and b"not received" in body
    assert received == []


@pytest.mark.parametrize(
    "webhook", [WebhookLimits(header_timeout=60, body_timeout=60, max_connections=4)], indirect=True
)
def test_connections_beyond_the_bound_get_503(webhook: tuple[WebhookServer, list[bytes]]) -> None:
    server, _ = webhook
    held = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(4)]
    # the server has taken all four once one of them is answered (accept order is connect order)
    ping = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    held[-1].sendall(ping)
    assert held[-1].recv(65536).startswith(b"HTTP/1.1 200")

    status, body = _exchange(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")

    assert status == 503 and b"too many connections" in body
    for sock in held:
        sock.close()


@pytest.mark.parametrize("case", list(bad_notifications()))
def test_bodies_no_retry_can_fix_are_answered_400_once_with_one_log_line(
    webhook: tuple[WebhookServer, list[bytes]], case: str, caplog: pytest.LogCaptureFixture
) -> None:
    server, received = webhook
    body = bad_notifications()[case]

    with caplog.at_level(logging.INFO, logger="bloodcell.receiver"):
        status, _ = _exchange(server.port, _post(b"Content-Length: %d\r\n" % len(body), body))

    lines = [r.getMessage()[:200] for r in caplog.records if r.name == "bloodcell.receiver"]
    assert status == 400, (case, lines)
    assert len([line for line in lines if "malformed" in line]) == 1, lines
    assert received == []


def test_a_forged_300_byte_name_is_forwarded_for_the_function_to_answer(
    webhook: tuple[WebhookServer, list[bytes]],
) -> None:
    server, received = webhook
    body = _notification("n" * 296 + ".jpg")

    status, _ = _exchange(server.port, _post(b"Content-Length: %d\r\n" % len(body), body))

    assert status == 200 and len(received) == 1


def test_health_needs_no_token_and_posts_do(webhook: tuple[WebhookServer, list[bytes]]) -> None:
    server, received = webhook
    body = _notification()
    no_token = (
        b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )

    assert _exchange(server.port, no_token)[0] == 401
    assert _exchange(server.port, b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") == (200, b"")
    assert _exchange(server.port, b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")[0] == 405
    assert received == []
