"""S3 and S3-compatible stores (MinIO), through boto3.

S3 has no generation number; the ETag stands in for it, since it changes with
the content and appears both in listings and in bucket notifications. S3 user
metadata must be ASCII, so values are percent-encoded on the way in and decoded
on the way out: object names from users may hold any Unicode.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

from bloodcell.errors import ObjectNotFound, PreconditionFailed, TransientError
from bloodcell.storage.base import ObjectInfo, check_read_size, impossible_key
from bloodcell.storage.web_identity import WebIdentity, refreshable_session

_NOT_FOUND = {"NoSuchKey", "404", "NotFound", "NoSuchBucket"}
_PRECONDITION = {"PreconditionFailed", "412", "ConditionalRequestConflict"}


def _etag(value: str) -> str:
    return value.strip('"')


class S3Storage:
    def __init__(
        self,
        endpoint_url: str | None = None,
        region: str | None = None,
        credentials: tuple[str, str] | None = None,
        web_identity: WebIdentity | None = None,
        *,
        metadata_host: str | None = None,
        sts_endpoint_url: str | None = None,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        # None: boto3's usual chain (AWS_* variables, instance role, ...)
        self._credentials = credentials
        # A role assumed with the workload's Google ID token (web_identity.py).
        self._web_identity = web_identity
        self._federation = {"metadata_host": metadata_host, "sts_endpoint_url": sts_endpoint_url}
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                config = Config(
                    retries={"max_attempts": 3, "mode": "standard"},
                    connect_timeout=3,
                    read_timeout=20,
                    max_pool_connections=32,
                )
                keys = {}
                if self._credentials:
                    keys = {
                        "aws_access_key_id": self._credentials[0],
                        "aws_secret_access_key": self._credentials[1],
                    }
                factory: Any = boto3
                if self._web_identity:
                    options = {k: v for k, v in self._federation.items() if v}
                    factory = refreshable_session(self._web_identity, self.region, **options)
                self._client = factory.client(
                    "s3", endpoint_url=self.endpoint_url, region_name=self.region, config=config, **keys
                )
            return self._client

    def _call(self, what: str, func: Any) -> Any:
        from botocore import exceptions as bexc

        try:
            return func()
        except bexc.ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if code in _NOT_FOUND or status == 404:
                raise ObjectNotFound(what) from exc
            if code in _PRECONDITION or status == 412:
                raise PreconditionFailed(what) from exc
            if status >= 500 or status == 429 or code in ("SlowDown", "RequestTimeout", "Throttling"):
                raise TransientError(f"{what}: {code}") from exc
            raise
        except (bexc.BotoCoreError, ConnectionError, TimeoutError) as exc:
            if isinstance(exc, bexc.NoCredentialsError | bexc.ParamValidationError):
                raise
            raise TransientError(f"{what}: {exc}") from exc

    def read(self, bucket: str, name: str, *, max_bytes: int | None = None) -> tuple[bytes, ObjectInfo]:
        if impossible_key(name):
            raise ObjectNotFound(f"s3://{bucket}/{name[:64]}…")

        def fetch() -> tuple[bytes, ObjectInfo]:
            resp = self.client.get_object(Bucket=bucket, Key=name)
            if max_bytes is None:
                data = resp["Body"].read()
            else:
                try:  # ContentLength is known before any of the body is read
                    check_read_size(self._info(bucket, name, resp), 0, max_bytes)
                    data = resp["Body"].read(max_bytes + 1)
                finally:
                    resp["Body"].close()
            info = self._info(bucket, name, resp, len(data))
            check_read_size(info, len(data), max_bytes)
            return data, info

        result: tuple[bytes, ObjectInfo] = self._call(f"s3://{bucket}/{name}", fetch)
        return result

    @staticmethod
    def _info(bucket: str, name: str, resp: Mapping[str, Any], size: int | None = None) -> ObjectInfo:
        updated = resp.get("LastModified") or datetime.now(UTC)
        return ObjectInfo(
            bucket=bucket,
            name=name,
            generation=_etag(str(resp.get("ETag", ""))),
            size=int(size if size is not None else resp.get("ContentLength", resp.get("Size", 0))),
            updated=updated,
            metadata={k: unquote(v) for k, v in (resp.get("Metadata") or {}).items()},
            content_type=resp.get("ContentType"),
        )

    def stat(self, bucket: str, name: str) -> ObjectInfo | None:
        if impossible_key(name):
            return None
        try:
            resp = self._call(
                f"s3://{bucket}/{name}", lambda: self.client.head_object(Bucket=bucket, Key=name)
            )
        except ObjectNotFound:
            return None
        return self._info(bucket, name, resp)

    def write(
        self,
        bucket: str,
        name: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
        if_absent: bool = False,
    ) -> ObjectInfo:
        encoded = {k: quote(str(v), safe="") for k, v in (metadata or {}).items()}
        extra = {"IfNoneMatch": "*"} if if_absent else {}

        def put() -> Any:
            return self.client.put_object(
                Bucket=bucket, Key=name, Body=data, ContentType=content_type, Metadata=encoded, **extra
            )

        resp = self._call(f"s3://{bucket}/{name}", put)
        return ObjectInfo(
            bucket=bucket,
            name=name,
            generation=_etag(str(resp.get("ETag", ""))),
            size=len(data),
            updated=datetime.now(UTC),
            metadata=dict(metadata or {}),
            content_type=content_type,
        )

    def delete(self, bucket: str, name: str) -> bool:
        """S3 answers a delete of a missing key with success too: a head first tells them apart."""
        if self.stat(bucket, name) is None:
            return False
        self._call(f"s3://{bucket}/{name}", lambda: self.client.delete_object(Bucket=bucket, Key=name))
        return True

    def purge_versions(self, bucket: str, name: str) -> int:
        """Erasure: the object and, in a versioned bucket, every older version and delete marker.

        How many versions went; a role without ``s3:DeleteObjectVersion`` gets the store's
        refusal (AccessDenied), which ``erasure`` turns into an administrator's step.
        """
        paginator = self.client.get_paginator("list_object_versions")
        pages = iter(paginator.paginate(Bucket=bucket, Prefix=name))
        removed = 0
        while True:
            page = self._call(f"s3://{bucket}/{name}", lambda: next(pages, None))
            if page is None:
                return removed
            for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                if item["Key"] != name:
                    continue
                version = item["VersionId"]
                self._call(
                    f"s3://{bucket}/{name}",
                    lambda v=version: self.client.delete_object(Bucket=bucket, Key=name, VersionId=v),
                )
                removed += "Size" in item  # a delete marker held no copy

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        """Page by page (1,000 keys each): memory follows a page, not the bucket."""
        paginator = self.client.get_paginator("list_objects_v2")
        pages = iter(paginator.paginate(Bucket=bucket, Prefix=prefix))
        while True:
            page = self._call(f"s3://{bucket}", lambda: next(pages, None))
            if page is None:
                return
            for item in page.get("Contents", []):
                if not item["Key"].endswith("/"):
                    yield self._info(bucket, item["Key"], item)
