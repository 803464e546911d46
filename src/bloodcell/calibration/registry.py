"""The model registry: a lab's calibrations, the pointer to the active one, and the audit trail.

One bucket (``MODEL_BUCKET``) on whichever storage the pipeline uses, so a folder bucket
locally and a GCS or S3 bucket when deployed; changing the model is writing an object, never
rebuilding an image. Layout:

- ``calibrations/<version>/calibration.npz``: the head and the lab's class means;
- ``calibrations/<version>/version.json``: who made it, when, from which cells, for which
  base model, its evaluation and the gate's decision (written last: a version without it
  does not exist);
- ``active.json``: the pointer, naming the active version (``null``: the shipped model) and
  the versions active before it, most recent last, which is what ``rollback`` returns to;
- ``audit/<time>-<random>.json``: one object per action, never rewritten, so concurrent
  writers cannot lose each other's records.

Names of people, slides and folders may be in any script: they live only in JSON bodies
(UTF-8), never in object names or metadata, which stay ASCII.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from bloodcell.calibration import documents
from bloodcell.calibration.core import Calibration
from bloodcell.errors import MalformedDocument, ObjectNotFound, RejectedInput
from bloodcell.results import now_iso
from bloodcell.storage import ObjectInfo, Storage

SCHEMA_VERSION = documents.SCHEMA_VERSION
POINTER = "active.json"
PREFIX = "calibrations/"
AUDIT = "audit/"
SHIPPED = "shipped"  # what `activate` calls the model without calibration


def new_version() -> str:
    """Sortable by creation time, unique without coordination, ASCII whatever the lab's language."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


@dataclass(frozen=True)
class VersionRecord:
    version: str
    model_name: str
    model_version: str
    created_at: str
    created_by: str
    source: str  # "labelled folder", "slides"
    origin: str  # the folder's path, or the slides' names joined
    counts: Mapping[str, int]
    cells: tuple[str, ...]  # which cells: file paths or archive keys
    evaluation: Mapping[str, Any]
    decision: Mapping[str, Any]
    schema_version: str = SCHEMA_VERSION

    def to_json(self) -> bytes:
        return documents.dump(asdict(self))

    @classmethod
    def from_json(cls, data: bytes) -> VersionRecord:
        return documents.build(cls, data, "calibration version", ("cells",))


@dataclass(frozen=True)
class Pointer:
    version: str | None  # None: the shipped model, uncalibrated
    history: tuple[str | None, ...] = ()  # earlier active versions, most recent last
    changed_at: str = ""
    changed_by: str = ""
    schema_version: str = SCHEMA_VERSION

    def to_json(self) -> bytes:
        return documents.dump(asdict(self))

    @classmethod
    def from_json(cls, data: bytes) -> Pointer:
        body = documents.load(data, "active pointer")
        return cls(
            body.get("version"),
            tuple(body.get("history", ())),
            str(body.get("changed_at", "")),
            str(body.get("changed_by", "")),
        )


@dataclass(frozen=True)
class AuditEntry:
    action: str  # calibrate, promote, activate, rollback, qc
    version: str | None
    previous: str | None
    by: str
    at: str
    model_name: str = ""
    model_version: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)
    schema_version: str = SCHEMA_VERSION

    def to_json(self) -> bytes:
        return documents.dump(asdict(self))


# called after every change of the active model (activate, promote, rollback): the QC panel's hook
OnChange = Callable[["Registry", str, str], None]  # (registry, action, by)


class Registry:
    def __init__(self, storage: Storage, bucket: str, on_change: OnChange | None = None) -> None:
        self.storage = storage
        self.bucket = bucket
        self.on_change = on_change

    # ---- versions ----

    def add(self, record: VersionRecord, calibration: Calibration) -> None:
        base = f"{PREFIX}{record.version}/"
        self.storage.write(self.bucket, base + "calibration.npz", calibration.to_bytes(), if_absent=True)
        self.storage.write(
            self.bucket,
            base + "version.json",
            record.to_json(),
            content_type="application/json",
            if_absent=True,
        )

    def record(self, version: str) -> VersionRecord:
        try:
            data, _ = self.storage.read(self.bucket, f"{PREFIX}{version}/version.json")
        except ObjectNotFound as exc:
            raise RejectedInput(f"no calibration version {version!r} in the registry") from exc
        return VersionRecord.from_json(data)

    def calibration(self, version: str) -> Calibration:
        data, _ = self.storage.read(self.bucket, f"{PREFIX}{version}/calibration.npz")
        return Calibration.from_bytes(data)

    def versions(self) -> list[VersionRecord]:
        found = [
            info.name
            for info in self.storage.list(self.bucket, PREFIX)
            if info.name.endswith("/version.json")
        ]
        out = []
        for name in sorted(found):
            try:
                out.append(VersionRecord.from_json(self.storage.read(self.bucket, name)[0]))
            except (MalformedDocument, ObjectNotFound):
                continue
        return out

    # ---- the pointer ----

    def pointer(self) -> tuple[Pointer, ObjectInfo | None]:
        try:
            data, info = self.storage.read(self.bucket, POINTER)
        except ObjectNotFound:
            return Pointer(None), None
        return Pointer.from_json(data), info

    def pointer_generation(self) -> str | None:
        """The one cheap call per event: has the pointer changed since it was last read?"""
        info = self.storage.stat(self.bucket, POINTER)
        return None if info is None else info.generation

    def activate(self, version: str | None, by: str, action: str = "activate") -> Pointer:
        """Point at ``version`` (None or ``shipped``: no calibration); the next event uses it."""
        version = None if version == SHIPPED else version
        if version is not None:
            self.record(version)  # refuses a version that does not exist
        current, _ = self.pointer()
        history = current.history
        if current.version != version:
            history = (*current.history, current.version)
        pointer = Pointer(version, history, now_iso(), by)
        self._write_pointer(pointer)
        self.audit(AuditEntry(action, version, current.version, by, pointer.changed_at))
        self._changed(action, by)
        return pointer

    def rollback(self, by: str) -> Pointer:
        """Back to the version active before this one (the shipped model when there was none)."""
        current, _ = self.pointer()
        if current.version is None and not current.history:
            raise RejectedInput("nothing to roll back: the shipped model is active and always was")
        previous = current.history[-1] if current.history else None
        pointer = Pointer(previous, current.history[:-1], now_iso(), by)
        self._write_pointer(pointer)
        self.audit(AuditEntry("rollback", previous, current.version, by, pointer.changed_at))
        self._changed("rollback", by)
        return pointer

    def _changed(self, action: str, by: str) -> None:
        if self.on_change is not None:
            self.on_change(self, action, by)

    def _write_pointer(self, pointer: Pointer) -> None:
        self.storage.write(self.bucket, POINTER, pointer.to_json(), content_type="application/json")

    # ---- the audit trail ----

    def audit(self, entry: AuditEntry) -> None:
        # microseconds: the trail lists in the order the actions happened (each takes far longer)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"{AUDIT}{stamp}-{secrets.token_hex(4)}.json"
        self.storage.write(
            self.bucket, name, entry.to_json(), content_type="application/json", if_absent=True
        )

    def audit_trail(self) -> list[dict[str, Any]]:
        names = sorted(info.name for info in self.storage.list(self.bucket, AUDIT))
        out = []
        for name in names:
            try:
                out.append(documents.load(self.storage.read(self.bucket, name)[0], "audit entry"))
            except (MalformedDocument, ObjectNotFound):
                continue
        return out
