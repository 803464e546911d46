"""The per-slide PDF: a summary page, then a gallery of the counted cells, one class at a time.

Layout is fixed so page counts are predictable: page 1 holds the facts, the
differential with its intervals and flags, and the chart; each class then starts a
new page of at most ``PER_PAGE`` crops (``PER_CLASS`` at most per class, the rest
counted, not shown), so a report has ``1 + sum(ceil(shown_c / PER_PAGE))`` pages.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Image, PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from reportlab.platypus.flowables import Flowable

from bloodcell.reports.chart import differential_chart
from bloodcell.reports.fonts import fonts, markup
from bloodcell.reports.pdf_notes import amended_banner, excluded_page_count, excluded_pages, unfamiliar_banner
from bloodcell.slides.categories import COUNTED_LABELS, category_words
from bloodcell.slides.cell import Cell, Slide
from bloodcell.slides.differential import Differential
from bloodcell.slides.ids import image_name, printable
from bloodcell.slides.times import lab_time
from bloodcell.slides.vocabulary import BASIS_WORDS

DISCLAIMER = (
    "Research use only, not a diagnosis: these results come from an image classifier and must not be "
    "used for clinical decisions without review by a qualified person."
)
COLUMNS, ROWS = 5, 6
PER_PAGE = COLUMNS * ROWS
PER_CLASS = 120
CROP_SIDE = 30 * mm
Crops = Callable[[Cell], bytes | None]
WATERMARK = "PRELIMINARY"


@dataclass(frozen=True)
class Styles:
    body: ParagraphStyle
    small: ParagraphStyle
    title: ParagraphStyle
    heading: ParagraphStyle
    regular: str
    bold: str


def _styles() -> Styles:
    regular, bold, _ = fonts()
    body = ParagraphStyle("body", fontName=regular, fontSize=9.5, leading=12.5)
    return Styles(
        body=body,
        small=ParagraphStyle(
            "small", parent=body, fontSize=7.5, leading=9.5, textColor=colors.HexColor("#546e7a")
        ),
        title=ParagraphStyle("title", parent=body, fontName=bold, fontSize=16, leading=20, spaceAfter=4),
        heading=ParagraphStyle(
            "heading", parent=body, fontName=bold, fontSize=11.5, leading=15, spaceAfter=4
        ),
        regular=regular,
        bold=bold,
    )


def page_count(report: Slide) -> int:
    """How many pages ``render`` makes for this slide: the layout rule, stated once."""
    by_class = _gallery(report)
    gallery = sum(math.ceil(len(shown) / PER_PAGE) for shown, _ in by_class.values() if shown)
    return 1 + gallery + excluded_page_count(report)


def _gallery(report: Slide) -> dict[str, tuple[list[Cell], int]]:
    groups: dict[str, list[Cell]] = {}
    reviewed = report.reviewed
    for cell in report.cells:
        if label := cell.counted_as(reviewed):
            groups.setdefault(label, []).append(cell)

    return {
        label: (groups[label][:PER_CLASS], max(0, len(groups[label]) - PER_CLASS))
        for label in COUNTED_LABELS
        if label in groups
    }


def _facts(report: Slide, diff: Differential, s: Styles, zone: str) -> Table:
    sign = "not signed off: preliminary report"
    if report.sign_off:
        how = f" ({report.sign_off.signature})" if report.sign_off.signature else ""
        sign = f"{report.sign_off.by}, {lab_time(report.sign_off.at, zone)}{how}"
        if report.sign_off.amends:
            sign += f"; amends the version of {lab_time(report.sign_off.amends.at, zone)}"
    rows = [
        ("Slide", report.slide),
        ("Patient", report.patient.words),
        ("Uploaded", lab_time(report.first_upload, zone)),
        ("Last result", lab_time(report.last_result, zone)),
        ("Uploaded by", ", ".join(report.uploaders) or "–"),
        ("Reviewed by", ", ".join(report.reviewers) or "not reviewed"),
        ("Signed off", sign),
        ("Model", ", ".join(report.models) or "–"),
        ("Counts from", BASIS_WORDS[diff.basis]),
        ("White-cell count", "–" if diff.wbc is None else f"{diff.wbc:g} ×10⁹/L"),
    ]
    table = Table(
        [[Paragraph(f"<b>{k}</b>", s.body), Paragraph(markup(v), s.body)] for k, v in rows],
        colWidths=[34 * mm, 140 * mm],
    )
    table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("BOTTOMPADDING", (0, 0), (-1, -1), 1)]))
    return table


def _differential(diff: Differential, s: Styles) -> Table:
    absolute = diff.wbc is not None
    head = ["Cell type", "Count", "Percent", "95 % CI", "Reference", "Flag"] + (
        ["×10⁹/L"] if absolute else []
    )
    data: list[list[str]] = [head]
    for row in diff.rows:
        line = [
            category_words(row.label),
            str(row.count),
            row.shown,
            "–" if row.ci_low is None or row.ci_high is None else f"{row.ci_low:.1f}–{row.ci_high:.1f} %",
            f"{row.ref_low:g}–{row.ref_high:g} %",
            row.flag or "",
        ]
        if absolute:
            line.append("–" if row.absolute is None else f"{row.absolute:.2f}")
        data.append(line)
    table = Table(data, hAlign="LEFT")
    style = [
        ("FONTNAME", (0, 0), (-1, -1), s.regular),
        ("FONTNAME", (0, 0), (-1, 0), s.bold),
        ("FONTSIZE", (0, 0), (-1, -1), 9.5),
        ("LINEBELOW", (0, 0), (-1, 0), 0.8, colors.black),
        ("LINEBELOW", (0, 1), (-1, -1), 0.25, colors.HexColor("#cfd8dc")),
        ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
    ]
    for i, row in enumerate(diff.rows, start=1):
        if row.flag:
            style += [
                ("TEXTCOLOR", (5, i), (5, i), colors.HexColor("#c62828")),
                ("FONTNAME", (5, i), (5, i), s.bold),
            ]
    table.setStyle(TableStyle(style))
    return table


def _tallies(diff: Differential) -> str:
    excluded = ", ".join(f"{n} {category_words(k).lower()}" for k, n in sorted(diff.excluded.items()))
    nucleated = diff.nucleated_red_per_100
    flags = (
        "H/L: outside the reference range (judged on the printed value)."
        if diff.basis == "reviewed"
        else "No H/L flags: nobody has verified these model labels."
    )
    return (
        f"{diff.counted} cells counted. Not counted: {diff.uncertain} uncertain, {diff.rejected} rejected, "
        f"{diff.excluded_total} excluded by review{f' ({excluded})' if excluded else ''}, "
        f"{diff.pending} without a result yet, {diff.unreviewed} not reviewed. "
        f"{diff.reviewed} of {diff.total} cells reviewed. "
        + (
            f"Nucleated red cells: {diff.nucleated_red} ({nucleated:.1f} per 100 white cells). "
            if nucleated
            else ""
        )
        + "Intervals are exact (Clopper-Pearson) 95 % intervals; with 100 cells a class at 5 % lies "
        f"anywhere from 1.6 to 11.3 %. {flags}"
    )


def _gallery_pages(report: Slide, crops: Crops, s: Styles) -> list[Flowable]:
    story: list[Flowable] = []
    for label, (shown, hidden) in _gallery(report).items():
        pages = math.ceil(len(shown) / PER_PAGE)
        for page in range(pages):
            chunk = shown[page * PER_PAGE : (page + 1) * PER_PAGE]
            story.append(PageBreak())
            more = f" · {hidden} more not shown" if hidden and page == pages - 1 else ""
            story.append(
                Paragraph(
                    f"{category_words(label)} · {len(shown) + hidden} cells · "
                    f"page {page + 1} of {pages}{more}",
                    s.heading,
                )
            )
            cells = [_thumb(cell, crops, s) for cell in chunk]
            grid = [cells[i : i + COLUMNS] for i in range(0, len(cells), COLUMNS)]
            grid[-1] += [[] for _ in range(COLUMNS - len(grid[-1]))]
            table = Table(grid, colWidths=[CROP_SIDE + 5 * mm] * COLUMNS, hAlign="LEFT")
            table.setStyle(
                TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("ALIGN", (0, 0), (-1, -1), "CENTER")])
            )
            story.append(table)
    return story


def _thumb(cell: Cell, crops: Crops, s: Styles) -> list[Flowable]:
    data = crops(cell)
    picture: Flowable = (
        Image(io.BytesIO(data), width=CROP_SIDE, height=CROP_SIDE)
        if data
        else Paragraph("no picture", s.small)
    )
    name = printable(image_name(cell.upload_name))  # the slide page's upload token is not a name
    name = name if len(name) <= 24 else name[:11] + "…" + name[-12:]
    note = "reviewed" if cell.review else ("" if cell.confidence is None else f"p {cell.confidence:.2f}")
    return [picture, Paragraph(markup(name), s.small), Paragraph(note, s.small)]


def render(report: Slide, diff: Differential, crops: Crops, zone: str = "UTC") -> bytes:
    """The PDF's bytes; ``crops`` gives a small JPEG of a cell (or None), so no storage is read here.

    Times are printed in the lab's time zone ``zone`` (``LAB_TIMEZONE``), to the second.
    """
    s = _styles()
    buffer = io.BytesIO()

    def footer(c: Any, _doc: Any) -> None:
        c.saveState()
        c.setFont(s.regular, 7)
        c.setFillColor(colors.HexColor("#546e7a"))
        page = c.getPageNumber()
        line = Paragraph(markup(f"bloodcell · slide {report.slide} · page {page}"), s.small)
        line.wrapOn(c, 120 * mm, 10 * mm)
        line.drawOn(c, 18 * mm, 9 * mm)
        c.drawRightString(A4[0] - 18 * mm, 10 * mm, "Research use only, not a diagnosis")
        if report.sign_off is None:  # every page of an unsigned report says so, not just the first
            c.setFont(s.bold, 64)
            c.setFillColor(colors.Color(0.9, 0.22, 0.21, alpha=0.16))
            c.translate(A4[0] / 2, A4[1] / 2)
            c.rotate(45)
            c.drawCentredString(0, -20, WATERMARK)
        c.restoreState()

    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=16 * mm,
        bottomMargin=18 * mm,
        title=f"bloodcell differential, slide {report.slide}",
        author="bloodcell",
        subject="White-cell differential (research use only)",
    )
    disclaimer = Table([[Paragraph(f"<b>{DISCLAIMER}</b>", s.body)]], colWidths=[174 * mm])
    disclaimer.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#fff8e1")),
                ("BOX", (0, 0), (-1, -1), 0.6, colors.HexColor("#f9a825")),
            ]
        )
    )
    story: list[Flowable] = [
        Paragraph(markup(f"White-cell differential · slide {printable(report.slide)}"), s.title),
        disclaimer,
        *amended_banner(report, zone, s.body),
        *unfamiliar_banner(report, s.body),
        Spacer(1, 4 * mm),
        _facts(report, diff, s, zone),
        Spacer(1, 4 * mm),
        Paragraph("Differential", s.heading),
        _differential(diff, s),
        Spacer(1, 2 * mm),
        Paragraph(_tallies(diff), s.small),
        Spacer(1, 3 * mm),
        differential_chart(diff, s.regular),
        *_gallery_pages(report, crops, s),
        *excluded_pages(report, s.heading, s.body),
    ]
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()
