"""A slide's reclassification history: one immutable document per run, holding the results it replaced.

Results stay where every reader looks for them (``<upload>.json`` in the result bucket); a
reclassification first writes one document under ``_reclassify/<slide>/`` naming who ran it,
when, with which model, and for each cell its previous result whole, then replaces the
results. The document is create-only, like the review records beside it, so no version of a
result is ever lost: the old one is stored before the new one is written. The key carries
the time and a random id, so a listing alone orders the runs.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bloodcell.bounded import BoundedCache
from bloodcell.errors import BloodcellError, MalformedDocument
from bloodcell.results import ModelRef
from bloodcell.settings import Settings
from bloodcell.storage import ObjectInfo, Storage

log = logging.getLogger(__name__)

SCHEMA_VERSION = "1"
KIND = "bloodcell.reclassify"
PREFIX = "_reclassify/"  # in the result bucket: a top-level "_" folder no upload can derive a name in

# What a run did with one cell.
REPLACED = "reclassified"  # a new result was written; ``previous`` holds the one it replaced
NO_TENSOR = "tensor gone"  # the stored tensor is missing or not of this upload version: result kept
PENDING = "pending"  # no result yet: the pipeline will answer it with the active model anyway
NOT_DECODED = "rejected before the model"  # preprocess refused the image: no model ever sees it, result kept
OUTCOMES = (REPLACED, NO_TENSOR, PENDING, NOT_DECODED)
_NAME = re.compile(r"^_reclassify/([^/]+)/(\d{8}T\d{12}Z)-([0-9a-f]{32})\.json$")


def model_words(model: ModelRef | None) -> str:
    """A model as every view names it: name, version and the lab's calibration when there is one."""
    if model is None:
        return "no model"
    words = f"{model.name} {model.version}"
    return words + (f" calibration {model.calibration}" if model.calibration else " (no calibration)")


def _model(raw: object) -> ModelRef | None:
    return None if not isinstance(raw, Mapping) else ModelRef.from_dict(raw)


def _model_dict(model: ModelRef | None) -> dict[str, Any] | None:
    return (
        None
        if model is None
        else {"name": model.name, "version": model.version, "calibration": model.calibration}
    )


@dataclass(frozen=True)
class CellRun:
    """One cell of a run: what it was (label and model), what it became, and the result it replaced."""

    upload_name: str
    generation: str
    outcome: str
    before: str | None = None  # the label before (None: rejected)
    after: str | None = None  # the label after (None: rejected, or not re-run)
    before_model: ModelRef | None = None
    previous: Mapping[str, Any] | None = None  # the replaced result document, exactly as it was

    @property
    def changed(self) -> bool:
        return self.outcome == REPLACED and self.before != self.after

    def to_dict(self) -> dict[str, Any]:
        return {
            "upload_name": self.upload_name,
            "generation": self.generation,
            "outcome": self.outcome,
            "before": self.before,
            "after": self.after,
            "before_model": _model_dict(self.before_model),
            "previous": None if self.previous is None else dict(self.previous),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> CellRun:
        outcome = str(raw["outcome"])
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        previous = raw.get("previous")
        return cls(
            str(raw["upload_name"]),
            str(raw["generation"]),
            outcome,
            raw.get("before"),
            raw.get("after"),
            _model(raw.get("before_model")),
            None if previous is None else dict(previous),
        )


@dataclass(frozen=True)
class RerunRecord:
    """One reclassification of one slide with one model, by one person."""

    id: str
    slide: str
    by: str
    at: str  # ISO 8601 UTC with microseconds
    model: ModelRef
    cells: tuple[CellRun, ...]
    schema_version: str = SCHEMA_VERSION

    @property
    def name(self) -> str:
        stamp = re.sub(r"[^0-9T]", "", self.at.removesuffix("Z"))
        return f"{PREFIX}{self.slide}/{stamp}Z-{self.id}.json"

    def count(self, outcome: str) -> int:
        return sum(1 for c in self.cells if c.outcome == outcome)

    @property
    def changed(self) -> int:
        return sum(1 for c in self.cells if c.changed)

    @property
    def before_models(self) -> tuple[str, ...]:
        """Every model whose results this run replaced, sorted."""
        return tuple(sorted({model_words(c.before_model) for c in self.cells if c.outcome == REPLACED}))

    def transitions(self) -> list[tuple[str, str, int]]:
        """(before, after, cells) for each change of class, most frequent first."""
        counts = Counter((c.before or "rejected", c.after or "rejected") for c in self.cells if c.changed)
        return [(b, a, n) for (b, a), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]

    def to_json(self) -> bytes:
        body = {
            "kind": KIND,
            "schema_version": self.schema_version,
            "id": self.id,
            "slide": self.slide,
            "by": self.by,
            "at": self.at,
            "model": _model_dict(self.model),
            "cells": [c.to_dict() for c in self.cells],
        }
        return json.dumps(body, indent=1, ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> RerunRecord:
        try:
            body = json.loads(data)
            if not isinstance(body, dict) or body.get("kind") != KIND:
                raise MalformedDocument("not a bloodcell reclassification record")
            if str(body.get("schema_version")) != SCHEMA_VERSION:
                raise MalformedDocument(
                    f"reclassification schema {body.get('schema_version')!r} is not supported"
                )
            model = _model(body.get("model"))
            if model is None:
                raise ValueError("no model")
            return cls(
                str(body["id"]),
                str(body["slide"]),
                str(body["by"]),
                str(body["at"]),
                model,
                tuple(CellRun.from_dict(c) for c in body["cells"]),
            )
        except (KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
            if isinstance(exc, MalformedDocument):
                raise
            raise MalformedDocument(f"unreadable reclassification record: {exc}") from exc


def new_id() -> str:
    return uuid.uuid4().hex


def write_run(storage: Storage, settings: Settings, run: RerunRecord) -> None:
    """Create-only: a run's record (and the results it keeps) is never replaced."""
    storage.write(
        settings.result_bucket, run.name, run.to_json(), content_type="application/json", if_absent=True
    )


class _RunCache:
    """Parsed runs by object version: records change only when an erasure trims them."""

    def __init__(self, size: int = 2000) -> None:
        self._cache: BoundedCache[tuple[str, str, str], RerunRecord] = BoundedCache(size)

    def get(self, storage: Storage, info: ObjectInfo) -> RerunRecord | None:
        bucket, name = info.bucket, info.name
        key = (bucket, name, info.generation)  # an erasure rewrites a record: a new generation
        if (cached := self._cache.get(key)) is not None:
            return cached
        try:
            run = RerunRecord.from_json(storage.read(bucket, name)[0])
        except (MalformedDocument, BloodcellError) as exc:
            log.warning("reclassify: cannot read %r: %s", name, exc)
            return None
        if run.name != name:
            log.warning("reclassify: %r holds a run named %r: refused as forged", name, run.name)
            return None
        self._cache.put(key, run)
        return run


_cache = _RunCache()


def erasure_plan(
    storage: Storage, settings: Settings, slide: str, uploads: set[str] | None
) -> list[tuple[str, bytes | None]]:
    """For an erasure: each run record holding these uploads (None: the slide's every run), and what
    it becomes: the record without them, or None when nothing is left of it.

    The one case a run's record is rewritten: a cell's old results must go with its image,
    and the other cells' history stays. An unreadable record cannot be trimmed, so it goes.
    """
    plan: list[tuple[str, bytes | None]] = []
    for info in list(storage.list(settings.result_bucket, prefix=f"{PREFIX}{slide}/")):
        if uploads is None:
            plan.append((info.name, None))
            continue
        try:
            run = RerunRecord.from_json(storage.read(info.bucket, info.name)[0])
        except (MalformedDocument, BloodcellError):
            plan.append((info.name, None))
            continue
        if any(c.upload_name in uploads for c in run.cells):
            kept = tuple(c for c in run.cells if c.upload_name not in uploads)
            trimmed = RerunRecord(run.id, run.slide, run.by, run.at, run.model, kept)
            plan.append((info.name, trimmed.to_json() if kept else None))
    return plan


def history(storage: Storage, settings: Settings, slide: str) -> list[RerunRecord]:
    """The slide's reclassifications, oldest first: one listing, and one read per run never read before."""
    listed = sorted(
        (
            info
            for info in storage.list(settings.result_bucket, prefix=f"{PREFIX}{slide}/")
            if _NAME.match(info.name)
        ),
        key=lambda i: i.name,
    )
    return [run for info in listed if (run := _cache.get(storage, info)) is not None]
