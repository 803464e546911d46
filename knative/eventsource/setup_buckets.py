"""Create the pipeline's buckets in the in-cluster store and route their events.

Run once at install by the `create-buckets` Job (14-create-buckets-job.yaml).
The upload and tensor buckets get a notification configuration sending
s3:ObjectCreated:* to the store's webhook target (the event source's receive
mode), so nothing has to list buckets in a loop. Every step is idempotent, and
the configuration is read back so a store that silently ignored it fails the
Job instead of leaving a pipeline that never fires.

Retention (UPLOAD_RETENTION_DAYS, RESULT_RETENTION_DAYS, ARCHIVE_RETENTION_DAYS: 0
keeps everything, as in terraform/) becomes each bucket's lifecycle configuration:
an expiration rule that many days after an object was written, which the store's
scanner applies; the tensor bucket follows the uploads. 0 removes our rule.

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


RULE_ID = "bloodcell-retention"


def _days(name: str) -> int:
    raw = os.environ.get(name, "").strip() or "0"
    if not raw.isdigit():
        raise SystemExit(f"{name} must be a whole number of days, 0 (keep) or more, got {raw!r}")
    return int(raw)


def retention_rules() -> dict[str, list[dict[str, Any]]]:
    """Bucket -> its expiration rules, from the same settings the local sweep reads."""
    upload_days = _days("UPLOAD_RETENTION_DAYS")
    wanted = (
        ("UPLOAD_BUCKET", "", upload_days),
        ("TENSOR_BUCKET", "", upload_days),
        ("RESULT_BUCKET", "", _days("RESULT_RETENTION_DAYS")),
        ("ARCHIVE_BUCKET", os.environ.get("ARCHIVE_PREFIX", ""), _days("ARCHIVE_RETENTION_DAYS")),
    )
    rules: dict[str, list[dict[str, Any]]] = {}
    for variable, prefix, days in wanted:
        bucket_rules = rules.setdefault(os.environ[variable], [])
        if days > 0:
            rule_id = RULE_ID if not prefix else f"{RULE_ID}-{variable.split('_')[0].lower()}"
            bucket_rules.append(
                {
                    "ID": rule_id,
                    "Status": "Enabled",
                    "Filter": {"Prefix": prefix},
                    "Expiration": {"Days": days},
                }
            )
    return rules


def _apply_retention(s3: Any, bucket: str, rules: list[dict[str, Any]]) -> None:
    if not rules:
        try:
            s3.delete_bucket_lifecycle(Bucket=bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchLifecycleConfiguration":
                raise
        log.info("bucket %s: kept until deleted (no retention)", bucket)
        return
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
    found = s3.get_bucket_lifecycle_configuration(Bucket=bucket).get("Rules", [])
    kept = {(r.get("ID"), r.get("Expiration", {}).get("Days")) for r in found}
    if not {(r["ID"], r["Expiration"]["Days"]) for r in rules} <= kept:
        raise SystemExit(f"the store did not keep the lifecycle configuration of {bucket}: {found}")
    log.info(
        "bucket %s: %s", bucket, ", ".join(f"{r['ID']} after {r['Expiration']['Days']} days" for r in rules)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notify-arn", required=True, help="ARN of the store's notification target")
    parser.add_argument("--wait-seconds", type=float, default=300, help="how long to wait for the store")
    opts = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(name)s %(message)s")

    names = ("UPLOAD_BUCKET", "TENSOR_BUCKET", "RESULT_BUCKET", "ARCHIVE_BUCKET", "MODEL_BUCKET")
    buckets = list(dict.fromkeys(os.environ[name] for name in names))
    watched = list(dict.fromkeys(os.environ[name] for name in ("UPLOAD_BUCKET", "TENSOR_BUCKET")))

    s3 = _client()
    _wait_for_store(s3, time.monotonic() + opts.wait_seconds)
    for bucket in buckets:
        _ensure_bucket(s3, bucket)
    for bucket in watched:
        _route_events(s3, bucket, opts.notify_arn)
    # The model registry's bucket has no rule of ours: its audit trail is kept.
    for bucket, rules in retention_rules().items():
        _apply_retention(s3, bucket, rules)
    return 0


if __name__ == "__main__":
    sys.exit(main())
