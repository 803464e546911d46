"""A lab's verified cells, from a labelled folder or from signed-off slides, through the runtime path.

Each image goes exactly the way an upload goes (decode, crop, the network up to its
embedding), so the calibration is fitted on the embeddings the predict function will see.
Class folders and verified labels count in any case; any other folder name, and the
reviewers' "not a white cell", count as OTHER; "unusable" cells are left out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from bloodcell.calibration.core import LabCells, label_of
from bloodcell.errors import RejectedInput
from bloodcell.formats import is_image_name
from bloodcell.imaging import ImageLimits
from bloodcell.model import Classifier
from bloodcell.names import escape
from bloodcell.review.verified import SUFFIX, VerifiedLabel
from bloodcell.settings import Settings
from bloodcell.storage import Storage, open_archive

log = logging.getLogger(__name__)
UNUSABLE = "UNUSABLE"

Loader = Callable[[], bytes]


def labelled_folder(root: Path) -> list[tuple[str, str, Loader]]:
    """(name, label, loader) for every image under ``root/<class folder>/``."""
    if not root.is_dir():
        raise RejectedInput(f"{root} is not a folder")
    items: list[tuple[str, str, Loader]] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        label = label_of(folder.name)
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and is_image_name(p.name)):
            items.append((str(path), label, path.read_bytes))
    return items


def verified_slides(
    archive: Storage, settings: Settings, slides: Iterable[str] | None
) -> list[tuple[str, str, Loader]]:
    """(archive key, label, loader) of the verified cells of these slides (None: every signed-off slide)."""
    wanted = None if slides is None else set(slides)
    bucket = settings.archive_bucket
    items: list[tuple[str, str, Loader]] = []
    for info in sorted(archive.list(bucket, settings.archive_prefix), key=lambda i: i.name):
        if not info.name.endswith(SUFFIX):
            continue
        try:
            verified = VerifiedLabel.from_json(archive.read(bucket, info.name)[0])
        except ValueError:
            log.warning("calibrate: skipping unreadable verified label %s", escape(info.name))
            continue
        if (wanted is not None and verified.slide not in wanted) or verified.label.upper() == UNUSABLE:
            continue
        key = info.name[: -len(SUFFIX)]
        items.append((key, label_of(verified.label), _archive_loader(archive, bucket, key)))
    return items


def named(
    settings: Settings, labelled: Path | None, slides: list[str] | None
) -> tuple[list[tuple[str, str, Loader]], str, str]:
    """The cells a command names, with their source and origin for the record: a labelled
    folder, or the verified cells of signed-off slides (none named: every one)."""
    if labelled is not None:
        return labelled_folder(labelled), "labelled folder", str(labelled)
    chosen = slides or None
    items = verified_slides(open_archive(settings), settings, chosen)
    return items, "slides", ", ".join(chosen) if chosen else "every signed-off slide"


def _archive_loader(archive: Storage, bucket: str, key: str) -> Loader:
    return lambda: archive.read(bucket, key)[0]


def embed(classifier: Classifier, items: list[tuple[str, str, Loader]], limits: ImageLimits) -> LabCells:
    """Every usable image's embedding; an image the pipeline would reject is left out, and said so."""
    from bloodcell.pipeline import make_tensor

    if classifier.embedding_size == 0:
        raise RejectedInput(f"model {classifier.info.name} {classifier.info.version} has no embedding output")
    embeddings, labels, names = [], [], []
    for name, label, load in items:
        try:
            forward = classifier.forward(make_tensor(load(), limits))
        except RejectedInput as exc:
            log.warning("calibrate: leaving out %s: %s", escape(name), escape(exc.reason))
            continue
        if forward.embedding is not None:
            embeddings.append(forward.embedding)
            labels.append(label)
            names.append(name)
    if not embeddings:
        raise RejectedInput("no usable verified cells were found")
    return LabCells(np.stack(embeddings), tuple(labels), tuple(names))
