"""The report formats and how they are served; free of scipy and reportlab, so pages can link them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Format:
    media_type: str
    suffix: str


FORMATS: dict[str, Format] = {
    "pdf": Format("application/pdf", ".pdf"),
    "fhir": Format("application/fhir+json", ".fhir.json"),
    "csv": Format("text/csv; charset=utf-8", ".csv"),
    "summary": Format("text/csv; charset=utf-8", ".summary.csv"),
}
