"""The report's input: the slide as ``bloodcell.slides`` loads it, with the review's verdicts and sign-off.

Review and sign-off come from ``bloodcell.review``'s two-function interface
(``reviewed_labels``, ``slide_status``); the cells themselves from the one slide loader.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bloodcell import results
from bloodcell.review import reviewed_labels, slide_status
from bloodcell.settings import Settings
from bloodcell.slides.cell import SignOff, Slide
from bloodcell.slides.ids import check_slide_id
from bloodcell.slides.loader import SlideNotFound
from bloodcell.slides.loader import load_slide as load_cells_of
from bloodcell.storage import Storage

__all__ = ["SlideNotFound", "load_slide"]


def _stamp(value: Any) -> str:
    """A time as the result documents write it, whether the review layer hands a datetime or text."""
    return results.iso(value) if isinstance(value, datetime) else str(value)


def load_slide(storage: Storage, settings: Settings, slide: str) -> Slide:
    """Every upload of the slide with its result (or pending), reviews applied, sorted by name."""
    slide = check_slide_id(slide)  # refused before any read
    state = slide_status(storage, settings, slide)
    sign_off = SignOff(by=str(state.by or "unknown"), at=_stamp(state.at or "")) if state.signed_off else None
    return load_cells_of(storage, settings, slide, reviewed_labels(storage, settings, slide), sign_off)
