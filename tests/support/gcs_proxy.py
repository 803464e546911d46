"""A recording HTTP proxy in front of gcp-storage-emulator, answering 412 where GCS would.

gcp-storage-emulator (2026.7.19, the newest release) ignores every precondition: an
upload with ``ifGenerationMatch=0`` overwrites an existing object there. Real GCS
answers such an upload with ``412 Precondition Failed``. This proxy forwards every
request to the emulator over real HTTP and records what the client sent (method,
path, query), so a test can show the upload carries ``ifGenerationMatch=0``.

The 412 itself is a MOCK of what the emulator cannot do: for an upload asking
``ifGenerationMatch=0`` whose object already exists (asked of the emulator), the
proxy answers GCS's 412 error document instead of forwarding. It models only that
one precondition; everything else is the emulator's own answer.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import requests

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "content-encoding"}


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]


@dataclass
class PreconditionProxy:
    """``url`` goes into STORAGE_EMULATOR_HOST; ``seen`` lists every request, in order."""

    upstream: str
    seen: list[Seen] = field(default_factory=list)
    refused: int = 0  # uploads answered 412 by the mock

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> PreconditionProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def uploads(self) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.method == "POST" and s.path.startswith("/upload/")]

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)

    def exists(self, bucket: str, name: str) -> bool:
        url = f"{self.upstream}/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}"
        return requests.get(url, timeout=10).status_code == 200


def _upload_target(path: str, query: dict[str, list[str]], headers: Any, body: bytes) -> tuple[str, str]:
    """The bucket and object name of an upload: in the query, or in a multipart body's JSON part."""
    bucket = unquote(path.split("/b/", 1)[1].split("/", 1)[0])
    if "name" in query:
        return bucket, query["name"][0]
    content_type = headers.get("Content-Type", "")
    message = BytesParser().parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    parts = message.get_payload()
    first = parts[0] if isinstance(parts, list) else message
    assert isinstance(first, Message), "an upload whose body is not a MIME message"
    metadata = first.get_payload(decode=True)
    assert isinstance(metadata, bytes), "an upload without its JSON metadata part"
    return bucket, str(json.loads(metadata)["name"])


def _handler(proxy: PreconditionProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _any(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            proxy._record(Seen(self.command, parts.path, query))
            if (
                self.command == "POST"
                and parts.path.startswith("/upload/")
                and query.get("ifGenerationMatch") == ["0"]
                and proxy.exists(*_upload_target(parts.path, query, self.headers, body))
            ):
                proxy.refused += 1
                message = "At least one of the pre-conditions you specified did not hold."
                error = {"code": 412, "message": message, "errors": [{"reason": "conditionNotMet"}]}
                self._answer(412, {"Content-Type": "application/json"}, json.dumps({"error": error}).encode())
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            upstream = requests.request(
                self.command, proxy.upstream + self.path, headers=headers, data=body or None, timeout=30
            )
            kept = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
            self._answer(upstream.status_code, kept, upstream.content)

        def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

    return Handler
