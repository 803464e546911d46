"""Reference ranges of the differential: the typical adult ones, or a lab's own from settings.

The one place ranges come from: every page and report takes ``references(settings)``,
so ``REPORT_REFERENCE_RANGES`` shows the same in all of them. Free of other
modules so ``settings`` can check the setting at start-up.
"""

from __future__ import annotations

from collections.abc import Mapping
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


class _HasRanges(Protocol):
    @property
    def report_reference_ranges(self) -> tuple[tuple[str, float, float], ...]: ...


def references(settings: _HasRanges) -> dict[str, tuple[float, float]]:
    """The lab's reference table from its settings: what every view flags against."""
    return as_table(settings.report_reference_ranges)
