"""The PDF's parts that speak of the review itself: the amended-report banner and the cells it excluded.

Kept apart from the layout of counts and crops (``pdf``) so each file stays small.
Excluded cells get pages of their own, ``EXCLUDED_PER_PAGE`` rows each, after the
gallery, so the page-count rule stays one line.
"""

from __future__ import annotations

import math

from reportlab.lib import colors
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import PageBreak, Paragraph, Table, TableStyle
from reportlab.platypus.flowables import Flowable

from bloodcell.reports.fonts import markup
from bloodcell.slides.categories import BY_KEY, COUNTED, category_words
from bloodcell.slides.cell import Cell, Slide
from bloodcell.slides.ids import image_name, printable
from bloodcell.slides.times import lab_time

EXCLUDED_PER_PAGE = 40
AMENDED = "Amended report"


def amended_banner(report: Slide, zone: str, style: ParagraphStyle) -> list[Flowable]:
    """On page 1 of a re-signed slide: which version this replaces, when it was signed, and why reopened."""
    sign_off = report.sign_off
    if sign_off is None or sign_off.amends is None:
        return []
    earlier = sign_off.amends
    text = (
        f"<b>{AMENDED}</b>: replaces the report signed off by {markup(earlier.by)} "
        f"at {lab_time(earlier.at, zone)}. "
        f"Reason for the amendment: {markup(earlier.reason or 'not recorded')}."
    )
    box = Table([[Paragraph(text, style)]], colWidths=[174 * mm])
    box.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#e3f2fd")),
                ("BOX", (0, 0), (-1, -1), 0.8, colors.HexColor("#1565c0")),
            ]
        )
    )
    return [box]


def unfamiliar_banner(report: Slide, style: ParagraphStyle) -> list[Flowable]:
    """On page 1 of a slide whose images are unlike the training data: review every cell, or calibrate."""
    warning = report.unfamiliar_warning
    if warning is None:
        return []
    box = Table([[Paragraph(f"<b>{markup(warning)}</b>", style)]], colWidths=[174 * mm])
    box.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#ffe0b2")),
                ("BOX", (0, 0), (-1, -1), 0.8, colors.HexColor("#e65100")),
            ]
        )
    )
    return [box]


def excluded_cells(report: Slide) -> list[Cell]:
    """Reviewed cells left out of the white-cell count, in name order: their category says why."""
    return [c for c in report.cells if c.review and BY_KEY[c.review.label].kind != COUNTED]


def excluded_page_count(report: Slide) -> int:
    return math.ceil(len(excluded_cells(report)) / EXCLUDED_PER_PAGE)


def excluded_pages(report: Slide, heading: ParagraphStyle, body: ParagraphStyle) -> list[Flowable]:
    cells = excluded_cells(report)
    pages = math.ceil(len(cells) / EXCLUDED_PER_PAGE)
    story: list[Flowable] = []
    for page in range(pages):
        chunk = cells[page * EXCLUDED_PER_PAGE : (page + 1) * EXCLUDED_PER_PAGE]
        story.append(PageBreak())
        story.append(
            Paragraph(f"Cells excluded by review · {len(cells)} cells · page {page + 1} of {pages}", heading)
        )
        rows = [
            [
                Paragraph("<b>Image</b>", body),
                Paragraph("<b>Category</b>", body),
                Paragraph("<b>By</b>", body),
            ]
        ]
        for cell in chunk:
            assert cell.review is not None
            rows.append(
                [
                    Paragraph(markup(printable(image_name(cell.upload_name))), body),
                    Paragraph(markup(category_words(cell.review.label)), body),
                    Paragraph(markup(cell.review.reviewer), body),
                ]
            )
        table = Table(rows, colWidths=[90 * mm, 50 * mm, 34 * mm], hAlign="LEFT")
        table.setStyle(
            TableStyle(
                [
                    ("LINEBELOW", (0, 0), (-1, 0), 0.8, colors.black),
                    ("LINEBELOW", (0, 1), (-1, -1), 0.25, colors.HexColor("#cfd8dc")),
                    ("TOPPADDING", (0, 0), (-1, -1), 1),
                    ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
                ]
            )
        )
        story.append(table)
    return story
