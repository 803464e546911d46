"""The event source's TLS to an ``https`` K_SINK: verified against K_CA_CERTS, refused otherwise.

A real TLS server on a free port with a certificate made for the test; the source posts
through its own connection pool, exactly as it does to a Knative broker.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bloodcell.eventsource import EventSource
from bloodcell.storage import LocalStorage, ObjectInfo


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: its own CA, as a cluster's private CA would be."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bloodcell test sink")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "sink.pem", folder / "sink.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_sink(tmp_path: Path) -> Iterator[tuple[str, Path, list[dict[str, Any]]]]:
    cert, key = _certificate(tmp_path)
    received: list[dict[str, Any]] = []

    class Sink(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/", cert, received
    finally:
        server.shutdown()
        server.server_close()


def _info() -> ObjectInfo:
    return ObjectInfo("uploads", "cellule été.jpg", "abc", 4, dt.datetime.now(dt.UTC))


def test_an_https_sink_is_verified_against_the_given_ca(
    tls_sink: tuple[str, Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    url, ca, received = tls_sink
    source = EventSource(LocalStorage(tmp_path / "data"), {"uploads": url}, verify=str(ca), timeout=10)

    error = source.deliver(_info(), url)

    assert error is None
    assert [event["data"]["name"] for event in received] == ["cellule été.jpg"]


def test_an_https_sink_outside_the_trusted_cas_is_refused(
    tls_sink: tuple[str, Path, list[dict[str, Any]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ca, received = tls_sink
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    source = EventSource(LocalStorage(tmp_path / "data"), {"uploads": url}, timeout=10)  # certifi

    error = source.deliver(_info(), url)

    assert error is not None and "SSL" in error
    assert received == []
