"""Review records: one immutable document per action a person took on a slide.

A record is never rewritten. The slide's state (each cell's reviewed label,
signed off or not) is what the records say when replayed in order, so two
reviewers working at once both leave their actions behind and the later one
wins. Records live in the result bucket under ``_review/<slide>/`` (see
``record_name``); the key carries the time, a random id and the action, so a
listing alone orders them and tells whether a slide is signed off.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bloodcell.errors import MalformedDocument
from bloodcell.results import ModelRef
from bloodcell.slides.categories import REVIEW_LABELS
from bloodcell.slides.vocabulary import REVIEW_PREFIX

SCHEMA_VERSION = "1"
KIND = "bloodcell.review"
PREFIX = REVIEW_PREFIX

CREATE, APPROVE, RECLASSIFY, SIGN_OFF, REOPEN = "create", "approve", "reclassify", "sign-off", "reopen"
PATIENT = "patient"  # the patient's age and sex as given for the slide (the latest counts)
ACTIONS = (CREATE, APPROVE, RECLASSIFY, SIGN_OFF, REOPEN, PATIENT)
SEXES = ("F", "M")
# How a sign-off's signer was re-authenticated (``signature``): their password again, or why not.
PASSWORD, NO_PASSWORD, IAP_SESSION = (
    "password re-entered",
    "local user without a password",
    "identity-aware proxy",
)
CELL_ACTIONS = (APPROVE, RECLASSIFY)


_NAME = re.compile(r"^_review/([^/]+)/(\d{8}T\d{12}Z)-([0-9a-f]{32})-([a-z-]+)\.json$")


class RecordError(MalformedDocument):
    """A stored object under the review prefix is not a review record we can read."""


@dataclass(frozen=True)
class CellRef:
    """A cell is one version of one upload: a replaced image is a new cell."""

    upload_name: str
    generation: str


@dataclass(frozen=True)
class SignedCell:
    """One cell a sign-off signs, and where its image sits in the archive (None: no archive copy).

    Kept in the sign-off record so the labels it leads to can be found and withdrawn
    later, even after the upload was overwritten or deleted.
    """

    upload_name: str
    generation: str
    archive: str | None
    model_label: str | None = None
    model: ModelRef | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.upload_name, self.generation)

    def to_dict(self) -> dict[str, Any]:
        return {
            "upload_name": self.upload_name,
            "generation": self.generation,
            "archive": self.archive,
            "model_label": self.model_label,
            "model": _model_dict(self.model),
        }

    @classmethod
    def from_dict(cls, raw: Any) -> SignedCell:
        model = raw.get("model")
        archive, label = raw.get("archive"), raw.get("model_label")
        return cls(
            str(raw["upload_name"]),
            str(raw["generation"]),
            None if archive is None else str(archive),
            None if label is None else str(label),
            None if model is None else ModelRef.from_dict(model),
        )


@dataclass(frozen=True)
class ReviewRecord:
    """Who did what, when, to which cell, from which label to which, and whose prediction it was."""

    id: str
    slide: str
    action: str
    reviewer: str
    at: str  # ISO 8601 UTC with microseconds: ordering is by (at, id)
    cell: CellRef | None = None
    before: str | None = None
    after: str | None = None
    model: ModelRef | None = None
    schema_version: str = SCHEMA_VERSION
    signed: tuple[SignedCell, ...] | None = None  # sign-off: the cells it signs (None in older records)
    signature: str | None = None  # sign-off: how the signer was re-authenticated (None in older records)
    reason: str | None = None  # reopen: why (None in older records)
    age: int | None = None  # patient: age in years, if given
    sex: str | None = None  # patient: F or M, if given

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise RecordError(f"unknown review action {self.action!r}")
        if self.action in CELL_ACTIONS:
            if self.cell is None:
                raise RecordError(f"a {self.action} record must name its cell")
            if self.after not in REVIEW_LABELS:
                raise RecordError(f"{self.after!r} is not a label a reviewer may give")
            if self.action == APPROVE and self.before is not None and self.after != self.before:
                raise RecordError("an approval keeps the label it approves")
        elif self.cell is not None:
            raise RecordError(f"a {self.action} record is about the slide, not a cell")
        if (self.signed is not None or self.signature is not None) and self.action != SIGN_OFF:
            raise RecordError(f"a {self.action} record signs nothing")
        if self.reason is not None and self.action != REOPEN:
            raise RecordError(f"a {self.action} record gives no reason")
        if (self.age is not None or self.sex is not None) and self.action != PATIENT:
            raise RecordError(f"a {self.action} record is not about the patient")
        if self.age is not None and not 0 <= self.age <= 130:
            raise RecordError(f"age {self.age!r} is not an age in years")
        if self.sex is not None and self.sex not in SEXES:
            raise RecordError(f"sex {self.sex!r} is not one of {SEXES}")
        if not re.fullmatch(r"[0-9a-f]{32}", self.id):
            raise RecordError(f"record id {self.id!r} is not a 32-digit hex uuid")

    @property
    def order(self) -> tuple[str, str]:
        return (self.at, self.id)

    @property
    def name(self) -> str:
        return record_name(self.slide, self.at, self.id, self.action)

    def to_json(self) -> bytes:
        body: dict[str, Any] = {
            "kind": KIND,
            "schema_version": self.schema_version,
            "id": self.id,
            "slide": self.slide,
            "action": self.action,
            "reviewer": self.reviewer,
            "at": self.at,
            "cell": None
            if self.cell is None
            else {"upload_name": self.cell.upload_name, "generation": self.cell.generation},
            "before": self.before,
            "after": self.after,
            "model": _model_dict(self.model),
        }
        if self.signed is not None:
            body["signed"] = [cell.to_dict() for cell in self.signed]
        body |= {
            k: v
            for k, v in (
                ("signature", self.signature),
                ("reason", self.reason),
                ("age", self.age),
                ("sex", self.sex),
            )
            if v is not None
        }
        return json.dumps(body, indent=2, ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> ReviewRecord:
        try:
            body = json.loads(data)
            if not isinstance(body, dict) or body.get("kind") != KIND:
                raise RecordError("not a bloodcell review record")
            if str(body.get("schema_version")) != SCHEMA_VERSION:
                raise RecordError(f"review record schema {body.get('schema_version')!r} is not supported")
            cell, model, signed = body.get("cell"), body.get("model"), body.get("signed")
            return cls(
                id=str(body["id"]),
                slide=str(body["slide"]),
                action=str(body["action"]),
                reviewer=str(body["reviewer"]),
                at=str(body["at"]),
                cell=None if cell is None else CellRef(str(cell["upload_name"]), str(cell["generation"])),
                before=body.get("before"),
                after=body.get("after"),
                model=None if model is None else ModelRef.from_dict(model),
                signed=None if signed is None else tuple(SignedCell.from_dict(c) for c in signed),
                signature=_text(body.get("signature")),
                reason=_text(body.get("reason")),
                age=None if body.get("age") is None else int(body["age"]),
                sex=_text(body.get("sex")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, RecordError):
                raise
            raise RecordError(f"unreadable review record: {exc}") from exc


def _model_dict(model: ModelRef | None) -> dict[str, str] | None:
    """The model that answered; its calibration only when a lab's calibration did (older records: none)."""
    if model is None:
        return None
    body = {"name": model.name, "version": model.version}
    if model.calibration is not None:
        body["calibration"] = model.calibration
    return body


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def now_precise() -> str:
    """Microseconds, so one person's quick succession of keys keeps its order."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def new_record(
    slide: str,
    action: str,
    reviewer: str,
    *,
    cell: CellRef | None = None,
    before: str | None = None,
    after: str | None = None,
    model: ModelRef | None = None,
    at: str | None = None,
    signed: tuple[SignedCell, ...] | None = None,
    signature: str | None = None,
    reason: str | None = None,
    age: int | None = None,
    sex: str | None = None,
) -> ReviewRecord:
    return ReviewRecord(
        id=uuid.uuid4().hex,
        slide=slide,
        action=action,
        reviewer=reviewer,
        at=at or now_precise(),
        cell=cell,
        before=before,
        after=after,
        model=model,
        signed=signed,
        signature=signature,
        reason=reason,
        age=age,
        sex=sex,
    )


def record_name(slide: str, at: str, record_id: str, action: str) -> str:
    """``_review/<slide>/<yyyymmddThhmmssffffffZ>-<uuid>-<action>.json``: sorts by time, then id."""
    stamp = re.sub(r"[^0-9T]", "", at.removesuffix("Z"))
    return f"{PREFIX}{slide}/{stamp}Z-{record_id}-{action}.json"


@dataclass(frozen=True)
class ListedRecord:
    """What a record's key alone tells, without reading it."""

    slide: str
    stamp: str
    id: str
    action: str


def parse_record_name(name: str) -> ListedRecord | None:
    match = _NAME.match(name)
    if not match or match.group(4) not in ACTIONS:
        return None
    return ListedRecord(*match.groups())
