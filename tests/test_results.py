"""The result document: one typed value, JSON only at its edges."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from bloodcell.errors import MalformedDocument
from bloodcell.model import ModelInfo, Prediction
from bloodcell.results import SCHEMA_VERSION, ArchiveStatus, Result, Source, Status

SOURCE = Source(
    "uploads", "lame 12/cellule é 細胞.jpg", "1732530000123456", "ab" * 32, 20162, "2026-11-25T14:01:23.274Z"
)
MODEL = ModelInfo(
    "bloodcell-wbc", "1.0.0", ("EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL"), 0.5, 0.2, {}
)


def _classified() -> Result:
    prediction = Prediction(
        "NEUTROPHIL",
        0.97,
        {"EOSINOPHIL": 0.01, "LYMPHOCYTE": 0.01, "MONOCYTE": 0.01, "NEUTROPHIL": 0.97},
        0.002,
        False,
    )
    stamps = {"uploaded": SOURCE.uploaded or "", "classified": "2026-11-25T14:01:23.400Z"}
    return Result.classified(SOURCE, prediction, MODEL, {"preprocess": 6.812, "inference": 1.2}, stamps)


def test_a_classified_result_survives_the_round_trip() -> None:
    result = _classified().with_archive(ArchiveStatus.STORED, "2026-11-25/NEUTROPHIL/1/x.jpg")

    again = Result.from_json(result.to_json())

    assert again == result
    assert again.status is Status.CLASSIFIED and again.archive.status is ArchiveStatus.STORED


def test_the_json_is_the_documented_schema_shape() -> None:
    rejected = Result.rejected(SOURCE, "the file is empty", "preprocess", {"preprocess": 0.1}, {})

    doc = json.loads(rejected.to_json())

    assert doc["schema_version"] == SCHEMA_VERSION == "2" and doc["status"] == "rejected"
    assert doc["rejected_by"] == "preprocess" and doc["label"] is None
    assert doc["source"]["name"] == SOURCE.name  # accents and CJK kept as text, not escaped away
    assert doc["archive"] == {"status": "none", "location": None}
    assert "rejected_by" not in json.loads(_classified().to_json())


def test_metadata_answers_is_it_done_without_a_read() -> None:
    meta = _classified().with_archive(ArchiveStatus.PENDING).metadata()

    assert meta["source-generation"] == SOURCE.generation
    assert meta["status"] == "classified" and meta["archive"] == "pending"
    assert Source.from_metadata(meta) == SOURCE


def test_the_uploader_is_kept_when_known() -> None:
    result = replace(_classified(), source=replace(SOURCE, uploader="marie.curie"))

    assert Result.from_json(result.to_json()).source.uploader == "marie.curie"
    assert Source.from_metadata(result.metadata()) == result.source


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"schema_version": "2", "status": "classified"}',
        b'{"schema_version": "1", "status": "maybe",'
        b' "source": {"bucket": "u", "name": "n", "generation": "1"}}',
        b'{"schema_version": "1", "status": "classified", "source": "uploads/x"}',
        b'{"schema_version": "1", "status": "classified", "source": {"bucket": "u"}}',
        b'{"schema_version": "1", "status": "rejected", "rejected_by": "someone",'
        b' "source": {"bucket": "u", "name": "n", "generation": "1"}}',
    ],
)
def test_a_malformed_document_is_refused_with_one_error_type(raw: bytes) -> None:
    with pytest.raises(MalformedDocument):
        Result.from_json(raw)


def test_schema_1_documents_are_still_read() -> None:
    old = (
        b'{"schema_version": "1", "status": "classified", "label": "NEUTROPHIL", "uncertain": false,'
        b' "source": {"bucket": "u", "name": "n", "generation": "1"},'
        b' "model": {"name": "bloodcell-wbc", "version": "1.0.1"}}'
    )

    result = Result.from_json(old)

    assert result.label == "NEUTROPHIL" and result.ood_score is None and result.unfamiliar is None
    assert result.model is not None and result.model.calibration is None


def test_the_ood_verdict_and_the_calibration_travel_with_the_result() -> None:
    outputs = ("EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL", "OTHER")
    info = ModelInfo("bloodcell-wbc", "3.0.0", outputs, 0.5, 0.5, {}, calibration="lab-2026-12-07-1")
    prediction = Prediction(
        "NEUTROPHIL", 0.9, {"NEUTROPHIL": 0.9}, 0.01, True, ood_score=4.2, unfamiliar=True
    )

    doc = json.loads(Result.classified(SOURCE, prediction, info, {}, {}).to_json())
    again = Result.from_json(json.dumps(doc))

    assert doc["ood_score"] == 4.2 and doc["unfamiliar"] is True
    assert doc["model"] == {"name": "bloodcell-wbc", "version": "3.0.0", "calibration": "lab-2026-12-07-1"}
    assert (
        again.unfamiliar is True and again.model is not None and again.model.calibration == "lab-2026-12-07-1"
    )
