"""Pure batch logic: naming uploads, per-file stages, the differential count and the CSV.

Kept free of NiceGUI and storage so every rule a lab technician relies on (what
counts towards the percentages, what is flagged, what the CSV says) is unit-tested
on its own.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bloodcell.contract import LABELS
from bloodcell.formats import KINDS, format_size, is_image_name
from bloodcell.reports.references import DEFAULT_REFERENCES
from bloodcell.results import Result

UPLOAD_PREFIX = "web/"

# Typical adult reference ranges of the white-cell differential, in percent.
REFERENCE_RANGES = DEFAULT_REFERENCES  # one table, declared in bloodcell.reports.references
# The order a differential is usually read in.
REPORT_ORDER = ("NEUTROPHIL", "LYMPHOCYTE", "MONOCYTE", "EOSINOPHIL")
WORDS = {label: label.capitalize() for label in LABELS}

# Stages a file passes through; FINAL ones never change (a timed-out file may still finish).
UPLOADING, UPLOADED, PREPROCESSED, CLASSIFIED, REJECTED, REFUSED, TIMED_OUT = (
    "uploading",
    "uploaded",
    "preprocessed",
    "classified",
    "rejected",
    "refused",
    "timed out",
)
FINAL = (CLASSIFIED, REJECTED, REFUSED)

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_PREFIXED = re.compile(r"^web/\d{8}/[0-9a-f]{10}-(.+)$")


def label_words(label: str | None) -> str:
    return WORDS.get(label or "", label or "")


def sanitise_name(original: str, max_length: int = 80) -> str:
    """A file name safe as one object-name segment, whatever the browser sent.

    Folders, accents, spaces and control characters from the client never reach
    a storage path; only ``[A-Za-z0-9._-]`` survives and the suffix is lower-cased.
    """
    base = original.replace("\\", "/").rsplit("/", 1)[-1]
    ascii_name = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode("ascii")
    stem, dot, suffix = ascii_name.rpartition(".")
    if not dot:
        stem, suffix = ascii_name, ""
    stem = _SAFE.sub("_", stem).strip("._-") or "image"
    suffix = _SAFE.sub("", suffix).lower()
    stem = stem[: max(1, max_length - len(suffix) - 1)]
    return f"{stem}.{suffix}" if suffix else stem


def object_name(original: str, now: datetime, token: str | None = None) -> str:
    """``web/<yyyymmdd>/<10 hex>-<sanitised name>``: unique, so two people's ``cell.jpg`` never collide."""
    token = token or uuid.uuid4().hex[:10]
    return f"{UPLOAD_PREFIX}{now:%Y%m%d}/{token}-{sanitise_name(original)}"


def display_name(name: str) -> str:
    """The name people gave the file, recovered from the object name the app made."""
    match = _PREFIXED.match(name)
    return match.group(1) if match else name.rsplit("/", 1)[-1]


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


@dataclass(frozen=True)
class Row:
    label: str
    count: int
    percent: float | None
    low: float
    high: float

    @property
    def flag(self) -> str:
        if self.percent is None:
            return ""
        if self.percent < self.low:
            return "low"
        return "high" if self.percent > self.high else ""


@dataclass(frozen=True)
class Differential:
    """The batch's differential count.

    Uncertain classifications are excluded from the percentages (a doubtful cell
    would otherwise be counted as a firm one) and, like rejected images, reported
    as separate counts.
    """

    rows: tuple[Row, ...]
    counted: int
    uncertain: int
    rejected: int
    pending: int
    total: int

    @property
    def finished(self) -> int:
        return self.total - self.pending


def differential(entries: Iterable[Entry]) -> Differential:
    entries = list(entries)
    confident = [e for e in entries if e.stage == CLASSIFIED and not e.uncertain]
    counts = dict.fromkeys(LABELS, 0)
    for entry in confident:
        label = str(entry.result.label if entry.result else None)
        counts[label] = counts.get(label, 0) + 1
    counted = len(confident)
    rows = tuple(
        Row(
            label,
            counts.get(label, 0),
            100.0 * counts.get(label, 0) / counted if counted else None,
            *REFERENCE_RANGES[label],
        )
        for label in REPORT_ORDER
    )
    return Differential(
        rows=rows,
        counted=counted,
        uncertain=sum(1 for e in entries if e.uncertain),
        rejected=sum(1 for e in entries if e.stage in (REJECTED, REFUSED)),
        pending=sum(1 for e in entries if not e.final),
        total=len(entries),
    )


CSV_COLUMNS = (
    "file_name",
    "status",
    "label",
    "confidence",
    "uncertain",
    *LABELS,
    "other_probability",
    "reason",
    "object_name",
)


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


def _cell(value: Any) -> str:
    """Plain text a spreadsheet won't run as a formula (CSV injection guard)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_csv(entries: Iterable[Entry]) -> str:
    """One row per file, in batch order: what the page shows, for a spreadsheet."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for entry in entries:
        result = entry.result
        probs = (result.probabilities if result else None) or {}
        confidence = result.confidence if result else None
        uncertain = result.uncertain if result else None
        other = result.other_probability if result else None
        writer.writerow(
            _cell(v)
            for v in (
                entry.original,
                entry.stage,
                (result.label if result else None) or "",
                "" if confidence is None else f"{confidence:.4f}",
                "" if uncertain is None else str(uncertain).lower(),
                *("" if probs.get(label) is None else f"{probs[label]:.4f}" for label in LABELS),
                "" if other is None else f"{other:.4f}",
                entry.reason or "",
                entry.name or "",
            )
        )
    return buffer.getvalue()


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
