"""One cell of a slide: an upload's version, what the pipeline said of it, and what a person said.

The one cell type every page and report reads. Everything a view shows of a cell
is a property here, so a new field of the result is added in one place and every
view that lists cells can show it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bloodcell.ood import slide_unfamiliar
from bloodcell.results import ModelRef, Result
from bloodcell.slides.categories import BY_KEY, COUNTED
from bloodcell.slides.ids import image_name
from bloodcell.slides.vocabulary import CLASSIFIED, PENDING, REJECTED


@dataclass(frozen=True)
class Review:
    """A person's verdict on one cell: a category key (``categories.REVIEW_LABELS``)."""

    label: str
    reviewer: str
    at: str


@dataclass(frozen=True)
class Amends:
    """The earlier signed version a re-signed slide's report replaces, and why it was reopened."""

    by: str
    at: str
    reason: str | None


@dataclass(frozen=True)
class SignOff:
    by: str
    at: str
    signature: str | None = None  # how the signer was re-authenticated, as the trail says
    amends: Amends | None = None  # set when an earlier sign-off was reopened: an amended report

    @property
    def amended(self) -> bool:
        return self.amends is not None


@dataclass(frozen=True)
class Patient:
    """What the lab entered about the patient for choosing reference ranges; both optional."""

    age: int | None = None  # years
    sex: str | None = None  # "F" or "M"

    @property
    def words(self) -> str:
        parts = [
            f"{self.age} years" if self.age is not None else "",
            {"F": "female", "M": "male"}.get(self.sex or "", ""),
        ]
        return ", ".join(p for p in parts if p) or "not given"


@dataclass(frozen=True)
class Cell:
    """One version of one upload; ``result`` is None until the pipeline answers.

    ``problem`` says why a result exists but cannot be read: such a cell counts as
    rejected, never as pending for ever.
    """

    upload_name: str
    generation: str
    uploaded: datetime | None = None  # when the bucket says the upload was written
    result: Result | None = None
    review: Review | None = None
    problem: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.upload_name, self.generation)

    @property
    def status(self) -> str:
        if self.problem is not None:
            return REJECTED
        if self.result is None:
            return PENDING
        return CLASSIFIED if self.result.is_classified else REJECTED

    @property
    def label(self) -> str | None:
        """The model's label of a classified cell."""
        return self.result.label if self.result and self.result.is_classified else None

    @property
    def confidence(self) -> float | None:
        return self.result.confidence if self.result else None

    @property
    def uncertain(self) -> bool:
        return bool(self.result and self.result.is_classified and self.result.uncertain)

    @property
    def other_probability(self) -> float | None:
        return self.result.other_probability if self.result else None

    @property
    def unfamiliar(self) -> bool | None:
        """Unlike the training data (None: not classified, or by a model without an OOD score)."""
        if self.status != CLASSIFIED or self.result is None:
            return None
        return self.result.unfamiliar

    @property
    def ood_score(self) -> float | None:
        return self.result.ood_score if self.result else None

    def probability(self, label: str) -> float | None:
        return (self.result.probabilities or {}).get(label) if self.result else None

    @property
    def reason(self) -> str | None:
        """Why the pipeline rejected it (or why its result cannot be read)."""
        if self.problem is not None:
            return self.problem
        return self.result.reason if self.result and not self.result.is_classified else None

    @property
    def model(self) -> ModelRef | None:
        return self.result.model if self.result else None

    @property
    def model_words(self) -> str:
        """Name, version and the lab's calibration: after a reclassification, which one answered."""
        if self.model is None:
            return ""
        calibration = f" calibration {self.model.calibration}" if self.model.calibration else ""
        return f"{self.model.name} {self.model.version}{calibration}"

    @property
    def uploader(self) -> str | None:
        return self.result.source.uploader if self.result else None

    @property
    def uploaded_at(self) -> str | None:
        """Upload time as the pipeline recorded it (ISO text)."""
        if self.result is None:
            return None
        return self.result.source.uploaded or self.result.timestamps.get("uploaded")

    @property
    def finished(self) -> str | None:
        return self.result.finished_at if self.result else None

    @property
    def display(self) -> str:
        return image_name(self.upload_name)

    def counted_as(self, reviewed: bool) -> str | None:
        """The row it counts in, or None: on the reviewed basis a person's verdict, else the model's."""
        if reviewed:
            review = self.review
            return (
                review.label
                if review and review.label in BY_KEY and BY_KEY[review.label].kind == COUNTED
                else None
            )
        return self.label if self.status == CLASSIFIED and not self.uncertain else None


@dataclass(frozen=True)
class Slide:
    """One slide's cells (sorted by name) and its sign-off, as one typed input for every view."""

    slide: str
    cells: tuple[Cell, ...]
    sign_off: SignOff | None = None
    patient: Patient = Patient()

    @property
    def models(self) -> tuple[str, ...]:
        """Every "name version" that classified a cell of this slide, sorted."""
        return tuple(sorted({c.model_words for c in self.cells if c.model}))

    @property
    def uploaders(self) -> tuple[str, ...]:
        return tuple(sorted({u for c in self.cells if (u := c.uploader)}))

    @property
    def reviewers(self) -> tuple[str, ...]:
        return tuple(sorted({c.review.reviewer for c in self.cells if c.review}))

    @property
    def reviewed(self) -> bool:
        return any(c.review for c in self.cells)

    @property
    def unfamiliar_share(self) -> float | None:
        """The share of classified cells unlike the training data (None when no model scored any)."""
        flags = [f for c in self.cells if (f := c.unfamiliar) is not None]
        return sum(flags) / len(flags) if flags else None

    @property
    def unfamiliar(self) -> bool:
        """The slide's verdict: its images are unlike the training data (``bloodcell.ood``)."""
        return slide_unfamiliar([c.unfamiliar for c in self.cells])

    @property
    def unfamiliar_warning(self) -> str | None:
        """The banner every view shows for such a slide, or None."""
        if not self.unfamiliar:
            return None
        share = self.unfamiliar_share or 0.0
        return (
            f"These images are unlike the training data: {100 * share:.0f} % of the classified cells look "
            "unfamiliar to the model (another stain, camera or magnification). Review every cell, or "
            "calibrate the model to this lab (bloodcell calibrate) before trusting its counts."
        )

    @property
    def first_upload(self) -> str | None:
        return min((u for c in self.cells if (u := c.uploaded_at)), default=None)

    @property
    def last_result(self) -> str | None:
        return max((f for c in self.cells if (f := c.finished)), default=None)
