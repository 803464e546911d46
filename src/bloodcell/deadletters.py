"""Dead letters of the local event source: events it gave up on, kept where people can see them.

Like Knative's ``deadLetterSink`` and an Eventarc dead-letter topic, but a plain JSON
object in a bucket of its own (``DEAD_LETTER_BUCKET``), one per object version, so the
web app (or ``ls``) can list what never got an answer. The record (schema version 1):

    {"schema_version": "1", "kind": "dead-letter",
     "bucket": "uploads", "name": "細胞.jpg", "generation": "…",
     "sink": "http://127.0.0.1:8081/", "attempts": 20, "error": "HTTP 500",
     "first_failed": "2026-12-01T22:00:00Z", "dead_lettered": "2026-12-01T22:03:10Z"}

Re-announcing the object (writing it again, or restarting the source, whose reconcile
finds it without output) tries again; the record stays as history until removed.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from bloodcell.names import displayable
from bloodcell.storage import ObjectInfo, Storage

SCHEMA_VERSION = "1"


@dataclass(frozen=True)
class DeadLetter:
    bucket: str
    name: str
    generation: str
    sink: str
    attempts: int
    error: str
    first_failed: str
    dead_lettered: str
    schema_version: str = SCHEMA_VERSION
    kind: str = "dead-letter"

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes | str) -> DeadLetter:
        raw: dict[str, Any] = json.loads(data)
        fields = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        return cls(**fields)


def record_name(bucket: str, name: str, generation: str) -> str:
    """Fixed length and collision-free, whatever the object's name."""
    key = f"{bucket}\0{name}\0{generation}".encode("utf-8", "surrogatepass")
    return f"{bucket}/{hashlib.sha256(key).hexdigest()}.json"


class DeadLetters:
    def __init__(self, storage: Storage, bucket: str) -> None:
        self.storage = storage
        self.bucket = bucket

    def record(self, info: ObjectInfo, sink: str, attempts: int, error: str, first_failed: str) -> DeadLetter:
        letter = DeadLetter(
            bucket=info.bucket,
            name=displayable(info.name),
            generation=info.generation,
            sink=sink,
            attempts=attempts,
            error=error,
            first_failed=first_failed,
            dead_lettered=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        self.storage.write(
            self.bucket,
            record_name(info.bucket, info.name, info.generation),
            letter.to_json(),
            content_type="application/json",
        )
        return letter

    def list(self) -> Iterator[DeadLetter]:
        for info in self.storage.list(self.bucket):
            if not info.name.endswith(".json"):
                continue
            try:
                data, _ = self.storage.read(self.bucket, info.name)
                yield DeadLetter.from_json(data)
            except Exception:  # a record removed meanwhile, or not ours: skip it
                continue
