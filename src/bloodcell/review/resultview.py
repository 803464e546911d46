"""What the review reads of a result JSON.

Temporary adapter: replaced by ``bloodcell.results.Result.from_json`` once the
typed result lands on main; the attribute names already match it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from bloodcell.review.records import ModelRef


@dataclass(frozen=True)
class ResultView:
    status: str
    source_name: str
    source_generation: str
    label: str | None
    confidence: float | None
    uncertain: bool | None
    other_probability: float | None
    probabilities: dict[str, float]
    reason: str | None
    model: ModelRef | None
    archive_location: str | None


def parse_result(data: bytes) -> ResultView:
    try:
        return _parse(json.loads(data))
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a result document: {exc}") from exc


def _parse(body: object) -> ResultView:
    if not isinstance(body, dict) or "source" not in body:
        raise ValueError("not a result document")
    source, model, archive = body["source"], body.get("model"), body.get("archive") or {}
    return ResultView(
        status=str(body["status"]),
        source_name=str(source["name"]),
        source_generation=str(source["generation"]),
        label=body.get("label"),
        confidence=body.get("confidence"),
        uncertain=body.get("uncertain"),
        other_probability=body.get("other_probability"),
        probabilities=dict(body.get("probabilities") or {}),
        reason=body.get("reason"),
        model=None if not model else ModelRef(str(model["name"]), str(model["version"])),
        archive_location=archive.get("location"),
    )
