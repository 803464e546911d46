"""Create the pipeline's buckets in the in-cluster store and route their events.

Run once at install by the `create-buckets` Job (14-create-buckets-job.yaml).
The upload and tensor buckets get a notification configuration sending
s3:ObjectCreated:* to the store's webhook target (the event source's receive
mode), so nothing has to list buckets in a loop. Every step is idempotent, and
the configuration is read back so a store that silently ignored it fails the
Job instead of leaving a pipeline that never fires.

    python setup_buckets.py --notify-arn arn:rustfs:sqs:us-east-1:primary:webhook
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger("bloodcell.setup_buckets")
CONFIG_ID = "bloodcell-object-created"
EVENTS = ["s3:ObjectCreated:*"]


def _client() -> Any:
    config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=3, read_timeout=20)
    return boto3.client(
        "s3",
        endpoint_url=os.environ["S3_ENDPOINT_URL"],
        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        config=config,
    )


def _wait_for_store(s3: Any, deadline: float) -> None:
    while True:
        try:
            s3.list_buckets()
            return
        except (BotoCoreError, ClientError) as exc:
            if time.monotonic() > deadline:
                raise
            log.info("waiting for the store at %s: %s", os.environ["S3_ENDPOINT_URL"], exc)
            time.sleep(3)


def _ensure_bucket(s3: Any, bucket: str) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
        log.info("bucket %s exists", bucket)
        return
    except ClientError as exc:
        if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 404:
            raise
    try:
        s3.create_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
            raise
    log.info("bucket %s created", bucket)


def _route_events(s3: Any, bucket: str, arn: str) -> None:
    wanted = {"Id": CONFIG_ID, "QueueArn": arn, "Events": EVENTS}
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [wanted]}
    )
    found = s3.get_bucket_notification_configuration(Bucket=bucket).get("QueueConfigurations", [])
    if not any(c.get("QueueArn") == arn for c in found):
        raise SystemExit(f"the store did not keep the notification configuration of {bucket}: {found}")
    log.info("bucket %s: %s -> %s", bucket, ",".join(EVENTS), arn)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notify-arn", required=True, help="ARN of the store's notification target")
    parser.add_argument("--wait-seconds", type=float, default=300, help="how long to wait for the store")
    opts = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(name)s %(message)s")

    names = ("UPLOAD_BUCKET", "TENSOR_BUCKET", "RESULT_BUCKET", "ARCHIVE_BUCKET")
    buckets = list(dict.fromkeys(os.environ[name] for name in names))
    watched = list(dict.fromkeys(os.environ[name] for name in ("UPLOAD_BUCKET", "TENSOR_BUCKET")))

    s3 = _client()
    _wait_for_store(s3, time.monotonic() + opts.wait_seconds)
    for bucket in buckets:
        _ensure_bucket(s3, bucket)
    for bucket in watched:
        _route_events(s3, bucket, opts.notify_arn)
    return 0


if __name__ == "__main__":
    sys.exit(main())
