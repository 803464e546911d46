"""Erasure: every copy of an upload (or of a whole slide) removed, and a record that names nobody.

A file name may carry a patient's name, so the erasure record keeps only the SHA-256 of
what was asked, the counts and the time: enough to prove an erasure happened and to
match it to a request that names the file, nothing that names the person. Copies the
running identity cannot remove (older versions in a versioned bucket, events in the
platform's dead-letter queue) are returned as steps for an administrator instead of
being silently left behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bloodcell import names
from bloodcell.deadletters import DeadLetter
from bloodcell.errors import MalformedDocument, ObjectNotFound, TransientError
from bloodcell.results import Result, now_iso
from bloodcell.review.records import PREFIX as REVIEW_PREFIX
from bloodcell.review.verified import SUFFIX as VERIFIED_SUFFIX
from bloodcell.settings import Settings
from bloodcell.slides.ids import SlideIdError, check_slide_id, slide_of
from bloodcell.storage import Storage

log = logging.getLogger(__name__)

SCHEMA_VERSION = "1"
KIND = "bloodcell.erasure"
PREFIX = "_erasure/"  # in the result bucket, beside the review records: the audit trail


def digest(target: str) -> str:
    return hashlib.sha256(target.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class ErasureRecord:
    """What was erased, when, how many copies and how many steps were left to an administrator."""

    id: str
    erased_at: str
    scope: str  # "upload" or "slide"
    target_sha256: str
    removed: Mapping[str, int]
    admin_steps: int
    kind: str = KIND
    schema_version: str = SCHEMA_VERSION

    @property
    def name(self) -> str:
        stamp = "".join(c for c in self.erased_at if c.isdigit() or c == "T")
        return f"{PREFIX}{stamp}Z-{self.id}.json"

    def to_json(self) -> bytes:
        body = {
            "kind": self.kind,
            "schema_version": self.schema_version,
            "id": self.id,
            "erased_at": self.erased_at,
            "scope": self.scope,
            "target_sha256": self.target_sha256,
            "removed": dict(sorted(self.removed.items())),
            "admin_steps": self.admin_steps,
        }
        return json.dumps(body, indent=2).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes | str) -> ErasureRecord:
        raw: Any = json.loads(data)
        if not isinstance(raw, dict) or raw.get("kind") != KIND:
            raise MalformedDocument("not a bloodcell erasure record")
        return cls(
            id=str(raw["id"]),
            erased_at=str(raw["erased_at"]),
            scope=str(raw["scope"]),
            target_sha256=str(raw["target_sha256"]),
            removed={str(k): int(v) for k, v in raw["removed"].items()},
            admin_steps=int(raw["admin_steps"]),
            schema_version=str(raw.get("schema_version", SCHEMA_VERSION)),
        )


@dataclass
class Erasure:
    """One erasure in progress: what went, and what an administrator still has to do."""

    settings: Settings
    storage: Storage
    archive: Storage
    removed: Counter[str] = field(default_factory=Counter)
    admin_steps: list[str] = field(default_factory=list)

    def remove(self, role: str, store: Storage, bucket: str, name: str) -> None:
        """Every version where the store keeps versions and the identity may; else an admin step."""
        purge = getattr(store, "purge_versions", None)
        try:
            count = purge(bucket, name) if purge is not None else int(store.delete(bucket, name))
        except TransientError:
            raise
        except ObjectNotFound:  # no such bucket: nothing of it to remove
            count = 0
        except Exception as exc:  # refused (a role without delete on old versions): say what to do
            count = int(store.delete(bucket, name)) if purge is not None else 0
            self.admin_steps.append(_admin_step(store, bucket, name, exc))
        if count:
            self.removed[role] += count

    def uploads(self, target: str) -> tuple[str, set[str]]:
        """The upload names ``target`` stands for: itself, and a slide's every image."""
        found = {target}
        try:
            slide = check_slide_id(target)
        except SlideIdError:
            return "upload", found
        prefix = slide + "/"
        settings = self.settings
        found.update(i.name for i in self.storage.list(settings.upload_bucket, prefix))
        for info in self.storage.list(settings.result_bucket, prefix):
            found.add(info.name.removesuffix(names.RESULT_SUFFIX))
        for info in self.storage.list(settings.tensor_bucket, prefix):
            found.add(info.name.removesuffix(names.TENSOR_SUFFIX))
        return ("slide" if len(found) > 1 else "upload"), found

    def upload(self, name: str) -> None:
        settings = self.settings
        result_key = names.result_name(name)
        try:
            data, _ = self.storage.read(settings.result_bucket, result_key)
            location = Result.from_json(data).archive.location
        except Exception:  # none, or unreadable: the archive listing still finds its copies
            location = None
        if location:
            for key in (location, location + ".json", location + VERIFIED_SUFFIX):
                self.remove("archive", self.archive, settings.archive_bucket, key)
        self.remove("results", self.storage, settings.result_bucket, result_key)
        self.remove("tensors", self.storage, settings.tensor_bucket, names.tensor_name(name))
        self.remove("uploads", self.storage, settings.upload_bucket, name)

    def review_records(self, scope: str, target: str, uploads: set[str]) -> None:
        from bloodcell.review.records import ReviewRecord

        slides = {target} if scope == "slide" else {s for n in uploads if (s := slide_of(n))}
        for slide in slides:
            prefix = f"{REVIEW_PREFIX}{slide}/"
            for info in list(self.storage.list(self.settings.result_bucket, prefix)):
                if scope == "upload":
                    try:
                        record = ReviewRecord.from_json(self.storage.read(info.bucket, info.name)[0])
                    except Exception:
                        continue
                    if record.cell is None or record.cell.upload_name not in uploads:
                        continue
                self.remove("review", self.storage, info.bucket, info.name)

    def reclassifications(self, scope: str, target: str, uploads: set[str]) -> None:
        """The results a reclassification replaced, kept in the slide's history (calibration.rerun)."""
        from bloodcell.calibration.rerun import erasure_plan

        slides = {target} if scope == "slide" else {s for n in uploads if (s := slide_of(n))}
        for slide in slides:
            wanted = None if scope == "slide" else uploads
            for name, trimmed in erasure_plan(self.storage, self.settings, slide, wanted):
                self.remove("reclassify", self.storage, self.settings.result_bucket, name)  # every version
                if trimmed is not None:  # the other cells' history stays
                    self.storage.write(
                        self.settings.result_bucket, name, trimmed, content_type="application/json"
                    )

    def archive_copies(self, uploads: set[str]) -> None:
        """Every version's image, result and verified label: keys end in ``/<generation>/<name>``."""
        settings = self.settings
        prefix = settings.archive_prefix
        for info in list(self.archive.list(settings.archive_bucket, prefix)):
            parts = info.name[len(prefix) :].split("/", 3)
            if len(parts) < 4:
                continue
            stored = parts[3]
            base = stored.removesuffix(VERIFIED_SUFFIX) if stored.endswith(VERIFIED_SUFFIX) else stored
            if base in uploads or base.removesuffix(".json") in uploads:
                self.remove("archive", self.archive, settings.archive_bucket, info.name)

    def dead_letters(self, uploads: set[str]) -> None:
        settings = self.settings
        if settings.storage != "local":
            self.admin_steps.append(
                "dead letters of this upload may wait in the platform's queue (Cloud Run: the "
                "`dead-letters` Pub/Sub subscription, kept 7 days; Knative: the `dead-letters` "
                "service's log): purge them there, e.g. `gcloud pubsub subscriptions seek "
                "<prefix>-dead-letters --time=$(date -u +%FT%TZ)`"
            )
            return
        wanted = {names.displayable(n) for n in uploads}
        wanted |= {names.displayable(names.tensor_name(n)) for n in uploads}
        for info in list(self.storage.list(settings.dead_letter_bucket)):
            try:
                letter = DeadLetter.from_json(self.storage.read(info.bucket, info.name)[0])
            except Exception:
                continue
            if letter.name in wanted:
                self.remove("dead-letters", self.storage, info.bucket, info.name)


def _admin_step(store: Storage, bucket: str, name: str, exc: Exception) -> str:
    kind = type(store).__name__
    if kind == "S3Storage":
        command = (
            f"aws s3api list-object-versions --bucket {bucket} --prefix '{name}' (then delete each VersionId)"
        )
    elif kind == "GcsStorage":
        command = f"gcloud storage rm --all-versions 'gs://{bucket}/{name}'"
    else:
        command = f"remove {bucket}/{name} by hand"
    return f"older versions were not removed ({type(exc).__name__}); an administrator runs: {command}"


def erase(
    target: str, settings: Settings, storage: Storage, archive: Storage
) -> tuple[ErasureRecord, list[str]]:
    """Remove every copy of ``target`` (an upload name or a slide id); write and return the record."""
    job = Erasure(settings, storage, archive)
    scope, uploads = job.uploads(target)
    for name in sorted(uploads):
        job.upload(name)
    job.review_records(scope, target, uploads)
    job.reclassifications(scope, target, uploads)
    job.archive_copies(uploads)
    job.dead_letters(uploads)
    record = ErasureRecord(
        id=uuid.uuid4().hex,
        erased_at=now_iso(),
        scope=scope,
        target_sha256=digest(target),
        removed=dict(job.removed),
        admin_steps=len(job.admin_steps),
    )
    storage.write(settings.result_bucket, record.name, record.to_json(), content_type="application/json")
    log.info(
        "erasure id=%s scope=%s target_sha256=%s removed=%d admin_steps=%d",
        record.id,
        scope,
        record.target_sha256,
        sum(job.removed.values()),
        len(job.admin_steps),
    )
    return record, job.admin_steps


def records(storage: Storage, settings: Settings) -> Iterable[ErasureRecord]:
    for info in storage.list(settings.result_bucket, PREFIX):
        yield ErasureRecord.from_json(storage.read(info.bucket, info.name)[0])
