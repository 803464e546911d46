"""Slides and their review: records of what people did, and the state those records add up to.

``reviewed_labels`` and ``slide_status`` are the interface other packages (reports,
training) read the review through; they rebuild everything from the buckets.
"""

from bloodcell.review.records import CellRef, ReviewRecord
from bloodcell.review.state import SlideStatus, reviewed_labels, slide_status

__all__ = [
    "CellRef",
    "ReviewRecord",
    "SlideStatus",
    "reviewed_labels",
    "slide_status",
]
