"""Slides for the report tests: real uploads in a bucket folder, results written by the real builders."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bloodcell import results
from bloodcell.contract import LABELS
from bloodcell.model import ModelInfo, Prediction
from bloodcell.names import result_name
from bloodcell.results import Result
from bloodcell.settings import Settings
from bloodcell.storage import Storage

MODEL = ModelInfo(
    name="bloodcell-wbc",
    version="1.0.0",
    outputs=LABELS,
    min_top_probability=0.6,
    max_other_probability=0.5,
    metadata={},
)
START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Spec:
    """One upload: ``label`` None means the pipeline rejected it; ``result=False`` means still pending."""

    label: str | None
    uncertain: bool = False
    result: bool = True
    name: str | None = None
    uploader: str | None = None
    unfamiliar: bool | None = None  # the model's OOD verdict (None: a model without an OOD score)


def probabilities(label: str, top: float) -> dict[str, float]:
    rest = (1.0 - top) / (len(LABELS) - 1)
    return {other: top if other == label else rest for other in LABELS}


def write_slide(
    storage: Storage, settings: Settings, slide: str, specs: list[Spec], images: list[bytes]
) -> list[str]:
    """Write each upload, then its result for exactly that upload version; returns the upload names."""
    names = []
    for i, spec in enumerate(specs):
        name = f"{slide}/{spec.name or f'cell-{i:03d}.jpg'}"
        data = images[i % len(images)]
        info = storage.write(settings.upload_bucket, name, data, content_type="image/jpeg")
        names.append(name)
        if not spec.result:
            continue
        at = START + timedelta(seconds=i)
        uploaded = results.iso(at)
        source = results.Source(
            bucket=settings.upload_bucket,
            name=name,
            generation=info.generation,
            size=len(data),
            uploaded=uploaded,
            uploader=spec.uploader,
        )
        stamps = {"uploaded": uploaded}
        if spec.label is None:
            stamps["rejected"] = results.iso(at + timedelta(milliseconds=400))
            doc = Result.rejected(source, "no cell found", "preprocess", {"preprocess": 3.0}, stamps)
        else:
            stamps["classified"] = results.iso(at + timedelta(milliseconds=400))
            top = 0.45 if spec.uncertain else 0.91
            ood = None if spec.unfamiliar is None else (5.0 if spec.unfamiliar else 1.0)
            prediction = Prediction(
                spec.label,
                top,
                probabilities(spec.label, top),
                0.05,
                spec.uncertain or bool(spec.unfamiliar),
                ood_score=ood,
                unfamiliar=bool(spec.unfamiliar),
            )
            doc = Result.classified(source, prediction, MODEL, {"preprocess": 3.0, "predict": 9.0}, stamps)
        storage.write(
            settings.result_bucket,
            result_name(name),
            doc.to_json(),
            content_type="application/json",
        )
    return names


def specs(**counts: int) -> list[Spec]:
    return [Spec(label.upper()) for label, n in counts.items() for _ in range(n)]
