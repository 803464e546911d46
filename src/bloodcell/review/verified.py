"""Verified labels in the archive: ``<archived image key>.verified.json`` beside each image.

The archive keeps each classified image as ``<prefix><day>/<model label>/<generation>/<name>``
with its result at ``<key>.json``. On sign-off every reviewed cell gains
``<key>.verified.json``, so the archive reads as a training folder of
person-verified labels (``training`` reads exactly this) while the model's own
label stays in the path and in the result beside it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

SCHEMA_VERSION = "1"
SUFFIX = ".verified.json"


def verified_key(archive_key: str) -> str:
    return archive_key + SUFFIX


@dataclass(frozen=True)
class VerifiedLabel:
    label: str  # the category's training label (``slides.categories.training_label``), never guessed
    reviewer: str  # who gave the label
    verified_at: str  # when they gave it (ISO 8601 UTC)
    model_label: str | None
    model_name: str | None
    model_version: str | None
    source_name: str
    source_generation: str
    slide: str
    signed_off_by: str
    signed_off_at: str
    schema_version: str = SCHEMA_VERSION
    category: str | None = None  # the reviewer's category key; absent from labels written before it

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> VerifiedLabel:
        body = json.loads(data)
        if not isinstance(body, dict) or str(body.get("schema_version")) != SCHEMA_VERSION:
            raise ValueError("not a version-1 verified label")
        try:
            optional = {"schema_version", "category"}
            return cls(**{k: body[k] for k in cls.__dataclass_fields__ if k not in optional or k in body})
        except KeyError as exc:
            raise ValueError(f"verified label lacks {exc}") from exc
