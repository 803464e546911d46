"""Archive credentials by web identity federation: a fake Google metadata server
over real HTTP (the only part that cannot run here), moto's STS and S3 as a real
HTTP server, and botocore's own refresh machinery."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from bloodcell.errors import TransientError
from bloodcell.storage.s3 import S3Storage
from bloodcell.storage.web_identity import WebIdentity, google_id_token

AUDIENCE = "sts.amazonaws.com/bloodcell-archive-writer"
UNIQUE_ID = "104857600000000000001"


def _jwt(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


class FakeMetadata:
    """Answers the identity endpoint like Google's metadata server, and records each call."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, list[str]], str | None]] = []
        self.down = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                outer.requests.append((url.path, parse_qs(url.query), self.headers.get("Metadata-Flavor")))
                if outer.down or self.headers.get("Metadata-Flavor") != "Google":
                    self.send_response(503 if outer.down else 403)
                    self.end_headers()
                    return
                audience = parse_qs(url.query)["audience"][0]
                token = _jwt(
                    {
                        "iss": "https://accounts.google.com",
                        "aud": audience,
                        "azp": UNIQUE_ID,
                        "sub": UNIQUE_ID,
                    }
                )
                body = token.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def metadata() -> Iterator[FakeMetadata]:
    fake = FakeMetadata()
    yield fake
    fake.server.shutdown()


@pytest.fixture
def archive_role(moto_server: str) -> str:
    iam = boto3.client("iam", endpoint_url=moto_server, region_name="us-east-1")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": "accounts.google.com"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        "accounts.google.com:aud": UNIQUE_ID,
                        "accounts.google.com:oaud": AUDIENCE,
                    }
                },
            }
        ],
    }
    role = iam.create_role(
        RoleName=f"archive-{uuid.uuid4().hex[:8]}", AssumeRolePolicyDocument=json.dumps(trust)
    )
    arn: str = role["Role"]["Arn"]
    return arn


def _federated(s3_bucket: tuple[str, str], metadata: FakeMetadata, role: str) -> S3Storage:
    endpoint, _ = s3_bucket
    return S3Storage(
        endpoint_url=endpoint,
        region="us-east-1",
        web_identity=WebIdentity(role, AUDIENCE),
        metadata_host=metadata.host,
        sts_endpoint_url=endpoint,
    )


def test_id_token_is_asked_for_our_audience_with_the_metadata_header(metadata: FakeMetadata) -> None:
    # Act
    token = google_id_token(AUDIENCE, metadata.host)

    # Assert
    ((path, query, flavor),) = metadata.requests
    assert path == "/computeMetadata/v1/instance/service-accounts/default/identity"
    assert query == {"audience": [AUDIENCE], "format": ["full"]}
    assert flavor == "Google"
    assert token.count(".") == 2


def test_archive_writes_with_short_lived_role_credentials_not_the_environment_key(
    s3_bucket: tuple[str, str], metadata: FakeMetadata, archive_role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: a static key in the environment must not be what signs the write.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "static-key-id-not-used")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "static-secret-not-used")
    storage = _federated(s3_bucket, metadata, archive_role)
    _, bucket = s3_bucket

    # Act
    info = storage.write(bucket, "archive/2026/neutrophil/cellule é.jpg", b"jpeg bytes")
    used = storage.client._request_signer._credentials.get_frozen_credentials()

    # Assert
    assert info.size == len(b"jpeg bytes")
    assert used.access_key != "static-key-id-not-used" and used.access_key.startswith("ASIA")
    assert used.token, "role credentials carry a session token"
    assert len(metadata.requests) == 1


def test_expired_role_credentials_are_renewed_with_a_fresh_id_token(
    s3_bucket: tuple[str, str], metadata: FakeMetadata, archive_role: str
) -> None:
    # Arrange
    storage = _federated(s3_bucket, metadata, archive_role)
    _, bucket = s3_bucket
    storage.write(bucket, "archive/a.json", b"{}")
    credentials = storage.client._request_signer._credentials

    # Act: make botocore believe they run out now.
    credentials._expiry_time = credentials._expiry_time.replace(year=2000)
    storage.write(bucket, "archive/b.json", b"{}")

    # Assert
    assert len(metadata.requests) == 2


def test_unreachable_metadata_server_is_a_transient_error(
    s3_bucket: tuple[str, str], metadata: FakeMetadata, archive_role: str
) -> None:
    # Arrange
    metadata.down = True
    storage = _federated(s3_bucket, metadata, archive_role)
    _, bucket = s3_bucket

    # Act / Assert: retried by the event layer, never written with other credentials.
    with pytest.raises(TransientError):
        storage.write(bucket, "archive/c.json", b"{}")
