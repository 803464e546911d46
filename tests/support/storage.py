"""Storage doubles for in-process tests: a real backend with faults injected on purpose."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

from bloodcell.errors import TransientError
from bloodcell.storage import LocalStorage, ObjectInfo


class FlakyStorage:
    """LocalStorage whose reads and stats fail twice per object before they succeed."""

    def __init__(self, inner: LocalStorage, failures: int = 2) -> None:
        self.inner = inner
        self.failures = failures
        self.calls: Counter[tuple[str, str, str]] = Counter()
        self.injected = 0
        self._lock = threading.Lock()

    def _maybe_fail(self, op: str, bucket: str, name: str) -> None:
        with self._lock:
            self.calls[(op, bucket, name)] += 1
            if self.calls[(op, bucket, name)] > self.failures:
                return
            self.injected += 1
        raise TransientError(f"injected {op} failure on {bucket}/{name}")

    def read(self, bucket: str, name: str, **kwargs: Any) -> tuple[bytes, ObjectInfo]:
        self._maybe_fail("read", bucket, name)
        return self.inner.read(bucket, name, **kwargs)

    def stat(self, bucket: str, name: str) -> ObjectInfo | None:
        self._maybe_fail("stat", bucket, name)
        return self.inner.stat(bucket, name)

    def write(self, bucket: str, name: str, data: bytes, **kwargs: Any) -> ObjectInfo:
        return self.inner.write(bucket, name, data, **kwargs)

    def delete(self, bucket: str, name: str) -> bool:
        return self.inner.delete(bucket, name)

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.list(bucket, prefix)


# ---- one pipeline configuration per backend: folder buckets, S3 (moto server), GCS (emulator) ----

BACKENDS = ["local", "s3", "gcs"]
PIPELINE_BUCKETS = ("UPLOAD_BUCKET", "TENSOR_BUCKET", "RESULT_BUCKET")


def backend_env(kind: str, request: Any) -> dict[str, str]:
    """Settings variables that put the pipeline's buckets on ``kind``, the buckets made and empty.

    ``request`` is the test's ``pytest.FixtureRequest``: the S3 and GCS servers are the
    session fixtures of tests/conftest.py, started only when a test asks for that backend.
    """
    import uuid

    if kind == "local":
        return {"BLOODCELL_STORAGE": "local"}
    names = {var: f"{var.split('_')[0].lower()}-{uuid.uuid4().hex[:10]}" for var in PIPELINE_BUCKETS}
    if kind == "s3":
        import boto3

        endpoint = request.getfixturevalue("moto_server")
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        for bucket in names.values():
            client.create_bucket(Bucket=bucket)
        return {"BLOODCELL_STORAGE": "s3", "S3_ENDPOINT_URL": endpoint, **names}
    from bloodcell.storage.gcs import GcsStorage

    request.getfixturevalue("gcs_emulator")
    client = GcsStorage(project="test", retry_seconds=2).client
    for bucket in names.values():
        client.create_bucket(bucket)
    return {"BLOODCELL_STORAGE": "gcs", **names}


class HookedStorage:
    """A real backend that calls ``hook(op, bucket, name)`` after each write, delete and listing.

    Tests use it to run a second action at an exact point of the first one
    (between its state read and its record, between two label writes): the
    interleaving is chosen, not hoped for, and nothing sleeps.
    """

    def __init__(self, inner: Any, hook: Any) -> None:
        self.inner = inner
        self.hook = hook

    def read(self, bucket: str, name: str, **kwargs: Any) -> tuple[bytes, ObjectInfo]:
        result: tuple[bytes, ObjectInfo] = self.inner.read(bucket, name, **kwargs)
        return result

    def stat(self, bucket: str, name: str) -> ObjectInfo | None:
        result: ObjectInfo | None = self.inner.stat(bucket, name)
        return result

    def write(self, bucket: str, name: str, data: bytes, **kwargs: Any) -> ObjectInfo:
        info: ObjectInfo = self.inner.write(bucket, name, data, **kwargs)
        self.hook("write", bucket, name)
        return info

    def delete(self, bucket: str, name: str) -> bool:
        gone = bool(self.inner.delete(bucket, name))
        self.hook("delete", bucket, name)
        return gone

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        listed = list(self.inner.list(bucket, prefix))
        self.hook("list", bucket, prefix)
        return iter(listed)
