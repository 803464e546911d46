"""Storage events in, object references out; and the events our own source emits.

Both functions accept what the platforms really send: GCS ``object.v1.finalized``
CloudEvents (Eventarc, binary or structured mode, ``generation``/``size`` as
strings or numbers) and S3/MinIO bucket notifications (``Records[].s3``, keys
URL-encoded with ``+`` for spaces) wrapped in a CloudEvent.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus, unquote_to_bytes

from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent

from bloodcell.errors import MalformedEvent
from bloodcell.storage.base import ObjectInfo

__all__ = [
    "GCS_FINALIZED",
    "MalformedEvent",
    "ObjectRef",
    "binary_http",
    "decode_header_value",
    "encode_header_value",
    "gcs_event",
    "object_refs",
    "received_attributes",
    "structured_http",
]

GCS_FINALIZED = "google.cloud.storage.object.v1.finalized"
_S3_CREATED_PREFIXES = ("s3:ObjectCreated:", "ObjectCreated:")
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)


@dataclass(frozen=True)
class ObjectRef:
    bucket: str
    name: str
    generation: str | None = None
    size: int | None = None


# An object's size fits a signed 64-bit integer on every store; a generation or an ETag is a
# few dozen characters. Anything else in those fields was not sent by a store.
MAX_SIZE = 2**63 - 1
MAX_GENERATION_CHARS = 256
_DIGITS = re.compile(r"[0-9]{1,19}")


def _size(value: Any, what: str) -> int | None:
    """A size as stores send it (a number, or its digits as a string), or MalformedEvent.

    ``1e400`` (infinite once parsed), NaN, fractions, negatives, booleans, 5,000 digits and
    other types are refused here, not left to ``int()`` to raise something else later.
    """
    if value is None or value == "":
        return None
    number: int | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and _DIGITS.fullmatch(value):
        number = int(value, 10)
    if number is None or not 0 <= number <= MAX_SIZE:
        raise MalformedEvent(f"{what} {_clip(value)} is not an object size")
    return number


def _generation(value: Any, what: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int) or len(str(value)) > MAX_GENERATION_CHARS:
        raise MalformedEvent(f"{what} {_clip(value)} is not a generation")
    return str(value)


def _clip(value: Any) -> str:
    """A field's value for a log line: never the whole of a hostile 4 MiB string."""
    text = repr(value) if not isinstance(value, str | int | float) or isinstance(value, bool) else str(value)
    return text if len(text) <= 40 else text[:40] + "…"


def _gcs_ref(data: Mapping[str, Any]) -> ObjectRef:
    bucket, name = data.get("bucket"), data.get("name")
    if not isinstance(bucket, str) or not isinstance(name, str) or not bucket or not name:
        raise MalformedEvent("GCS event data lacks bucket or name")
    generation = _generation(data.get("generation"), "GCS event generation")
    return ObjectRef(bucket, name, generation, _size(data.get("size"), "GCS event size"))


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedEvent(f"S3 record's {what} is not an object")
    return value


def _s3_refs(records: list[Any]) -> list[ObjectRef]:
    refs = []
    for record in records:
        record = _mapping(record, "Records item")
        event_name = str(record.get("eventName", "s3:ObjectCreated:Put"))
        if not event_name.startswith(_S3_CREATED_PREFIXES):
            continue  # deletions and the like: not ours to handle
        s3 = _mapping(record.get("s3") or {}, "s3")
        bucket = _mapping(s3.get("bucket") or {}, "bucket").get("name")
        obj = _mapping(s3.get("object") or {}, "object")
        key = obj.get("key")
        if not isinstance(bucket, str) or not isinstance(key, str) or not bucket or not key:
            raise MalformedEvent("S3 record lacks bucket name or object key")
        etag = _generation(obj.get("eTag") or obj.get("etag"), "S3 object eTag")
        size_value = _size(obj.get("size"), "S3 object size")
        refs.append(
            ObjectRef(
                bucket=bucket,
                name=unquote_plus(key),
                generation=etag.strip('"') if etag else None,
                size=size_value,
            )
        )
    return refs


def object_refs(data: Any) -> list[ObjectRef]:
    """Every created object an event speaks of (S3 notifications may batch records)."""
    if isinstance(data, (bytes, str)):
        try:
            data = json.loads(data)
        except (ValueError, RecursionError) as exc:  # invalid UTF-8 is a ValueError too
            raise MalformedEvent(f"event data is not JSON ({type(exc).__name__})") from exc
    if not isinstance(data, Mapping):
        raise MalformedEvent("event data is not a JSON object")
    records = data.get("Records")
    if isinstance(records, list):
        return _s3_refs(records)
    return [_gcs_ref(data)]


def gcs_event(info: ObjectInfo, overrides: Mapping[str, str] | None = None) -> CloudEvent:
    """The CloudEvent Eventarc would send for this object, built with the cloudevents SDK.

    The extra ``bucket`` attribute lets Knative Triggers filter on the bucket;
    ``overrides`` are extension attributes to set (the SinkBinding's ``K_CE_OVERRIDES``).
    """
    attributes: dict[str, str] = {
        "id": uuid.uuid4().hex,
        "specversion": "1.0",
        "type": GCS_FINALIZED,
        "source": f"//storage.googleapis.com/projects/_/buckets/{info.bucket}",
        "subject": f"objects/{info.name}",
        "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "bucket": info.bucket,
    }
    attributes.update(overrides or {})
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
    return CloudEvent(attributes, data)


def structured_http(event: CloudEvent) -> tuple[dict[str, str], bytes]:
    """Structured content mode: every attribute inside the JSON body, so any name travels."""
    headers, body = to_structured(event)
    return dict(headers), body if isinstance(body, bytes) else str(body).encode("utf-8")


def encode_header_value(value: str) -> str:
    """Percent-encode a ``ce-`` header value (HTTP protocol binding 1.0.2, section 3.1.3.2):
    space, double quote, percent and everything outside printable ASCII, as UTF-8 bytes."""
    out = []
    for char in value:
        if "!" <= char <= "~" and char not in '"%':
            out.append(char)
        else:
            out.append("".join(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass")))
    return "".join(out)


def decode_header_value(value: str) -> str:
    """Undo :func:`encode_header_value` on receipt: quoted-string unescaping first, then one
    round of percent-decoding; invalid UTF-8 is refused, as the binding requires."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = _QUOTED_PAIR.sub(r"\1", value[1:-1])
    try:
        raw = value.encode("latin-1")  # how WSGI servers hand us the header's bytes
    except UnicodeEncodeError:
        raw = value.encode("utf-8", "surrogatepass")
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedEvent("a ce- header is not valid percent-encoded UTF-8") from exc


def binary_http(event: CloudEvent) -> tuple[dict[str, str], bytes]:
    """Binary content mode, with the header values percent-encoded as the binding says.

    The SDK writes attribute values into headers as they are; a name outside Latin-1
    (CJK, emoji, a combining accent) then cannot be sent at all, and a newline would
    split the header.
    """
    headers, body = to_binary(event)
    encoded = {
        k: encode_header_value(str(v)) if k.lower().startswith("ce-") else str(v) for k, v in headers.items()
    }
    return encoded, body if isinstance(body, bytes) else str(body).encode("utf-8")


def received_attributes(event: Any, headers: Mapping[str, str] | None) -> dict[str, str]:
    """The event's attributes as sent: percent-decoded when it came in binary mode.

    ``headers`` are the request's (None outside a request); an event that came in
    structured mode carries its attributes in the body, where nothing is encoded.
    """
    try:
        attributes = {str(k): str(v) for k, v in event.get_attributes().items()}
    except AttributeError:
        return {}
    if headers is None or "ce-specversion" not in {k.lower() for k in headers}:
        return attributes
    decoded = {}
    for key, value in attributes.items():
        try:
            decoded[key] = decode_header_value(value)
        except MalformedEvent:
            decoded[key] = value
    return decoded
