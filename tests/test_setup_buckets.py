"""The install Job's bucket set-up (knative/eventsource/setup_buckets.py), run as
the Job runs it, against moto's S3 over real HTTP. moto accepts only AWS-shaped
queue ARNs, so an SQS ARN stands in for RustFS's arn:rustfs:sqs:...:webhook."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import boto3

SCRIPT = Path(__file__).resolve().parent.parent / "knative" / "eventsource" / "setup_buckets.py"
ARN = "arn:aws:sqs:us-east-1:123456789012:bucket-events"


def _run(endpoint: str, names: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "S3_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": "us-east-1", **names}
    command = [sys.executable, str(SCRIPT), "--notify-arn", ARN, "--wait-seconds", "10"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_creates_the_buckets_and_routes_only_the_watched_ones_idempotently(moto_server: str) -> None:
    # Arrange
    tag = uuid.uuid4().hex[:8]
    names = {key: f"{key.split('_')[0].lower()}-{tag}" for key in ("UPLOAD_BUCKET", "TENSOR_BUCKET")}
    names |= {
        "RESULT_BUCKET": f"results-{tag}",
        "ARCHIVE_BUCKET": f"archive-{tag}",
        "MODEL_BUCKET": f"models-{tag}",
    }
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")

    # Act: twice, as a re-run Job would.
    first, second = _run(moto_server, names), _run(moto_server, names)

    # Assert
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    existing = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert set(names.values()) <= existing
    routes = {
        name: s3.get_bucket_notification_configuration(Bucket=name).get("QueueConfigurations", [])
        for name in names.values()
    }
    for key in ("UPLOAD_BUCKET", "TENSOR_BUCKET"):
        (route,) = routes[names[key]]
        assert route["QueueArn"] == ARN and route["Events"] == ["s3:ObjectCreated:*"]
    for key in ("RESULT_BUCKET", "ARCHIVE_BUCKET", "MODEL_BUCKET"):
        assert routes[names[key]] == [], key


def test_retention_becomes_each_buckets_lifecycle_and_zero_removes_it(moto_server: str) -> None:
    # Arrange
    tag = uuid.uuid4().hex[:8]
    names = {key: f"{key.split('_')[0].lower()}-{tag}" for key in ("UPLOAD_BUCKET", "TENSOR_BUCKET")}
    names |= {
        "RESULT_BUCKET": f"results-{tag}",
        "ARCHIVE_BUCKET": f"archive-{tag}",
        "ARCHIVE_PREFIX": "classified/",
        "MODEL_BUCKET": f"models-{tag}",
    }
    days = {"UPLOAD_RETENTION_DAYS": "30", "RESULT_RETENTION_DAYS": "365", "ARCHIVE_RETENTION_DAYS": "0"}
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")

    # Act: with retention, then with the uploads kept again
    first = _run(moto_server, names | days)
    rules = {
        key: s3.get_bucket_lifecycle_configuration(Bucket=names[key])["Rules"]
        for key in ("UPLOAD_BUCKET", "TENSOR_BUCKET", "RESULT_BUCKET")
    }
    second = _run(moto_server, names | days | {"UPLOAD_RETENTION_DAYS": "0"})

    # Assert
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert [r["Expiration"]["Days"] for r in rules["UPLOAD_BUCKET"]] == [30]
    assert [r["Expiration"]["Days"] for r in rules["TENSOR_BUCKET"]] == [30]
    assert [r["Expiration"]["Days"] for r in rules["RESULT_BUCKET"]] == [365]
    for key in ("ARCHIVE_BUCKET", "UPLOAD_BUCKET", "MODEL_BUCKET"):
        try:
            s3.get_bucket_lifecycle_configuration(Bucket=names[key])
            kept = True
        except s3.exceptions.ClientError:
            kept = False
        assert not kept, key


def test_gives_up_with_an_error_when_the_store_never_answers() -> None:
    # Arrange: nothing listens on this port.
    from tests.support.common import free_port

    names = {
        "UPLOAD_BUCKET": "u",
        "TENSOR_BUCKET": "t",
        "RESULT_BUCKET": "r",
        "ARCHIVE_BUCKET": "a",
        "MODEL_BUCKET": "m",
    }
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}

    # Act
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--notify-arn", ARN, "--wait-seconds", "1"],
        env={
            **env,
            **names,
            "S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
            "AWS_DEFAULT_REGION": "us-east-1",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    # Assert
    assert result.returncode != 0
    assert "Could not connect to the endpoint URL" in result.stderr
