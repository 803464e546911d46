"""The S3 archive (moto over HTTP) stopped mid-batch: results stay usable, the archive completes later."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.common import free_port
from tests.support.stack import (
    check_end_state,
    count_entries,
    drop,
    read_results,
    smear_batch,
    wait_for,
    wait_results,
)

# ---- the S3 archive endpoint down during a batch ----


class S3Endpoint:
    """moto's S3 over HTTP on a fixed port that can go down and come back (state kept in-process)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.server: Any = None

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server._server.server_close()  # stop() leaves the socket listening: refuse instead
            self.server = None


@pytest.fixture
def s3_endpoint() -> Iterator[S3Endpoint]:
    for key, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        os.environ.setdefault(key, value)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    endpoint = S3Endpoint(free_port())
    endpoint.start()
    yield endpoint
    endpoint.stop()


def _s3_keys(endpoint: S3Endpoint, bucket: str) -> list[str]:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint.url, region_name="us-east-1")
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys += [item["Key"] for item in page.get("Contents", [])]
    return keys


@pytest.mark.slow
def test_archive_endpoint_down_mid_batch_keeps_results_and_completes_archive(
    make_stack: Any, tmp_path: Path, datasets: Path, s3_endpoint: S3Endpoint
) -> None:
    import boto3

    bucket = "bloodcell-archive"
    boto3.client("s3", endpoint_url=s3_endpoint.url, region_name="us-east-1").create_bucket(Bucket=bucket)
    stack = make_stack(
        ARCHIVE_STORAGE="s3",
        ARCHIVE_BUCKET=bucket,
        ARCHIVE_S3_ENDPOINT_URL=s3_endpoint.url,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    data = stack.data_dir
    files = smear_batch(datasets, 100, prefix="arch")
    drop(data, files, tmp_path / "staging")
    wait_for("the batch to be under way", lambda: count_entries(data / "results") >= 10, 60, 0.01)

    s3_endpoint.stop()
    down_at = count_entries(data / "results")
    assert down_at < len(files)

    def pending() -> list[str]:
        return [n for n, r in read_results(data).items() if r["archive"]["status"] == "pending"]

    # results keep being written while the archive is down, saying the copy is pending
    wait_for(
        "every upload to have a result while the archive is down",
        lambda: len(read_results(data)) == len(files),
        120,
        0.2,
        log=stack.log_tail,
    )
    during = read_results(data)
    waiting = pending()
    assert len(waiting) >= len(files) - down_at - 4  # at most the in-flight ones got through
    assert {r["status"] for r in during.values()} == {"classified"}
    for name in waiting:
        assert during[name]["archive"] == {"status": "pending", "location": None}

    s3_endpoint.start()
    wait_results(data, files, timeout=120, log=stack.log_tail)
    keys = _s3_keys(s3_endpoint, bucket)
    state = check_end_state(data, files, archive_keys=keys)
    assert len(keys) == 2 * len(files)
    assert {r["archive"]["status"] for r in state.results.values()} == {"stored"}
    assert not list((data / "archive").rglob("*.jpg")), "archive copies went to the local folder"
    print(
        f"\narchive down at {down_at}/{len(files)}: {len(waiting)} result(s) published as pending, "
        "all archived once after it came back"
    )
