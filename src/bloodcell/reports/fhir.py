"""The differential as an HL7 FHIR R4 ``Bundle``: one ``DiagnosticReport``, one ``Observation`` per class.

Plain JSON-ready dicts, built deterministically from the slide (ids are UUIDv5 of the
slide and class, times come from the results), so the same slide gives byte-identical
bundles on every backend. No patient data: ``subject`` is left to the receiving system.
The codes are LOINC, cited in docs/reports.md.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from bloodcell.slides.categories import category_words
from bloodcell.slides.cell import Slide
from bloodcell.slides.differential import Differential, Row
from bloodcell.slides.vocabulary import BASIS_WORDS, HIGH, LOW

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
DIAGNOSTIC_SERVICE = "http://terminology.hl7.org/CodeSystem/v2-0074"
SLIDE_SYSTEM = "urn:bloodcell:slide"
VERSION_SYSTEM = "urn:bloodcell:slide-report-version"
# R4 core extension: the earlier report this one replaces (an amended report names the version it amends)
REPLACES = "http://hl7.org/fhir/StructureDefinition/diagnosticReport-replaces"
NAMESPACE = uuid.UUID("6f1c2a4e-3b7d-5e80-9a1b-bc0d1e2f3a4b")

PANEL = ("24318-8", "Manual Differential panel - Blood")
# label: (percent code, its display, absolute-count code, its display)
CODES: dict[str, tuple[str, str, str, str]] = {
    "NEUTROPHIL": (
        "26511-6",
        "Neutrophils/100 leukocytes in Blood",
        "26499-4",
        "Neutrophils [#/volume] in Blood",
    ),
    "LYMPHOCYTE": (
        "26478-8",
        "Lymphocytes/100 leukocytes in Blood",
        "26474-7",
        "Lymphocytes [#/volume] in Blood",
    ),
    "MONOCYTE": ("26485-3", "Monocytes/100 leukocytes in Blood", "26484-6", "Monocytes [#/volume] in Blood"),
    "EOSINOPHIL": (
        "26450-7",
        "Eosinophils/100 leukocytes in Blood",
        "26449-9",
        "Eosinophils [#/volume] in Blood",
    ),
    "BASOPHIL": ("30180-4", "Basophils/100 leukocytes in Blood", "26444-0", "Basophils [#/volume] in Blood"),
    "BAND_NEUTROPHIL": (
        "26508-2",
        "Neutrophils.band form/100 leukocytes in Blood",
        "26507-4",
        "Neutrophils.band form [#/volume] in Blood",
    ),
    "IMMATURE_GRANULOCYTE": (
        "38518-7",
        "Granulocytes.immature/100 leukocytes in Blood",
        "",
        "Immature granulocytes [#/volume] in Blood",
    ),
    "BLAST": ("26446-5", "Blasts/100 leukocytes in Blood", "", "Blasts [#/volume] in Blood"),
    "REACTIVE_LYMPHOCYTE": (
        "13046-8",
        "Lymphocytes.variant/100 leukocytes in Blood",
        "",
        "Variant lymphocytes [#/volume] in Blood",
    ),
}
# Nucleated red cells are reported per 100 white cells, outside the differential's denominator.
NUCLEATED_RED = ("19048-8", "Erythrocytes.nucleated/100 leukocytes in Blood")
PER_100_WBC = {"unit": "/100 WBC", "system": UCUM, "code": "/100{WBC}"}
PERCENT = {"unit": "%", "system": UCUM, "code": "%"}
PER_LITRE = {"unit": "10^9/L", "system": UCUM, "code": "10*9/L"}
FLAGS = {HIGH: "High", LOW: "Low"}
EPOCH = "1970-01-01T00:00:00.000Z"


def _uuid(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "\x1f".join(parts)))


def _quantity(value: float, unit: dict[str, str], digits: int) -> dict[str, Any]:
    return {"value": round(value, digits), **unit}


def _coding(system: str, code: str, display: str) -> dict[str, Any]:
    """A coded concept; a category without a LOINC code is sent as text alone, never with a made-up code."""
    if not code:
        return {"text": display}
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _observation(
    oid: str, code: tuple[str, str], value: dict[str, Any], row: Row, common: dict[str, Any]
) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "id": oid,
        **common,
        "code": _coding(LOINC, *code),
        "valueQuantity": value,
    }
    if row.flag:
        obs["interpretation"] = [_coding(INTERPRETATION, row.flag, FLAGS[row.flag])]
    return obs


def bundle(report: Slide, diff: Differential) -> dict[str, Any]:
    """The FHIR R4 Bundle (type ``collection``); ``final`` only once the slide is signed off."""
    status = "preliminary" if not report.sign_off else ("amended" if report.sign_off.amended else "final")
    effective = report.last_result or report.first_upload or EPOCH
    issued = report.sign_off.at if report.sign_off and report.sign_off.at else effective
    performer = [{"display": report.sign_off.by}] if report.sign_off else []
    models = ", ".join(report.models) or "no model"
    common: dict[str, Any] = {
        "status": status,
        "category": [_coding(OBSERVATION_CATEGORY, "laboratory", "Laboratory")],
        "effectiveDateTime": effective,
        "issued": issued,
        "method": {"text": f"image classification of single-cell images by {models}; research use only"},
    }
    if performer:
        common["performer"] = performer
    entries: list[dict[str, Any]] = []
    for row in diff.rows if diff.counted else ():
        words = category_words(row.label)
        percent_code, percent_display, absolute_code, absolute_display = CODES.get(
            row.label, ("", f"{words}/100 leukocytes in Blood", "", f"{words} [#/volume] in Blood")
        )
        assert row.percent is not None and row.ci_low is not None and row.ci_high is not None
        obs = _observation(
            _uuid(report.slide, row.label, "percent"),
            (percent_code, percent_display),
            _quantity(round(row.percent, 1), PERCENT, 1),
            row,
            common,
        )
        obs["referenceRange"] = [
            {"low": _quantity(row.ref_low, PERCENT, 1), "high": _quantity(row.ref_high, PERCENT, 1)}
        ]
        obs["note"] = [
            {
                "text": f"{row.count} of {diff.counted} cells counted; 95 % CI (Clopper-Pearson) "
                f"{row.ci_low:.1f}-{row.ci_high:.1f} %"
            }
        ]
        entries.append(obs)
        if row.absolute is not None and diff.wbc is not None:
            absolute = _observation(
                _uuid(report.slide, row.label, "absolute"),
                (absolute_code, absolute_display),
                _quantity(row.absolute, PER_LITRE, 2),
                row,
                common,
            )
            absolute.pop("interpretation", None)  # the flag speaks of the percentage's range
            absolute["note"] = [{"text": f"{row.percent:.1f} % of a white-cell count of {diff.wbc:g} ×10⁹/L"}]
            entries.append(absolute)
    if diff.nucleated_red_per_100 is not None and diff.nucleated_red:
        entries.append(
            {
                "resourceType": "Observation",
                "id": _uuid(report.slide, "NUCLEATED_RED_CELL", "per100"),
                **common,
                "code": _coding(LOINC, *NUCLEATED_RED),
                "valueQuantity": _quantity(diff.nucleated_red_per_100, PER_100_WBC, 1),
                "note": [
                    {
                        "text": f"{diff.nucleated_red} nucleated red cells seen while counting "
                        f"{diff.counted} white cells"
                    }
                ],
            }
        )
    report_resource: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": _uuid(report.slide, "report"),
        "identifier": [{"system": SLIDE_SYSTEM, "value": report.slide}],
        "status": status,
        "category": [_coding(DIAGNOSTIC_SERVICE, "HM", "Hematology")],
        "code": _coding(LOINC, *PANEL),
        "effectiveDateTime": effective,
        "issued": issued,
        "conclusion": conclusion(diff)
        + (f" WARNING: {report.unfamiliar_warning}" if report.unfamiliar_warning else ""),
    }
    if entries:
        report_resource["result"] = [{"reference": f"urn:uuid:{e['id']}"} for e in entries]
    if performer:
        report_resource["performer"] = performer
        report_resource["resultsInterpreter"] = performer
    if report.sign_off is not None:
        report_resource["identifier"].append(_version(report.slide, report.sign_off.at))
        if (earlier := report.sign_off.amends) is not None:
            reason = f"; reopened because: {earlier.reason}" if earlier.reason else ""
            report_resource["extension"] = [
                {
                    "url": REPLACES,
                    "valueReference": {
                        "identifier": _version(report.slide, earlier.at),
                        "display": f"report signed off by {earlier.by} at {earlier.at}{reason}",
                    },
                }
            ]
    resources = [report_resource, *entries]
    return {
        "resourceType": "Bundle",
        "id": _uuid(report.slide, "bundle"),
        "type": "collection",
        "timestamp": issued,
        "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources],
    }


def _version(slide: str, signed_at: str) -> dict[str, str]:
    """Each signed version of a slide's report is told apart by its sign-off time."""
    return {"system": VERSION_SYSTEM, "value": f"{slide}@{signed_at}"}


def conclusion(diff: Differential) -> str:
    return (
        f"{diff.counted} cells counted ({BASIS_WORDS[diff.basis]}); not counted: {diff.uncertain} uncertain, "
        f"{diff.rejected} rejected, {diff.excluded_total} excluded by review, {diff.pending} pending; "
        f"{diff.unreviewed} of {diff.total} unreviewed. Research use only, not a diagnosis."
    )


def encode(data: dict[str, Any]) -> bytes:
    # lone surrogates (names that were not UTF-8) are escaped, never an encoding error
    return (
        json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False).encode("utf-8", "backslashreplace")
        + b"\n"
    )
