"""Reference ranges of the differential: the typical adult ones, or a lab's own from settings.

The one place ranges come from: every page and report takes ``references(settings,
patient)``, so ``REPORT_REFERENCE_RANGES`` and the lab's file of ranges by age band
and sex (``REFERENCE_RANGES_FILE``) show the same in all of them. Free of other
modules so ``settings`` can check both at start-up.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bloodcell.errors import ConfigurationError

ReferenceTable = Mapping[str, tuple[float, float]]
# Typical adult reference ranges of the white-cell differential, in percent (the batch page uses them too).
DEFAULT_REFERENCES: ReferenceTable = {
    "NEUTROPHIL": (40.0, 60.0),
    "LYMPHOCYTE": (20.0, 40.0),
    "MONOCYTE": (2.0, 8.0),
    "EOSINOPHIL": (1.0, 4.0),
    "BASOPHIL": (0.0, 2.0),
    "BAND_NEUTROPHIL": (0.0, 5.0),
    "IMMATURE_GRANULOCYTE": (0.0, 1.0),
    "BLAST": (0.0, 0.0),
    "REACTIVE_LYMPHOCYTE": (0.0, 5.0),
    "OTHER": (0.0, 0.0),
}


def parse_references(text: str) -> tuple[tuple[str, float, float], ...]:
    """``NEUTROPHIL=40-60,LYMPHOCYTE=20-40`` over the defaults, as (label, low, high) in percent."""
    table = dict(DEFAULT_REFERENCES)
    for item in filter(None, (part.strip() for part in text.split(","))):
        label, _, span = item.partition("=")
        low, _, high = span.partition("-")
        label = label.strip().upper()
        try:
            bounds = (float(low), float(high))
        except ValueError:
            bounds = (-1.0, -1.0)
        if label not in table or not 0 <= bounds[0] <= bounds[1] <= 100:
            raise ConfigurationError(
                f"REPORT_REFERENCE_RANGES items look like NEUTROPHIL=40-60 (percent, low-high), got {item!r}"
            )
        table[label] = bounds
    return tuple((label, low, high) for label, (low, high) in sorted(table.items()))


def as_table(ranges: tuple[tuple[str, float, float], ...]) -> dict[str, tuple[float, float]]:
    return {label: (low, high) for label, low, high in ranges}


@dataclass(frozen=True)
class Band:
    """One line of the lab's file: a category's range for a sex (None: either) and ages [from, to)."""

    label: str
    sex: str | None
    age_from: float | None
    age_to: float | None
    low: float
    high: float

    def fits(self, age: int | None, sex: str | None) -> bool:
        if self.sex is not None and self.sex != sex:
            return False
        if self.age_from is None and self.age_to is None:
            return True
        if age is None:
            return False
        return (self.age_from or 0) <= age < (self.age_to if self.age_to is not None else math.inf)

    @property
    def specificity(self) -> tuple[bool, float]:
        """A sex-specific line beats one for either sex; then the narrower age band wins."""
        width = (self.age_to if self.age_to is not None else 200.0) - (self.age_from or 0.0)
        return (self.sex is not None, -width)


BAND_HEADER = ("category", "sex", "age_from", "age_to", "low", "high")


def parse_bands(text: str, origin: str = "REFERENCE_RANGES_FILE") -> tuple[Band, ...]:
    """CSV with the header ``category,sex,age_from,age_to,low,high``; sex F, M or empty; ages in years."""
    rows = list(csv.reader(io.StringIO(text)))
    rows = [r for r in rows if r and any(c.strip() for c in r) and not r[0].lstrip().startswith("#")]
    if not rows or tuple(c.strip().lower() for c in rows[0]) != BAND_HEADER:
        raise ConfigurationError(f"{origin} must start with the header line {','.join(BAND_HEADER)}")
    bands = []
    for number, row in enumerate(rows[1:], 2):
        try:
            label, sex, age_from, age_to, low, high = (c.strip() for c in row)
            band = Band(
                label.upper(),
                sex.upper() or None,
                float(age_from) if age_from else None,
                float(age_to) if age_to else None,
                float(low),
                float(high),
            )
        except ValueError:
            raise ConfigurationError(
                f"{origin} line {number} must read like NEUTROPHIL,F,18,65,40,70 (sex and ages may be empty)"
            ) from None
        if band.label not in DEFAULT_REFERENCES or band.sex not in (None, "F", "M"):
            raise ConfigurationError(f"{origin} line {number}: unknown category or sex {label!r}, {sex!r}")
        if not 0 <= band.low <= band.high <= 100 or (band.age_from or 0) >= (band.age_to or math.inf):
            raise ConfigurationError(
                f"{origin} line {number}: need 0 <= low <= high <= 100 and age_from < age_to"
            )
        bands.append(band)
    return tuple(bands)


def read_bands(path: Path) -> tuple[Band, ...]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"REFERENCE_RANGES_FILE {path} cannot be read: {exc}") from exc
    return parse_bands(text, f"REFERENCE_RANGES_FILE {path}")


def for_patient(
    table: ReferenceTable, bands: tuple[Band, ...], age: int | None, sex: str | None
) -> dict[str, tuple[float, float]]:
    """Each category's range: the most specific line of the file that fits the patient, else ``table``."""
    chosen = dict(table)
    for label in {b.label for b in bands}:
        fitting = [b for b in bands if b.label == label and b.fits(age, sex)]
        if fitting:
            best = max(fitting, key=lambda b: b.specificity)
            chosen[label] = (best.low, best.high)
    return chosen


class _Patient(Protocol):
    @property
    def age(self) -> int | None: ...

    @property
    def sex(self) -> str | None: ...


class _HasRanges(Protocol):
    @property
    def report_reference_ranges(self) -> tuple[tuple[str, float, float], ...]: ...

    @property
    def reference_ranges_file(self) -> tuple[Band, ...]: ...


def references(settings: _HasRanges, patient: _Patient | None = None) -> dict[str, tuple[float, float]]:
    """The lab's table for this patient (age and sex may be unknown): what every view flags against."""
    table = as_table(settings.report_reference_ranges)
    if patient is None:
        return for_patient(table, settings.reference_ranges_file, None, None)
    return for_patient(table, settings.reference_ranges_file, patient.age, patient.sex)
