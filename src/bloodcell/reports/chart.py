"""The differential bar chart for the PDF: bars, 95 % intervals as whiskers, reference bands behind."""

from __future__ import annotations

from reportlab.graphics.shapes import Drawing, Line, Rect, String
from reportlab.lib import colors

from bloodcell.slides.categories import category_words
from bloodcell.slides.differential import Differential

BLUE, RED = colors.HexColor("#1e88e5"), colors.HexColor("#e53935")
BAND, BAND_EDGE = colors.Color(0.26, 0.63, 0.28, alpha=0.25), colors.HexColor("#2e7d32")


def differential_chart(diff: Differential, font: str, width: float = 440, height: float = 190) -> Drawing:
    left, bottom, top_pad = 40.0, 34.0, 10.0
    plot_w, plot_h = width - left - 10, height - bottom - top_pad
    drawing = Drawing(width, height)

    def y(percent: float) -> float:
        return bottom + plot_h * max(0.0, min(100.0, percent)) / 100.0

    for tick in range(0, 101, 20):
        drawing.add(Line(left, y(tick), left + plot_w, y(tick), strokeColor=colors.HexColor("#e0e0e0")))
        drawing.add(String(left - 4, y(tick) - 3, f"{tick} %", fontName=font, fontSize=7, textAnchor="end"))
    slot = plot_w / len(diff.rows)
    for i, row in enumerate(diff.rows):
        x0 = left + i * slot + slot * 0.25
        bar_w = slot * 0.5
        band = Rect(x0 - 4, y(row.ref_low), bar_w + 8, y(row.ref_high) - y(row.ref_low))
        band.fillColor, band.strokeColor, band.strokeDashArray = BAND, BAND_EDGE, [2, 2]
        drawing.add(band)
        if row.percent is not None:
            bar = Rect(x0, bottom, bar_w, y(row.percent) - bottom)
            bar.fillColor, bar.strokeColor = (RED if row.flag else BLUE), None
            drawing.add(bar)
            if row.ci_low is not None and row.ci_high is not None:
                mid = x0 + bar_w / 2
                drawing.add(Line(mid, y(row.ci_low), mid, y(row.ci_high), strokeWidth=1.2))
                for end in (row.ci_low, row.ci_high):
                    drawing.add(Line(mid - 5, y(end), mid + 5, y(end), strokeWidth=1.2))
            drawing.add(String(x0 + bar_w + 6, y(row.percent) + 2, row.shown, fontName=font, fontSize=7))
        drawing.add(
            String(
                x0 + bar_w / 2,
                bottom - 12,
                category_words(row.label),
                fontName=font,
                fontSize=8,
                textAnchor="middle",
            )
        )
    legend = "bars: this slide · whiskers: 95 % interval · green band: reference range"
    drawing.add(String(left, 4, legend, fontName=font, fontSize=7, fillColor=colors.HexColor("#546e7a")))
    return drawing
