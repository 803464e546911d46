"""Storage events in, object references out; and the events our own source emits.

Both functions accept what the platforms really send: GCS ``object.v1.finalized``
CloudEvents (Eventarc, binary or structured mode, ``generation``/``size`` as
strings or numbers) and S3/MinIO bucket notifications (``Records[].s3``, keys
URL-encoded with ``+`` for spaces) wrapped in a CloudEvent.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from bloodcell.storage.base import ObjectInfo

GCS_FINALIZED = "google.cloud.storage.object.v1.finalized"
_S3_CREATED_PREFIXES = ("s3:ObjectCreated:", "ObjectCreated:")


class MalformedEvent(ValueError):
    """An event that names no object: nothing can be done, and retrying won't help."""


@dataclass(frozen=True)
class ObjectRef:
    bucket: str
    name: str
    generation: str | None = None
    size: int | None = None


def _gcs_ref(data: Mapping[str, Any]) -> ObjectRef:
    bucket, name = data.get("bucket"), data.get("name")
    if not isinstance(bucket, str) or not isinstance(name, str) or not bucket or not name:
        raise MalformedEvent("GCS event data lacks bucket or name")
    generation = data.get("generation")
    size = data.get("size")
    try:
        size_value = int(size) if size is not None and str(size) != "" else None
    except (TypeError, ValueError) as exc:
        raise MalformedEvent(f"GCS event size {size!r} is not a number") from exc
    return ObjectRef(bucket, name, str(generation) if generation not in (None, "") else None, size_value)


def _s3_refs(records: list[Any]) -> list[ObjectRef]:
    refs = []
    for record in records:
        event_name = str(record.get("eventName", "s3:ObjectCreated:Put"))
        if not event_name.startswith(_S3_CREATED_PREFIXES):
            continue  # deletions and the like: not ours to handle
        s3 = record.get("s3") or {}
        bucket = (s3.get("bucket") or {}).get("name")
        obj = s3.get("object") or {}
        key = obj.get("key")
        if not bucket or not key:
            raise MalformedEvent("S3 record lacks bucket name or object key")
        etag = obj.get("eTag") or obj.get("etag")
        size = obj.get("size")
        refs.append(
            ObjectRef(
                bucket=str(bucket),
                name=unquote_plus(str(key)),
                generation=str(etag).strip('"') if etag else None,
                size=int(size) if size is not None else None,
            )
        )
    return refs


def object_refs(data: Any) -> list[ObjectRef]:
    """Every created object an event speaks of (S3 notifications may batch records)."""
    if isinstance(data, (bytes, str)):
        import json

        try:
            data = json.loads(data)
        except ValueError as exc:
            raise MalformedEvent("event data is not JSON") from exc
    if not isinstance(data, Mapping):
        raise MalformedEvent("event data is not a JSON object")
    records = data.get("Records")
    if isinstance(records, list):
        return _s3_refs(records)
    return [_gcs_ref(data)]


def gcs_event(info: ObjectInfo) -> tuple[dict[str, str], dict[str, Any]]:
    """Attributes and data of the CloudEvent Eventarc would send for this object.

    The extra ``bucket`` attribute lets Knative Triggers filter on the bucket.
    """
    attributes = {
        "id": uuid.uuid4().hex,
        "specversion": "1.0",
        "type": GCS_FINALIZED,
        "source": f"//storage.googleapis.com/projects/_/buckets/{info.bucket}",
        "subject": f"objects/{info.name}",
        "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "bucket": info.bucket,
    }
    data = {
        "kind": "storage#object",
        "bucket": info.bucket,
        "name": info.name,
        "generation": info.generation,
        "size": str(info.size),
        "updated": info.updated.isoformat(),
        "contentType": info.content_type or "application/octet-stream",
        "metadata": dict(info.metadata),
    }
    return attributes, data
