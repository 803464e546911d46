"""The result: the one document every consumer reads (web app, CSV, archive, ``classify --json``).

It is a typed value inside the program and JSON only at its two edges:
``Result.to_json()`` where it is written, ``Result.from_json()`` where it is read.
Its shape is versioned by ``SCHEMA_VERSION`` and documented in the README. Object
metadata on results and tensors repeats the few fields the pipeline needs for
idempotency, so "is this upload already done?" is one ``stat`` and not a read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from bloodcell.errors import MalformedDocument
from bloodcell.model import ModelInfo, Prediction

# 2 adds ood_score and unfamiliar (how unlike the training data the cell is); 1 is still read
SCHEMA_VERSION = "2"
READABLE_VERSIONS = ("1", SCHEMA_VERSION)

# object-metadata keys shared by tensors and results
META_SOURCE_BUCKET = "source-bucket"
META_SOURCE_NAME = "source-name"
META_SOURCE_GENERATION = "source-generation"
META_SOURCE_SHA256 = "source-sha256"
META_SOURCE_SIZE = "source-size"
META_UPLOADED = "uploaded"
META_UPLOADER = "uploader"
META_CONTRACT = "contract-version"
META_PREPROCESS_MS = "preprocess-ms"
META_PREPROCESSED = "preprocessed"
META_STATUS = "status"
META_ARCHIVE = "archive"

Stage = Literal["preprocess", "predict"]


class Status(StrEnum):
    CLASSIFIED = "classified"
    REJECTED = "rejected"


class ArchiveStatus(StrEnum):
    STORED = "stored"
    PENDING = "pending"
    NONE = "none"


def now_iso() -> str:
    return iso(datetime.now(UTC))


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedDocument(f"{what} must be an object, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class Source:
    """The upload a result speaks of: the key of all idempotency."""

    bucket: str
    name: str
    generation: str
    sha256: str | None = None
    size: int | None = None
    uploaded: str | None = None
    uploader: str | None = None

    def metadata(self) -> dict[str, str]:
        meta = {
            META_SOURCE_BUCKET: self.bucket,
            META_SOURCE_NAME: self.name,
            META_SOURCE_GENERATION: self.generation,
        }
        if self.sha256:
            meta[META_SOURCE_SHA256] = self.sha256
        if self.size is not None:
            meta[META_SOURCE_SIZE] = str(self.size)
        if self.uploaded:
            meta[META_UPLOADED] = self.uploaded
        if self.uploader:
            meta[META_UPLOADER] = self.uploader
        return meta

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str]) -> Source | None:
        """None when the object does not say which upload it came from."""
        try:
            size = meta.get(META_SOURCE_SIZE)
            return cls(
                bucket=meta[META_SOURCE_BUCKET],
                name=meta[META_SOURCE_NAME],
                generation=meta[META_SOURCE_GENERATION],
                sha256=meta.get(META_SOURCE_SHA256),
                size=int(size) if size else None,
                uploaded=meta.get(META_UPLOADED),
                uploader=meta.get(META_UPLOADER),
            )
        except (KeyError, ValueError):
            return None

    @classmethod
    def from_dict(cls, raw: object) -> Source:
        data = _mapping(raw, "source")
        try:
            size = data.get("size")
            return cls(
                bucket=str(data["bucket"]),
                name=str(data["name"]),
                generation=str(data["generation"]),
                sha256=data.get("sha256"),
                size=None if size is None else int(size),
                uploaded=data.get("uploaded"),
                uploader=data.get("uploader"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedDocument(f"source is incomplete: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.uploader is None:
            del data["uploader"]  # schema 1 documents written before sign-in have no uploader
        return data


@dataclass(frozen=True)
class ModelRef:
    """The exact model that answered: its name, version and, when a lab calibrated it, the calibration."""

    name: str
    version: str
    calibration: str | None = None

    @classmethod
    def of(cls, info: ModelInfo) -> ModelRef:
        return cls(info.name, info.version, info.calibration)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelRef:
        calibration = data.get("calibration")
        return cls(str(data["name"]), str(data["version"]), None if calibration is None else str(calibration))


@dataclass(frozen=True)
class Archive:
    status: ArchiveStatus = ArchiveStatus.NONE
    location: str | None = None


@dataclass(frozen=True)
class Result:
    """One upload's answer; ``replace(result, archive=...)`` makes a changed copy."""

    status: Status
    source: Source
    label: str | None = None
    confidence: float | None = None
    uncertain: bool | None = None
    probabilities: Mapping[str, float] | None = None
    other_probability: float | None = None
    ood_score: float | None = None
    unfamiliar: bool | None = None
    reason: str | None = None
    rejected_by: Stage | None = None
    model: ModelRef | None = None
    timings_ms: Mapping[str, float] = field(default_factory=dict)
    timestamps: Mapping[str, str] = field(default_factory=dict)
    archive: Archive = Archive()
    schema_version: str = SCHEMA_VERSION

    @classmethod
    def classified(
        cls,
        source: Source,
        prediction: Prediction,
        model: ModelInfo,
        timings: Mapping[str, float],
        timestamps: Mapping[str, str],
    ) -> Result:
        other = prediction.other_probability
        return cls(
            status=Status.CLASSIFIED,
            source=source,
            label=prediction.label,
            confidence=round(prediction.confidence, 6),
            uncertain=prediction.uncertain,
            probabilities={k: round(v, 6) for k, v in prediction.probabilities.items()},
            other_probability=None if other is None else round(other, 6),
            ood_score=prediction.ood_score,
            unfamiliar=None if prediction.ood_score is None else prediction.unfamiliar,
            model=ModelRef.of(model),
            timings_ms={k: round(v, 2) for k, v in timings.items()},
            timestamps=dict(timestamps),
        )

    @classmethod
    def rejected(
        cls,
        source: Source,
        reason: str,
        stage: Stage,
        timings: Mapping[str, float],
        timestamps: Mapping[str, str],
        model: ModelInfo | None = None,
    ) -> Result:
        return cls(
            status=Status.REJECTED,
            source=source,
            reason=reason,
            rejected_by=stage,
            model=None if model is None else ModelRef.of(model),
            timings_ms={k: round(v, 2) for k, v in timings.items()},
            timestamps=dict(timestamps),
        )

    @property
    def is_classified(self) -> bool:
        return self.status is Status.CLASSIFIED

    @property
    def finished_at(self) -> str | None:
        return self.timestamps.get("classified") or self.timestamps.get("rejected")

    def with_archive(self, status: ArchiveStatus, location: str | None = None) -> Result:
        return replace(self, archive=Archive(status, location))

    # ---- the JSON edge ----

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "schema_version": self.schema_version,
            "status": str(self.status),
            "source": self.source.to_dict(),
            "label": self.label,
            "confidence": self.confidence,
            "uncertain": self.uncertain,
            "probabilities": None if self.probabilities is None else dict(self.probabilities),
            "other_probability": self.other_probability,
            "ood_score": self.ood_score,
            "unfamiliar": self.unfamiliar,
            "reason": self.reason,
            "model": None if self.model is None else asdict(self.model),
            "timings_ms": dict(self.timings_ms),
            "timestamps": dict(self.timestamps),
            "archive": {"status": str(self.archive.status), "location": self.archive.location},
        }
        if self.rejected_by is not None:
            data["rejected_by"] = self.rejected_by
        return data

    def to_json(self, indent: int | None = 2) -> bytes:
        """UTF-8 JSON; ``indent=None`` gives the one-line form of JSON Lines output."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_dict(cls, raw: object) -> Result:
        data = _mapping(raw, "result")
        version = data.get("schema_version")
        if version not in READABLE_VERSIONS:
            raise MalformedDocument(f"result schema version {version!r} is not one of {READABLE_VERSIONS}")
        try:
            model = data.get("model")
            archive = _mapping(data.get("archive") or {}, "archive")
            probabilities = data.get("probabilities")
            other = data.get("other_probability")
            ood_score = data.get("ood_score")
            unfamiliar = data.get("unfamiliar")
            confidence = data.get("confidence")
            stage = data.get("rejected_by")
            if stage not in (None, "preprocess", "predict"):
                raise ValueError(f"rejected_by {stage!r}")
            return cls(
                status=Status(data["status"]),
                source=Source.from_dict(data.get("source")),
                label=data.get("label"),
                confidence=None if confidence is None else float(confidence),
                uncertain=None if data.get("uncertain") is None else bool(data["uncertain"]),
                probabilities=None
                if probabilities is None
                else {str(k): float(v) for k, v in _mapping(probabilities, "probabilities").items()},
                other_probability=None if other is None else float(other),
                ood_score=None if ood_score is None else float(ood_score),
                unfamiliar=None if unfamiliar is None else bool(unfamiliar),
                reason=data.get("reason"),
                rejected_by=stage,
                model=None if model is None else ModelRef.from_dict(_mapping(model, "model")),
                timings_ms={
                    str(k): float(v) for k, v in _mapping(data.get("timings_ms") or {}, "timings_ms").items()
                },
                timestamps={
                    str(k): str(v) for k, v in _mapping(data.get("timestamps") or {}, "timestamps").items()
                },
                archive=Archive(ArchiveStatus(archive.get("status", "none")), archive.get("location")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedDocument(f"result is malformed: {exc}") from exc

    @classmethod
    def from_json(cls, data: bytes | str) -> Result:
        try:
            raw = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MalformedDocument(f"result is not JSON: {exc}") from exc
        return cls.from_dict(raw)

    def metadata(self) -> dict[str, str]:
        """What a result object carries as metadata: enough to answer 'is it done?' by one stat."""
        return self.source.metadata() | {
            META_STATUS: str(self.status),
            META_ARCHIVE: str(self.archive.status),
        }
