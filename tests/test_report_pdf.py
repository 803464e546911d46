"""The per-slide PDF: it opens, has the pages the layout promises, and its text says what it must."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from bloodcell.reports import pdf
from bloodcell.reports.gallery import crop_reader
from bloodcell.reports.loader import load_slide
from bloodcell.reports.stats import report_differential as differential
from bloodcell.settings import Settings
from bloodcell.slides.cell import SignOff
from bloodcell.slides.cell import Slide as SlideReport
from bloodcell.storage import LocalStorage
from tests.support.pdf import poppler
from tests.support.report_slides import Spec, write_slide

SLIDE = "lame-é-李-07"


def real_images(datasets: Path) -> dict[str, list[bytes]]:
    root = datasets / "kaggle-blood-cells" / "TEST_SIMPLE"
    return {d.name: [p.read_bytes() for p in sorted(d.glob("*.jp*g"))[:4]] for d in sorted(root.iterdir())}


@pytest.fixture
def report(local: LocalStorage, settings: Settings, datasets: Path) -> SlideReport:
    images = real_images(datasets)
    counts = {"NEUTROPHIL": 33, "LYMPHOCYTE": 12, "MONOCYTE": 4, "EOSINOPHIL": 2}
    for label, n in counts.items():
        cells = [
            Spec(label, name=f"{label.lower()}-{i:02d}-é.jpg", uploader="Émilie Durand-王") for i in range(n)
        ]
        write_slide(local, settings, SLIDE, cells, images[label])
    write_slide(
        local, settings, SLIDE, [Spec("MONOCYTE", uncertain=True, name="douteuse-ç.jpg")], images["MONOCYTE"]
    )
    write_slide(local, settings, SLIDE, [Spec(None, name="細胞-flou.jpg")], images["MONOCYTE"])
    # as the slide page names uploads: a random token before the person's file name
    write_slide(
        local, settings, SLIDE, [Spec("EOSINOPHIL", name="0a1b2c3d4e-éosino.jpg")], images["EOSINOPHIL"]
    )
    return load_slide(local, settings, SLIDE)


def test_pdf_pages_and_text(
    report: SlideReport, local: LocalStorage, settings: Settings, tmp_path: Path
) -> None:
    diff = differential(report.cells, wbc=6.4)
    data = pdf.render(report, diff, crop_reader(local, settings))

    info = poppler("pdfinfo", data, tmp_path)
    pages = int(re.search(r"^Pages:\s+(\d+)", info, re.MULTILINE).group(1))  # type: ignore[union-attr]
    # page 1, then N 33 -> 2 pages of 30, L 12 -> 1, M 4 -> 1, E 3 -> 1
    assert pages == 1 + 2 + 1 + 1 + 1 == pdf.page_count(report)
    text = poppler("pdftotext", data, tmp_path, "-layout")
    first = text.split("\f")[0]
    assert SLIDE in first
    for word in ("Neutrophil", "Lymphocyte", "Monocyte", "Eosinophil"):
        assert word in first
    for row in diff.rows:
        assert f"{row.ci_low:.1f}–{row.ci_high:.1f} %" in first  # the intervals
        assert f"{row.percent:.1f} %" in first
    assert "bloodcell-wbc 1.0.0" in first  # the model and its version
    assert "not signed off: preliminary report" in first
    assert "Research use only" in first
    assert "1 uncertain, 1 rejected" in first
    assert "6.4 ×10⁹/L" in first
    gallery = text.split("\f")[1:]
    assert "Neutrophil · 33 cells · page 1 of 2" in gallery[0]
    assert "neutrophil-00-é.jpg" in gallery[0]
    assert "Eosinophil · 3 cells" in gallery[4]
    assert "éosino.jpg" in gallery[4] and "0a1b2c3d4e" not in text
    assert "douteuse" not in text  # uncertain cells are not in the gallery of counted cells


def test_unicode_names_print(
    report: SlideReport, local: LocalStorage, settings: Settings, tmp_path: Path
) -> None:
    signed = replace(report, sign_off=SignOff("Dr Zoë Hernández-李小龙", "2026-12-02T08:00:00Z"))
    data = pdf.render(signed, differential(signed.cells), crop_reader(local, settings))
    first = poppler("pdftotext", data, tmp_path).split("\f")[0]
    assert "Dr Zoë Hernández-李小龙, 2026-12-02 08:00:00 UTC" in first  # the lab's zone, to the second
    assert "lame-é-李-07" in first
    assert "Émilie Durand-王" in first  # the uploader, from the results' source
    # the fonts of the text travel inside the file, so any reader draws the glyphs
    # (reportlab always declares Helvetica, one of the 14 fonts every reader has)
    listed = poppler("pdffonts", data, tmp_path).splitlines()[2:]
    embedded = {line.split()[0].split("+")[-1]: line.split()[-5] for line in listed}
    embedded.pop("Helvetica", None)
    assert embedded == {"DejaVuSans": "yes", "DejaVuSans-Bold": "yes", "DroidSansFallback": "yes"}


def test_a_large_class_is_shown_up_to_its_limit(
    local: LocalStorage, settings: Settings, tmp_path: Path
) -> None:
    from tests.support.common import image_bytes

    n = pdf.PER_CLASS + 7
    write_slide(
        local, settings, "big", [Spec("LYMPHOCYTE") for _ in range(n)], [image_bytes((96, 96), "JPEG")]
    )
    report = load_slide(local, settings, "big")
    data = pdf.render(report, differential(report.cells), crop_reader(local, settings))
    text = poppler("pdftotext", data, tmp_path)
    assert text.count("\f") == pdf.page_count(report) == 1 + pdf.PER_CLASS // pdf.PER_PAGE
    assert "7 more not shown" in text
