"""The two pipeline steps as plain functions of storage, free of any HTTP or event framework.

Each step is idempotent, keyed on the upload's bucket/name/generation: a
redelivered event finds its output already written and does nothing, so
at-least-once delivery yields exactly one result and one archive copy.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal

import numpy as np

from bloodcell import metrics, names, results, tensorio
from bloodcell.calibration.registry import Registry
from bloodcell.calibration.runtime import ActiveModel, Predictor
from bloodcell.cellcrop import cell_tensor
from bloodcell.contract import CONTRACT
from bloodcell.errors import ObjectNotFound, RejectedInput, TransientError
from bloodcell.events import ObjectRef
from bloodcell.imaging import ImageLimits, decode_image
from bloodcell.model import Classifier, default_model_dir, load_classifier
from bloodcell.results import ArchiveStatus, Result, Source
from bloodcell.settings import Settings
from bloodcell.storage import (
    ObjectInfo,
    Storage,
    UnreadableObject,
    check_object_name,
    open_archive,
    open_storage,
)

log = logging.getLogger(__name__)
_EPOCH = datetime.fromtimestamp(0, UTC)


OutcomeStatus = Literal["preprocessed", "classified", "rejected", "duplicate", "stale", "gone", "ignored"]


@dataclass(frozen=True)
class Outcome:
    """What one event did: logged as one line, and asserted on in tests."""

    status: OutcomeStatus
    detail: str = ""
    unfamiliar: bool | None = None  # a classified result the model found unlike its training data


def make_tensor(data: bytes, limits: ImageLimits) -> np.ndarray:
    """Upload bytes to the model's input: the one path used by preprocess, classify and training."""
    return cell_tensor(decode_image(data, limits))


def classify_bytes(data: bytes, source: Source, classifier: Predictor, limits: ImageLimits) -> Result:
    """Both steps in one process, with the functions' own rules: ``bloodcell classify`` and tools."""
    stamps = {"uploaded": source.uploaded or ""}
    started = time.perf_counter()
    try:
        tensor = make_tensor(data, limits)
    except RejectedInput as exc:
        timings = {"preprocess": (time.perf_counter() - started) * 1000}
        return Result.rejected(
            source, exc.reason, "preprocess", timings, stamps | {"rejected": results.now_iso()}
        )
    timings = {"preprocess": (time.perf_counter() - started) * 1000}
    stamps["preprocessed"] = results.now_iso()
    started = time.perf_counter()
    try:
        prediction = classifier.predict(tensor)
    except RejectedInput as exc:
        stamps["rejected"] = results.now_iso()
        return Result.rejected(source, exc.reason, "predict", timings, stamps, classifier.info)
    timings["inference"] = (time.perf_counter() - started) * 1000
    stamps["classified"] = results.now_iso()
    return Result.classified(source, prediction, classifier.info, timings, stamps)


def _source(info: ObjectInfo, data: bytes | None = None) -> Source:
    """The upload a result will speak of; its digest only once its bytes were read."""
    return Source(
        bucket=info.bucket,
        name=info.name,
        generation=info.generation,
        sha256=None if data is None else hashlib.sha256(data).hexdigest(),
        size=info.size if data is None else len(data),
        uploaded=results.iso(info.updated),
        uploader=info.metadata.get(results.META_UPLOADER),
    )


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        storage: Storage | None = None,
        archive: Storage | None = None,
        classifier: Callable[[], Predictor] | None = None,
    ) -> None:
        self.settings = settings
        self.storage = storage or open_storage(settings)
        self._archive = archive
        self._classifier = classifier
        self._active: ActiveModel | None = None
        self.limits = ImageLimits(max_bytes=settings.max_upload_bytes, max_pixels=settings.max_image_pixels)

    @property
    def archive(self) -> Storage:
        if self._archive is None:
            self._archive = open_archive(self.settings)
        return self._archive

    @property
    def base_classifier(self) -> Classifier:
        return load_classifier(self.settings.model_dir or default_model_dir(), self.settings.model_threads)

    @property
    def classifier(self) -> Predictor:
        """The active model: the registry's pointer is stat'ed once per call, so once per event."""
        if self._classifier is not None:
            return self._classifier()
        if self._active is None:
            self._active = ActiveModel(
                self.base_classifier, Registry(self.storage, self.settings.model_bucket)
            )
        return self._active.current()

    # ---- idempotency: shared with the event source's start-up reconciliation ----

    def _result_for(self, upload_name: str, generation: str) -> ObjectInfo | None:
        info = self.storage.stat(self.settings.result_bucket, names.result_name(upload_name))
        if info and info.metadata.get(results.META_SOURCE_GENERATION) == generation:
            return info
        return None

    def upload_done(self, upload: ObjectInfo) -> bool:
        """True when this upload version already has a tensor or a result."""
        if self._result_for(upload.name, upload.generation):
            return True
        if not names.processable(upload.name):
            return False
        tensor = self.storage.stat(self.settings.tensor_bucket, names.tensor_name(upload.name))
        return bool(tensor and tensor.metadata.get(results.META_SOURCE_GENERATION) == upload.generation)

    def tensor_done(self, tensor: ObjectInfo) -> bool:
        """True when the tensor's upload has a final result (archive copy included)."""
        if not tensor.metadata:  # listings may omit metadata
            tensor = self.storage.stat(tensor.bucket, tensor.name) or tensor
        source = self._proven_source(tensor)
        if source is None:
            return True  # a stray tensor: nothing will ever be done with it
        found = self._result_for(source.name, source.generation)
        return bool(found and found.metadata.get(results.META_ARCHIVE) != ArchiveStatus.PENDING)

    # ---- preprocess ----

    def preprocess(self, ref: ObjectRef) -> Outcome:
        if ref.bucket != self.settings.upload_bucket:
            return Outcome("ignored", f"bucket {ref.bucket} is not the upload bucket")
        try:
            check_object_name(ref.name)
        except RejectedInput as exc:
            return Outcome("ignored", exc.reason)  # no store can hold it: no upload to answer
        if problem := names.name_problem(ref.name):
            return self._reject_name(ref, problem)
        if ref.generation and self._upload_done_at(ref.name, ref.generation):
            return Outcome("duplicate")
        started = time.perf_counter()
        try:
            data, info = self.storage.read(ref.bucket, ref.name, max_bytes=self.limits.max_bytes)
        except ObjectNotFound:
            return Outcome("gone", "object was deleted before it was processed")
        except UnreadableObject as exc:  # too large, or no regular file (a symlink, a FIFO)
            return self._refuse_unread(ref, exc, started)
        if ref.generation and info.generation != ref.generation:
            return Outcome("stale", f"superseded by generation {info.generation}")
        if not ref.generation and self.upload_done(info):
            return Outcome("duplicate")
        source = _source(info, data)
        try:
            tensor = make_tensor(data, self.limits)
        except RejectedInput as exc:
            if superseded := self._superseded(source):
                return Outcome("stale", superseded)
            return self._reject_upload(source, exc.reason, started)
        elapsed = (time.perf_counter() - started) * 1000
        if superseded := self._superseded(source):
            return Outcome("stale", superseded)
        meta = source.metadata() | {
            results.META_CONTRACT: CONTRACT.version,
            results.META_PREPROCESS_MS: f"{elapsed:.2f}",
            results.META_PREPROCESSED: results.now_iso(),
        }
        self.storage.write(
            self.settings.tensor_bucket,
            names.tensor_name(info.name),
            tensorio.dump(tensor),
            content_type="application/x-npy",
            metadata=meta,
        )
        return Outcome("preprocessed", f"{elapsed:.1f} ms")

    def _refuse_unread(self, ref: ObjectRef, exc: UnreadableObject, started: float) -> Outcome:
        """An upload over MAX_UPLOAD_BYTES, or no regular file: answered from its metadata,
        its bytes never held."""
        info = exc.info
        if ref.generation and info.generation != ref.generation:
            return Outcome("stale", f"superseded by generation {info.generation}")
        if not ref.generation and self.upload_done(info):
            return Outcome("duplicate")
        return self._reject_upload(_source(info), exc.reason, started)

    def _reject_name(self, ref: ObjectRef, problem: str) -> Outcome:
        """An upload whose name cannot carry derived names still gets its one answer, a
        ``rejected`` result under the collision-free name ``names.result_name`` gives it."""
        info = self.storage.stat(ref.bucket, ref.name)
        if info is None:
            return Outcome("gone", "object was deleted before it was processed")
        if ref.generation and info.generation != ref.generation:
            return Outcome("stale", f"superseded by generation {info.generation}")
        if self._result_for(ref.name, info.generation):
            return Outcome("duplicate")
        source = replace(_source(info), name=names.displayable(info.name))
        return self._reject_upload(source, problem, None, names.result_name(ref.name))

    def _reject_upload(
        self, source: Source, reason: str, started: float | None, result_name: str | None = None
    ) -> Outcome:
        """Preprocess's one answer for an unusable upload: a ``rejected`` result, then acknowledge."""
        timings = {} if started is None else {"preprocess": (time.perf_counter() - started) * 1000}
        stamps = {"uploaded": source.uploaded or "", "rejected": results.now_iso()}
        self._write_result(Result.rejected(source, reason, "preprocess", timings, stamps), result_name)
        return Outcome("rejected", reason)

    def _superseded(self, source: Source) -> str | None:
        """A newer version of the upload arrived while this one was being processed.

        Its output would replace the newer version's (whose events may all be
        delivered already), leaving a result for an image that is no longer there.
        """
        current = self.storage.stat(source.bucket, source.name)
        if current is not None and current.generation != source.generation:
            return f"superseded by generation {current.generation} while being processed"
        return None

    def _upload_done_at(self, name: str, generation: str) -> bool:
        return self.upload_done(ObjectInfo(self.settings.upload_bucket, name, generation, 0, _EPOCH))

    # ---- predict ----

    def _proven_source(self, tensor: ObjectInfo) -> Source | None:
        """The upload a tensor was made from, when its metadata proves it: written by
        preprocess for an upload of our upload bucket, under that upload's tensor name."""
        source = Source.from_metadata(tensor.metadata)
        if (
            source is None
            or source.bucket != self.settings.upload_bucket
            or names.upload_of_tensor(tensor.name) != source.name
        ):
            return None
        return source

    def predict(self, ref: ObjectRef) -> Outcome:
        if ref.bucket != self.settings.tensor_bucket:
            return Outcome("ignored", f"bucket {ref.bucket} is not the tensor bucket")
        try:
            check_object_name(ref.name)  # exactly the checks preprocess makes of upload names
        except RejectedInput as exc:
            return Outcome("ignored", exc.reason)
        if names.upload_of_tensor(ref.name) is None:
            return Outcome("ignored", "not the tensor of an upload preprocess could process")
        try:
            data, info = self.storage.read(ref.bucket, ref.name)
        except ObjectNotFound:
            return Outcome("gone", "tensor was deleted before it was classified")
        if ref.generation and info.generation != ref.generation:
            return Outcome("stale", f"superseded by generation {info.generation}")
        source = self._proven_source(info)
        if source is None:
            # Not written by preprocess: it must neither replace an upload's result nor
            # invent one for an upload that never existed.
            log.warning("predict: ignoring tensor %s: it does not prove its source", names.escape(ref.name))
            return Outcome("ignored", "tensor carries no valid source metadata (not written by preprocess)")
        upload = self.storage.stat(source.bucket, source.name)
        if upload is None:
            return Outcome("gone", "upload was deleted before it was classified")
        if upload.generation != source.generation:
            return Outcome("stale", f"upload superseded by generation {upload.generation}")
        existing = self._result_for(source.name, source.generation)
        if existing and existing.metadata.get(results.META_ARCHIVE) != ArchiveStatus.PENDING:
            return Outcome("duplicate")
        if existing:
            return self._retry_archive(existing)
        stamps = {
            "uploaded": source.uploaded or "",
            "preprocessed": info.metadata.get(results.META_PREPROCESSED, ""),
        }
        timings = {"preprocess": float(info.metadata.get(results.META_PREPROCESS_MS, "0") or 0)}
        classifier = self.classifier
        started = time.perf_counter()
        try:
            prediction = classifier.predict(tensorio.load_stored(data, info.metadata))
        except RejectedInput as exc:
            timings["predict"] = (time.perf_counter() - started) * 1000
            if superseded := self._superseded(source):
                return Outcome("stale", superseded)
            stamps["rejected"] = results.now_iso()
            self._write_result(
                Result.rejected(source, exc.reason, "predict", timings, stamps, classifier.info)
            )
            return Outcome("rejected", exc.reason)
        timings["inference"] = (time.perf_counter() - started) * 1000
        stamps["classified"] = results.now_iso()
        result = Result.classified(source, prediction, classifier.info, timings, stamps)
        # no separate check that the upload is unchanged: the archive copy reads it at its
        # generation, and publishes nothing if it changed or vanished meanwhile
        if unarchived := self._archive_and_write(result):
            return unarchived
        calibration = f" calibration={classifier.info.calibration}" if classifier.info.calibration else ""
        return Outcome(
            "classified", f"{prediction.label} {prediction.confidence:.3f}{calibration}", result.unfamiliar
        )

    def _retry_archive(self, existing: ObjectInfo) -> Outcome:
        data, _ = self.storage.read(existing.bucket, existing.name)
        result = Result.from_json(data)
        if unarchived := self._archive_and_write(result):
            return unarchived
        metrics.count_archive(completed=True)
        return Outcome("classified", "archive copy completed on retry", result.unfamiliar)

    def _archive_and_write(self, result: Result) -> Outcome | None:
        """Archive first; if the archive is down, publish the result as pending and retry later.

        An outcome (gone, stale) when the upload vanished or changed before its image could
        be archived: then no result is published, since ``archive: stored`` would name an
        image never stored, or describe bytes no longer there.
        """
        try:
            stored = self._archive_copy(result)
        except TransientError:
            self._write_result(result.with_archive(ArchiveStatus.PENDING))
            metrics.count_archive(completed=False)
            raise
        if isinstance(stored, Outcome):
            return stored
        document, body = stored
        self._write_result(document, body=body)
        return None

    def archive_key(self, result: Result) -> str:
        source = result.source
        day = (source.uploaded or results.now_iso())[:10]
        generation = source.generation.replace("/", "_")
        return f"{self.settings.archive_prefix}{day}/{result.label}/{generation}/{source.name}"

    def _archive_copy(self, result: Result) -> tuple[Result, bytes] | Outcome:
        """Image and result side by side, by date and label: ready to be a training folder.

        The stored result and its JSON, which the result object repeats byte for byte."""
        source = result.source
        key = self.archive_key(result)
        try:
            image, info = self.storage.read(source.bucket, source.name)
        except ObjectNotFound:
            log.warning("archive: %s vanished before archiving", names.escape(source.name))
            return Outcome("gone", "upload deleted before it was archived")
        if info.generation != source.generation:
            log.warning("archive: %s changed before archiving", names.escape(source.name))
            return Outcome("stale", f"superseded by generation {info.generation} while being processed")
        content_type = info.content_type or "application/octet-stream"
        self.archive.write(self.settings.archive_bucket, key, image, content_type=content_type)
        stored = result.with_archive(ArchiveStatus.STORED, key)
        body = stored.to_json()
        self.archive.write(self.settings.archive_bucket, key + ".json", body, content_type="application/json")
        return stored, body

    def _write_result(self, result: Result, name: str | None = None, body: bytes | None = None) -> None:
        self.storage.write(
            self.settings.result_bucket,
            name or names.result_name(result.source.name),
            result.to_json() if body is None else body,
            content_type="application/json",
            metadata=result.metadata(),
        )
