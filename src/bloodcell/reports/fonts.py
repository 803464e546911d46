"""Fonts for the PDF: names from French and Chinese labs must print, not turn into boxes.

Latin, Greek and Cyrillic text uses DejaVu Sans (Debian's fonts-dejavu-core) and
Chinese, Japanese and Korean runs Droid Sans Fallback (fonts-droid-fallback), both
embedded (subset) so every reader shows them. Where those packages are missing the
PDF still names its text correctly: Helvetica for Latin-1, and reportlab's built-in
STSong-Light CID font, which readers draw only if they have a CJK font of their own.
"""

from __future__ import annotations

import logging
import re
from functools import cache
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFont

log = logging.getLogger(__name__)

FONT_DIR = Path("/usr/share/fonts/truetype")
DEJAVU = (FONT_DIR / "dejavu" / "DejaVuSans.ttf", FONT_DIR / "dejavu" / "DejaVuSans-Bold.ttf")
DROID = FONT_DIR / "droid" / "DroidSansFallbackFull.ttf"
_RUNS = re.compile(
    r"[\u1100-\u11ff\u2e80-\u2fdf\u3000-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff"
    r"\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]+"
)


@cache
def fonts() -> tuple[str, str, str]:
    """(regular, bold, CJK) font names, registered once per process."""
    regular, bold = "Helvetica", "Helvetica-Bold"
    if all(path.is_file() for path in DEJAVU):
        pdfmetrics.registerFont(TTFont("DejaVuSans", str(DEJAVU[0])))
        pdfmetrics.registerFont(TTFont("DejaVuSans-Bold", str(DEJAVU[1])))
        regular, bold = "DejaVuSans", "DejaVuSans-Bold"
    else:
        log.warning("fonts-dejavu-core not installed: names outside Latin-1 may not print")
    if DROID.is_file():
        pdfmetrics.registerFont(TTFont("DroidSansFallback", str(DROID)))
        return regular, bold, "DroidSansFallback"
    log.warning("fonts-droid-fallback not installed: CJK names print only where the reader has a CJK font")
    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    return regular, bold, "STSong-Light"


def markup(text: str) -> str:
    """Paragraph markup for any text: escaped, with CJK and Korean runs in a font that has them."""
    cjk = fonts()[2]
    out, last = [], 0
    for match in _RUNS.finditer(text):
        out.append(escape(text[last : match.start()]))
        out.append(f'<font name="{cjk}">{escape(match.group(0))}</font>')
        last = match.end()
    out.append(escape(text[last:]))
    return "".join(out)
