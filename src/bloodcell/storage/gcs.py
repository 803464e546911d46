"""Google Cloud Storage, through google-cloud-storage.

The client is created on first use and shared by every event the process serves.
``STORAGE_EMULATOR_HOST`` (honoured by the client library) points it at an
emulator; then anonymous credentials are used, as emulators expect.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from bloodcell.errors import ObjectNotFound, PreconditionFailed, TransientError
from bloodcell.storage.base import ObjectInfo, check_read_size, impossible_key


def _info(blob: Any) -> ObjectInfo:
    updated = blob.updated or blob.time_created or datetime.now(UTC)
    return ObjectInfo(
        bucket=blob.bucket.name,
        name=blob.name,
        generation=str(blob.generation),
        size=int(blob.size or 0),
        updated=updated,
        metadata=dict(blob.metadata or {}),
        content_type=blob.content_type,
    )


class GcsStorage:
    def __init__(self, project: str | None = None, retry_seconds: float = 30.0) -> None:
        self._project = project
        # The library retries transient errors itself; bound it so a dead endpoint
        # becomes our TransientError (and a redelivery) instead of a long hang.
        self._retry_seconds = retry_seconds
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                from google.cloud import storage

                if os.environ.get("STORAGE_EMULATOR_HOST"):
                    from google.auth.credentials import AnonymousCredentials

                    self._client = storage.Client(
                        project=self._project or "bloodcell-local",
                        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                    )
                else:
                    self._client = storage.Client(project=self._project)
            return self._client

    @property
    def retry(self) -> Any:
        from google.cloud.storage.retry import DEFAULT_RETRY

        return DEFAULT_RETRY.with_timeout(self._retry_seconds)

    def _call(self, what: str, func: Any) -> Any:
        from google.api_core import exceptions as gexc
        from google.auth import exceptions as auth_exc

        try:
            return func()
        except gexc.NotFound as exc:
            raise ObjectNotFound(what) from exc
        except gexc.PreconditionFailed as exc:
            raise PreconditionFailed(what) from exc
        except (gexc.TooManyRequests, gexc.ServerError, gexc.RetryError, auth_exc.TransportError) as exc:
            raise TransientError(f"{what}: {exc}") from exc
        except (ConnectionError, TimeoutError, OSError) as exc:
            raise TransientError(f"{what}: {exc}") from exc
        except Exception as exc:  # requests' own connection errors are not OSError subclasses
            if type(exc).__module__.startswith(("requests", "urllib3")):
                raise TransientError(f"{what}: {exc}") from exc
            raise

    def read(self, bucket: str, name: str, *, max_bytes: int | None = None) -> tuple[bytes, ObjectInfo]:
        if impossible_key(name):
            raise ObjectNotFound(f"gs://{bucket}/{name[:64]}…")

        def fetch() -> tuple[bytes, ObjectInfo]:
            blob = self.client.bucket(bucket).get_blob(name, retry=self.retry)
            if blob is None:
                raise ObjectNotFound(f"{bucket}/{name}")
            info = _info(blob)  # before download, which rewrites blob properties from headers
            check_read_size(info, 0, max_bytes)
            # ``end`` is inclusive: at most max_bytes + 1 bytes, whatever the metadata said
            limit = {} if max_bytes is None else {"end": max_bytes}
            # pin the generation we described, so content and description agree
            data = blob.download_as_bytes(if_generation_match=blob.generation, retry=self.retry, **limit)
            check_read_size(info, len(data), max_bytes)
            return data, info

        result: tuple[bytes, ObjectInfo] = self._call(f"gs://{bucket}/{name}", fetch)
        return result

    def stat(self, bucket: str, name: str) -> ObjectInfo | None:
        if impossible_key(name):
            return None
        blob = self._call(
            f"gs://{bucket}/{name}", lambda: self.client.bucket(bucket).get_blob(name, retry=self.retry)
        )
        return None if blob is None else _info(blob)

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
        def put() -> ObjectInfo:
            blob = self.client.bucket(bucket).blob(name)
            blob.metadata = dict(metadata or {})
            kwargs = {"if_generation_match": 0} if if_absent else {}
            blob.upload_from_string(data, content_type=content_type, retry=self.retry, **kwargs)
            return _info(blob)

        result: ObjectInfo = self._call(f"gs://{bucket}/{name}", put)
        return result

    def delete(self, bucket: str, name: str) -> bool:
        try:
            self._call(
                f"gs://{bucket}/{name}",
                lambda: self.client.bucket(bucket).blob(name).delete(retry=self.retry),
            )
        except ObjectNotFound:
            return False
        return True

    def purge_versions(self, bucket: str, name: str) -> int:
        """Erasure: the live object and, with object versioning on, every noncurrent generation."""
        blobs = self._call(
            f"gs://{bucket}/{name}",
            lambda: list(self.client.list_blobs(bucket, prefix=name, versions=True, retry=self.retry)),
        )
        removed = 0
        for blob in blobs:
            if blob.name != name:
                continue
            try:
                self._call(
                    f"gs://{bucket}/{name}",
                    lambda b=blob: (
                        self.client.bucket(bucket)
                        .blob(name, generation=b.generation)
                        .delete(retry=self.retry)
                    ),
                )
            except ObjectNotFound:
                continue
            removed += 1
        return removed

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        blobs = self._call(
            f"gs://{bucket}",
            lambda: list(self.client.list_blobs(bucket, prefix=prefix or None, retry=self.retry)),
        )
        for blob in blobs:
            if not blob.name.endswith("/"):
                yield _info(blob)
