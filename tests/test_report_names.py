"""Names nobody chose carefully: bytes that are not UTF-8 and bidi overrides, in every report format."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

import pytest

from bloodcell.reports.render import report_bytes
from bloodcell.settings import Settings
from bloodcell.slides.ids import printable
from bloodcell.storage import LocalStorage
from tests.support.common import image_bytes
from tests.support.report_slides import Spec, write_slide

BAD = "bad\udcff.jpg"  # what `cp cell.jpg $'uploads/S4/bad\xff.jpg'` lists as
SPOOF = "cell\u202egpj.exe"  # reads "cellexe.jpg" where the override is obeyed


def test_printable_escapes_undecodable_bytes_and_bidi_controls() -> None:
    assert printable(BAD) == "bad\\xff.jpg"
    assert printable(SPOOF) == "cell\\u202egpj.exe"
    assert printable("lame-été-李.jpg") == "lame-été-李.jpg"


@pytest.mark.parametrize("kind", ["csv", "summary", "fhir", "pdf"])
def test_every_report_format_escapes_such_names(
    local: LocalStorage, settings: Settings, tmp_path: Path, kind: str
) -> None:
    write_slide(
        local,
        settings,
        "S4",
        [Spec("NEUTROPHIL", name=BAD, result=False), Spec("LYMPHOCYTE", name=SPOOF)],
        [image_bytes()],
    )

    data = report_bytes(local, settings, "S4", kind)

    text = data.decode("latin-1") if kind == "pdf" else data.decode("utf-8")  # text formats: valid UTF-8
    assert "\u202e" not in text
    if kind == "csv":
        names = [row["name"] for row in csv.DictReader(io.StringIO(text))]
        assert sorted(names) == ["S4/bad\\xff.jpg", "S4/cell\\u202egpj.exe"]
    elif kind == "fhir":
        json.loads(text)
    elif kind == "pdf":
        (tmp_path / "r.pdf").write_bytes(data)
        shown = subprocess.run(
            ["pdftotext", str(tmp_path / "r.pdf"), "-"], capture_output=True, text=True, check=True
        )
        assert "\u202e" not in shown.stdout
        assert "\\u202e" in shown.stdout  # the override is shown as its escape, not obeyed
