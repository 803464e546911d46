"""The report's input: one slide's cells, their reviews and the sign-off, as frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass

from bloodcell.contract import LABELS

CLASSIFIED, REJECTED, PENDING = "classified", "rejected", "pending"


@dataclass(frozen=True)
class Review:
    """A person's label for one cell; a label outside ``LABELS`` means "not a countable leukocyte"."""

    label: str
    reviewer: str
    at: str


@dataclass(frozen=True)
class SignOff:
    by: str
    at: str


@dataclass(frozen=True)
class ReportCell:
    """One upload of the slide and what became of it."""

    name: str  # object name in the upload bucket
    generation: str
    status: str  # classified, rejected or pending (no result yet)
    label: str | None = None
    confidence: float | None = None
    uncertain: bool = False
    probabilities: tuple[tuple[str, float], ...] = ()
    other_probability: float | None = None
    reason: str | None = None
    uploader: str | None = None
    uploaded: str | None = None
    finished: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    review: Review | None = None

    @property
    def counted_label(self) -> str | None:
        """The class this cell counts towards, or None: a review wins over the model."""
        if self.review is not None:
            return self.review.label if self.review.label in LABELS else None
        if self.status == CLASSIFIED and not self.uncertain:
            return self.label
        return None

    def probability(self, label: str) -> float | None:
        return dict(self.probabilities).get(label)


@dataclass(frozen=True)
class SlideReport:
    slide: str
    cells: tuple[ReportCell, ...]
    sign_off: SignOff | None = None

    @property
    def models(self) -> tuple[str, ...]:
        """Every "name version" that classified a cell of this slide, sorted."""
        return tuple(
            sorted(
                {f"{c.model_name} {c.model_version}" for c in self.cells if c.model_name and c.model_version}
            )
        )

    @property
    def uploaders(self) -> tuple[str, ...]:
        return tuple(sorted({c.uploader for c in self.cells if c.uploader}))

    @property
    def reviewers(self) -> tuple[str, ...]:
        return tuple(sorted({c.review.reviewer for c in self.cells if c.review}))

    @property
    def first_upload(self) -> str | None:
        return min((c.uploaded for c in self.cells if c.uploaded), default=None)

    @property
    def last_result(self) -> str | None:
        return max((c.finished for c in self.cells if c.finished), default=None)
