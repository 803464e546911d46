"""The result JSON: the one document every consumer reads (web app, CSV, archive).

Its shape is versioned by ``SCHEMA_VERSION`` and documented in the README. Object
metadata on results and tensors repeats the few fields the pipeline needs for
idempotency, so "is this upload already done?" is one ``stat`` and not a read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from bloodcell import names
from bloodcell.model import ModelInfo, Prediction

SCHEMA_VERSION = "1"

# object-metadata keys shared by tensors and results
META_SOURCE_BUCKET = "source-bucket"
META_SOURCE_NAME = "source-name"
META_SOURCE_GENERATION = "source-generation"
META_SOURCE_SHA256 = "source-sha256"
META_SOURCE_SIZE = "source-size"
META_UPLOADED = "uploaded"
META_CONTRACT = "contract-version"
META_PREPROCESS_MS = "preprocess-ms"
META_PREPROCESSED = "preprocessed"
META_STATUS = "status"
META_ARCHIVE = "archive"

ARCHIVE_STORED = "stored"
ARCHIVE_PENDING = "pending"
ARCHIVE_NONE = "none"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def result_name(upload_name: str) -> str:
    return names.result_name(upload_name)  # collision-free by design: see bloodcell.names


def tensor_name(upload_name: str) -> str:
    return names.tensor_name(upload_name)


@dataclass(frozen=True)
class Source:
    """The upload a result speaks of: the key of all idempotency."""

    bucket: str
    name: str
    generation: str
    sha256: str | None = None
    size: int | None = None
    uploaded: str | None = None

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
        return meta

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str]) -> Source | None:
        try:
            size = meta.get(META_SOURCE_SIZE)
            return cls(
                bucket=meta[META_SOURCE_BUCKET],
                name=meta[META_SOURCE_NAME],
                generation=meta[META_SOURCE_GENERATION],
                sha256=meta.get(META_SOURCE_SHA256),
                size=int(size) if size else None,
                uploaded=meta.get(META_UPLOADED),
            )
        except (KeyError, ValueError):
            return None


def _base(
    source: Source, status: str, timings: Mapping[str, float], timestamps: Mapping[str, str]
) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "status": status,
        "source": asdict(source),
        "label": None,
        "confidence": None,
        "uncertain": None,
        "probabilities": None,
        "other_probability": None,
        "reason": None,
        "model": None,
        "timings_ms": {k: round(v, 2) for k, v in timings.items()},
        "timestamps": dict(timestamps),
        "archive": {"status": ARCHIVE_NONE, "location": None},
    }


def rejected(
    source: Source,
    reason: str,
    stage: str,
    timings: Mapping[str, float],
    timestamps: Mapping[str, str],
    model: ModelInfo | None = None,
) -> dict[str, Any]:
    result = _base(source, "rejected", timings, timestamps)
    result["reason"] = reason
    result["rejected_by"] = stage
    if model is not None:
        result["model"] = {"name": model.name, "version": model.version}
    return result


def classified(
    source: Source,
    prediction: Prediction,
    model: ModelInfo,
    timings: Mapping[str, float],
    timestamps: Mapping[str, str],
) -> dict[str, Any]:
    result = _base(source, "classified", timings, timestamps)
    result.update(
        label=prediction.label,
        confidence=round(prediction.confidence, 6),
        uncertain=prediction.uncertain,
        probabilities={k: round(v, 6) for k, v in prediction.probabilities.items()},
        other_probability=None
        if prediction.other_probability is None
        else round(prediction.other_probability, 6),
        model={"name": model.name, "version": model.version},
    )
    return result


def encode(result: Mapping[str, Any]) -> bytes:
    return json.dumps(result, indent=2, ensure_ascii=False).encode("utf-8")


def result_metadata(result: Mapping[str, Any]) -> dict[str, str]:
    source = Source(**result["source"])
    meta = source.metadata()
    meta[META_STATUS] = str(result["status"])
    meta[META_ARCHIVE] = str(result["archive"]["status"])
    return meta
