"""A "new lab" made of real cells: PBC images under a deterministic stain and white-balance shift.

The shift comes from ``training.shifts`` (the strong eosin-heavy stain, then a cyan white
point), applied as a lab's stain and camera would have. Folder and file names are in mixed
case and several scripts, as a lab's own folders would be.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from bloodcell.calibration.core import WBC_CLASSES
from bloodcell.review.verified import VerifiedLabel, verified_key
from bloodcell.settings import Settings
from bloodcell.storage import Storage
from training.shifts import stain, white_balance

FOLDERS = {  # dataset folder -> the lab's folder name (class names in any case; others are OTHER)
    "wbc/eosinophil": "Eosinophil",
    "wbc/lymphocyte": "LYMPHOCYTE",
    "wbc/monocyte": "monocyte",
    "wbc/neutrophil": "Neutrophil",
    "other/platelet": "autres 其他",
}
_STAIN = stain(0.7, 1.8)
_CAMERA = white_balance((0.7, 1.0, 1.08))


def shifted_jpeg(path: Path) -> bytes:
    with Image.open(path) as im:
        shifted = _CAMERA(_STAIN(im.convert("RGB")))
    buf = io.BytesIO()
    shifted.save(buf, "JPEG", quality=92)
    return buf.getvalue()


def lab_images(datasets: Path, per_class: int, offset: int = 0) -> list[tuple[str, str, bytes]]:
    """(lab folder, file name, shifted JPEG) for ``per_class`` cells of each folder, from ``offset``."""
    out = []
    for source, folder in FOLDERS.items():
        files = sorted((datasets / "pbc" / source).glob("*.jpg"))[offset : offset + per_class]
        assert len(files) == per_class, f"too few images in pbc/{source}"
        for i, path in enumerate(files):
            out.append((folder, f"cellule été {i:02d} 血.jpg", shifted_jpeg(path)))
    return out


def write_lab(root: Path, images: list[tuple[str, str, bytes]]) -> Path:
    for folder, name, data in images:
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / name).write_bytes(data)
    return root


def archive_verified(
    storage: Storage,
    settings: Settings,
    images: list[tuple[str, str, bytes]],
    slide_of: Callable[[int], str],
    by: str,
) -> list[str]:
    """The lab's cells as a sign-off leaves them: each image in the archive, under the slide
    ``slide_of(i)`` names, beside its verified label (a folder that is no white-cell type is
    "not a white cell"). The archive keys, in the images' order."""
    keys = []
    for i, (folder, name, data) in enumerate(images):
        slide = slide_of(i)
        key = f"2026-12-07/NEUTROPHIL/{i}/{slide}/{name}"
        storage.write(settings.archive_bucket, key, data, content_type="image/jpeg")
        label = folder.upper() if folder.upper() in WBC_CLASSES else "NOT_A_WHITE_CELL"
        verified = VerifiedLabel(
            label, by, "2026-12-07T10:00:00Z", "NEUTROPHIL", "m", "3", f"{slide}/{name}", str(i), slide, by,
            "2026-12-07T10:05:00Z",
        )  # fmt: skip
        storage.write(
            settings.archive_bucket, verified_key(key), verified.to_json(), content_type="application/json"
        )
        keys.append(key)
    return keys
