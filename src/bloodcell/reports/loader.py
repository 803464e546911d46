"""The report's input: the slide as ``bloodcell.slides`` loads it, with the review's verdicts and sign-off.

Review, sign-off and patient come from ``bloodcell.review``'s replayed trail
(``slide_review``); the cells themselves from the one slide loader.
"""

from __future__ import annotations

from bloodcell.review.state import slide_review
from bloodcell.settings import Settings
from bloodcell.slides.cell import Slide
from bloodcell.slides.ids import check_slide_id
from bloodcell.slides.loader import SlideNotFound
from bloodcell.slides.loader import load_slide as load_cells_of
from bloodcell.storage import Storage

__all__ = ["SlideNotFound", "load_slide"]


def load_slide(storage: Storage, settings: Settings, slide: str) -> Slide:
    """Every upload of the slide with its result (or pending), reviews applied, sorted by name.

    The sign-off carries the version it amends (a re-signed slide), and the slide
    the patient's age and sex when given, all from one read of the trail.
    """
    slide = check_slide_id(slide)  # refused before any read
    review = slide_review(storage, settings, slide)
    return load_cells_of(storage, settings, slide, review.cells, review.sign_off, review.patient)
