"""The web app's pure batch logic: names, stages, the differential count and the CSV."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from bloodcell.results import Result, Source, Status
from bloodcell.storage import check_object_name
from bloodcell.web import batch, charts
from bloodcell.web.batch import Entry

LABELS = ("EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL")


def classified(
    label: str, confidence: float = 0.9, uncertain: bool = False, generation: str = "g1"
) -> Result:
    rest = (1 - confidence) / 3
    return Result(
        status=Status.CLASSIFIED,
        source=Source("uploads", "x", generation),
        label=label,
        confidence=confidence,
        uncertain=uncertain,
        probabilities={name: confidence if name == label else rest for name in LABELS},
        timings_ms={"preprocess": 12.5, "inference": 3.5},
        timestamps={"uploaded": "2025-01-01T10:00:00.000Z", "classified": "2025-01-01T10:00:01.500Z"},
    )


def rejected(reason: str = "the file is not an image", generation: str = "g1") -> Result:
    return Result(
        status=Status.REJECTED,
        source=Source("uploads", "x", generation),
        reason=reason,
        rejected_by="preprocess",
    )


def done(original: str, result: Result) -> Entry:
    entry = Entry(
        original=original, name=f"web/20250101/0123456789-{original}", generation="g1", stage=batch.UPLOADED
    )
    assert batch.advance(entry, False, result, now=1.0, timeout=60)
    return entry


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("cell.jpg", "cell.jpg"),
        ("../../etc/passwd.PNG", "passwd.png"),
        ("C:\\Users\\me\\slide 1 (a).TIFF", "slide_1_a.tiff"),
        ("Zellbild-ä.jpeg", "Zellbild-a.jpeg"),
        ("...", "image"),
        ("", "image"),
        ("name\x00with\ncontrol.jpg", "name_with_control.jpg"),
        ("x" * 300 + ".webp", "x" * 75 + ".webp"),
    ],
)
def test_sanitise_name_keeps_only_safe_characters(original: str, expected: str) -> None:
    assert batch.sanitise_name(original) == expected


def test_object_names_are_unique_dated_and_valid() -> None:
    now = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)
    first, second = batch.object_name("cell.jpg", now), batch.object_name("cell.jpg", now)
    assert first != second
    assert first.startswith("web/20250304/") and first.endswith("-cell.jpg")
    assert check_object_name(batch.object_name("../../x/../.jpg", now))
    assert batch.display_name(first) == "cell.jpg"
    assert batch.display_name("dropped/by/hand.png") == "hand.png"


@pytest.mark.parametrize(
    ("name", "size", "refused"),
    [
        ("a.jpg", 10, False),
        ("a.JPEG", 10, False),
        ("a.tif", 10, False),
        ("a.txt", 10, True),
        ("noext", 10, True),
        ("a.png", 0, True),
        ("a.png", 1001, True),
    ],
)
def test_refusal(name: str, size: int, refused: bool) -> None:
    assert (batch.refusal(name, size, max_bytes=1000) is not None) == refused


def test_advance_through_the_stages() -> None:
    entry = Entry(original="a.jpg", name="web/a.jpg", generation="g1", stage=batch.UPLOADED, started=0.0)
    assert not batch.advance(entry, False, None, now=1.0, timeout=60)
    assert batch.advance(entry, True, None, now=1.0, timeout=60)
    assert entry.stage == batch.PREPROCESSED
    # a result for another version of the same name is not ours
    assert not batch.advance(entry, True, classified("MONOCYTE", generation="other"), now=2.0, timeout=60)
    assert batch.advance(entry, False, classified("MONOCYTE"), now=2.0, timeout=60)
    assert entry.stage == batch.CLASSIFIED and entry.final
    assert entry.result is not None and entry.result.label == "MONOCYTE"
    assert not batch.advance(entry, False, rejected(), now=3.0, timeout=60)


def test_timeout_then_late_result() -> None:
    entry = Entry(original="a.jpg", name="web/a.jpg", generation="g1", stage=batch.UPLOADED, started=0.0)
    assert batch.advance(entry, False, None, now=61.0, timeout=60)
    assert entry.stage == batch.TIMED_OUT and "60 s" in (entry.reason or "") and not entry.final
    assert batch.advance(entry, False, rejected("too small"), now=70.0, timeout=60)
    assert entry.stage == batch.REJECTED and entry.reason == "too small"


def test_differential_excludes_uncertain_and_rejected() -> None:
    entries = [
        *(done(f"n{i}.jpg", classified("NEUTROPHIL")) for i in range(5)),
        *(done(f"l{i}.jpg", classified("LYMPHOCYTE")) for i in range(3)),
        done("m.jpg", classified("MONOCYTE")),
        done("e.jpg", classified("EOSINOPHIL")),
        done("u.jpg", classified("NEUTROPHIL", 0.4, uncertain=True)),
        done("r.jpg", rejected()),
        Entry(original="refused.txt", stage=batch.REFUSED, reason="not an image"),
        Entry(original="p.jpg", name="web/p.jpg", stage=batch.PREPROCESSED),
    ]
    diff = batch.batch_differential(entries)
    assert (diff.counted, diff.uncertain, diff.rejected, diff.pending, diff.total) == (10, 1, 2, 1, 14)
    rows = {row.label: row for row in diff.rows}
    assert [row.label for row in diff.rows] == ["NEUTROPHIL", "LYMPHOCYTE", "MONOCYTE", "EOSINOPHIL"]
    assert rows["NEUTROPHIL"].count == 5 and rows["NEUTROPHIL"].percent == pytest.approx(50.0)
    assert rows["NEUTROPHIL"].flag == ""
    assert rows["LYMPHOCYTE"].percent == pytest.approx(30.0) and rows["LYMPHOCYTE"].flag == ""
    # model labels nobody verified: above the range, yet never flagged
    assert rows["MONOCYTE"].percent == pytest.approx(10.0) and rows["MONOCYTE"].flag == ""
    assert rows["EOSINOPHIL"].percent == pytest.approx(10.0) and rows["EOSINOPHIL"].flag == ""
    assert sum(row.count for row in diff.rows) == diff.counted


def test_differential_flags_low_and_handles_empty() -> None:
    diff = batch.batch_differential([done("l.jpg", classified("LYMPHOCYTE"))])
    rows = {row.label: row for row in diff.rows}
    assert rows["NEUTROPHIL"].flag == "" and rows["LYMPHOCYTE"].flag == ""  # unverified: no flags
    empty = batch.batch_differential([])
    assert empty.counted == 0 and all(row.percent is None and row.flag == "" for row in empty.rows)


def test_csv_matches_entries_and_defuses_formulas() -> None:
    entries = [
        done("n.jpg", classified("NEUTROPHIL", 0.91)),
        done("u.jpg", classified("MONOCYTE", 0.41, uncertain=True)),
        done("=cmd.jpg", rejected("=HYPERLINK(1)")),
        Entry(original="x.txt", stage=batch.REFUSED, reason="not an accepted image type"),
    ]
    rows = list(csv.DictReader(io.StringIO(batch.to_csv(entries))))
    assert list(rows[0]) == list(batch.CSV_COLUMNS)
    assert [row["file_name"] for row in rows] == ["n.jpg", "u.jpg", "'=cmd.jpg", "x.txt"]
    assert [row["status"] for row in rows] == ["classified", "classified", "rejected", "refused"]
    assert rows[0]["model_label"] == "NEUTROPHIL" and rows[0]["confidence"] == "0.9100"
    assert rows[0]["p_neutrophil"] == "0.9100" and rows[0]["p_eosinophil"] == "0.0300"
    assert rows[1]["uncertain"] == "true" and rows[0]["uncertain"] == "false"
    assert rows[2]["reason"] == "'=HYPERLINK(1)" and rows[2]["model_label"] == ""
    assert rows[3]["object_name"] == "" and rows[3]["reason"] == "not an accepted image type"


def test_timings() -> None:
    result = classified("MONOCYTE")
    assert batch.processing_ms(result) == pytest.approx(16.0)
    assert batch.turnaround_s(result) == pytest.approx(1.5)
    bare = replace(result, timings_ms={}, timestamps={})
    assert batch.processing_ms(bare) is None and batch.turnaround_s(bare) is None


def test_charts_are_plain_options() -> None:
    option = charts.probability_chart(dict(classified("MONOCYTE", 0.7).probabilities or {}))
    values = [point["value"] for point in option["series"][0]["data"]]
    assert values == [10.0, 10.0, 70.0, 10.0]
    diff = batch.batch_differential([done("n.jpg", classified("NEUTROPHIL"))])
    series = charts.differential_chart(diff)["series"]
    assert [point["value"] for point in series[0]["data"]] == [100.0, 0.0, 0.0, 0.0]
    assert series[1]["data"] == [40.0, 20.0, 2.0, 1.0] and series[2]["data"] == [20.0, 20.0, 6.0, 3.0]


def test_csv_carries_the_other_probability() -> None:
    flagged = replace(classified("MONOCYTE", 0.7, uncertain=True), other_probability=0.62)
    text = batch.to_csv([done("o.jpg", flagged), done("r.jpg", rejected())])
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["other_probability"] == "0.6200" and rows[1]["other_probability"] == ""


@pytest.mark.parametrize(
    ("confidence", "other", "words"),
    [
        (0.45, None, "Uncertain: low confidence (45 %, below 60 %)"),
        (0.90, 0.62, "Uncertain: likely none of the four types ('other' 62 %, above 50 %)"),
        (0.40, 0.70, "Uncertain: likely none of the four types ('other' 70 %, above 50 %); low confidence"),
        (0.80, 0.10, "Uncertain: low confidence (80 %)"),  # the rule changed since: say what is known
    ],
)
def test_an_uncertain_cell_says_why(confidence: float, other: float | None, words: str) -> None:
    assert batch.uncertain_reason(confidence, other, 0.6, 0.5).startswith(words)


def test_sizes_read_the_same_everywhere() -> None:
    from bloodcell.formats import format_size

    assert [format_size(n) for n in (0, 512, 1536, 20 * 1024 * 1024, 1572864, 3 * 1024**3)] == [
        "0 bytes",
        "512 bytes",
        "1.5 KiB",
        "20 MiB",
        "1.5 MiB",
        "3 GiB",
    ]
    assert batch.refusal("big.jpg", 21 * 1024 * 1024, 20 * 1024 * 1024) == (
        "file is 21 MiB, over the limit of 20 MiB"
    )
