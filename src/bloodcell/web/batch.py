"""Pure batch logic: naming uploads, per-file stages, and the batch as slide cells.

The counting, flagging and CSV rules are the slide's own (``bloodcell.slides``): a
batch is shown as the cells it holds, so the batch page and a slide never disagree.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from bloodcell.formats import KINDS, format_size, is_image_name
from bloodcell.results import Result
from bloodcell.slides import vocabulary
from bloodcell.slides.cell import Cell
from bloodcell.slides.differential import Differential, differential
from bloodcell.slides.ids import display_name, sanitise_name
from bloodcell.slides.references import DEFAULT_REFERENCES, ReferenceTable
from bloodcell.slides.table import RESULT_COLUMNS, result_values, write_csv
from bloodcell.slides.vocabulary import MODEL

__all__ = ["Differential", "display_name", "sanitise_name"]
UPLOAD_PREFIX = "web/"

# Stages a file passes through; FINAL ones never change (a timed-out file may still finish).
UPLOADING, UPLOADED, PREPROCESSED, CLASSIFIED, REJECTED, REFUSED, TIMED_OUT = (
    "uploading",
    "uploaded",
    "preprocessed",
    vocabulary.CLASSIFIED,
    vocabulary.REJECTED,
    "refused",
    "timed out",
)
FINAL = (CLASSIFIED, REJECTED, REFUSED)


def object_name(original: str, now: datetime, token: str | None = None) -> str:
    """``web/<yyyymmdd>/<10 hex>-<sanitised name>``: unique, so two people's ``cell.jpg`` never collide."""
    token = token or uuid.uuid4().hex[:10]
    return f"{UPLOAD_PREFIX}{now:%Y%m%d}/{token}-{sanitise_name(original)}"


def refusal(filename: str, size: int, max_bytes: int) -> str | None:
    """Why the app won't even store this file, or None: checked on the server, never trusting the browser."""
    if not is_image_name(filename):
        return f"not an accepted image type ({KINDS})"
    if size > max_bytes:
        return f"file is {format_size(size)}, over the limit of {format_size(max_bytes)}"
    if size == 0:
        return "file is empty"
    return None


@dataclass
class Entry:
    """One file of the batch as the page follows it."""

    original: str
    name: str | None = None  # object name in the upload bucket; None when refused
    generation: str | None = None
    stage: str = UPLOADING
    reason: str | None = None
    result: Result | None = None
    started: float = 0.0  # monotonic seconds, for the timeout

    @property
    def final(self) -> bool:
        return self.stage in FINAL

    @property
    def uncertain(self) -> bool:
        return self.stage == CLASSIFIED and bool(self.result and self.result.uncertain)


def advance(entry: Entry, tensor_exists: bool, result: Result | None, now: float, timeout: float) -> bool:
    """Move an entry to the stage its bucket objects show; True when it changed.

    A result is only taken when it speaks of the very upload version we wrote,
    and a timed-out entry still turns final when its result arrives late.
    """
    before = (entry.stage, entry.reason)
    if entry.final or entry.stage == UPLOADING:
        return False
    if result and (entry.generation is None or result.source.generation == entry.generation):
        entry.result = result
        entry.stage = CLASSIFIED if result.is_classified else REJECTED
        entry.reason = result.reason if entry.stage == REJECTED else None
    elif now - entry.started > timeout:
        entry.stage = TIMED_OUT
        entry.reason = (
            f"no result after {timeout:.0f} s: the pipeline may be stopped or busy. "
            "It will still appear here, and in History, if it finishes later."
        )
    elif tensor_exists and entry.stage == UPLOADED:
        entry.stage = PREPROCESSED
    return (entry.stage, entry.reason) != before


def cell_of(entry: Entry) -> Cell:
    """A batch file as a slide cell: refused files count as rejected, unanswered ones as pending."""
    if entry.result is not None:
        return Cell(entry.name or entry.original, entry.result.source.generation, result=entry.result)
    problem = entry.reason if entry.stage in (REFUSED, REJECTED) else None
    return Cell(entry.name or entry.original, entry.generation or "", problem=problem)


def batch_differential(
    entries: Iterable[Entry], references: ReferenceTable = DEFAULT_REFERENCES
) -> Differential:
    """The batch's count: the slide's own differential, on the model basis (never flagged: unverified)."""
    return differential([cell_of(e) for e in entries], MODEL, references)


CSV_COLUMNS = ("file_name", "status", *RESULT_COLUMNS, "object_name")


def uncertain_reason(
    confidence: float | None,
    other_probability: float | None,
    min_top: float | None = None,
    max_other: float | None = None,
) -> str:
    """Why a cell was flagged, in words and with the numbers: which part of the model's rule it failed.

    ``min_top``/``max_other`` are the model's thresholds (metadata.json); without
    them the figures alone are given.
    """
    parts = []
    top = float(confidence or 0.0)
    if other_probability is not None and (max_other is None or other_probability > max_other):
        limit = "" if max_other is None else f", above {100 * max_other:.0f} %"
        parts.append(f"likely none of the four types ('other' {100 * other_probability:.0f} %{limit})")
    if min_top is not None and top < min_top:
        parts.append(f"low confidence ({100 * top:.0f} %, below {100 * min_top:.0f} %)")
    if not parts:
        parts.append(f"low confidence ({100 * top:.0f} %)")
    return "Uncertain: " + "; ".join(parts)


def to_csv(entries: Iterable[Entry]) -> str:
    """One row per file, in batch order: the slide's cell columns, written by the slide's CSV writer."""
    rows = ([e.original, e.stage, *result_values(cell_of(e)), e.name or ""] for e in entries)
    return write_csv(CSV_COLUMNS, rows)


def processing_ms(result: Result) -> float | None:
    """Compute time the pipeline spent on the file (preprocess + inference), in ms."""
    values = list(result.timings_ms.values())
    return sum(values) if values else None


def turnaround_s(result: Result) -> float | None:
    """Seconds from upload to result, from the pipeline's own timestamps."""
    start, end = result.timestamps.get("uploaded"), result.finished_at
    if not start or not end:
        return None
    try:
        parse = datetime.fromisoformat
        return (parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds()
    except ValueError:
        return None
