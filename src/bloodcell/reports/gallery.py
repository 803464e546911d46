"""Small crops of counted cells for the PDF gallery, cut by the pipeline's own cell locator."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable

from PIL import Image

from bloodcell.cellcrop import cell_crop
from bloodcell.errors import ObjectNotFound, RejectedInput
from bloodcell.imaging import ImageLimits, decode_image
from bloodcell.settings import Settings
from bloodcell.slides.cell import Cell
from bloodcell.storage import Storage

log = logging.getLogger(__name__)
CROP_PIXELS = 160


def crop_reader(storage: Storage, settings: Settings) -> Callable[[Cell], bytes | None]:
    """A function giving one cell's crop as JPEG bytes, or None when its upload can't be shown.

    Decoding goes through the same guarded decoder as the pipeline, so a hostile upload is
    refused here too; only the small crop is kept, so memory stays bounded per page.
    """
    limits = ImageLimits(max_bytes=settings.max_upload_bytes, max_pixels=settings.max_image_pixels)

    def crop(cell: Cell) -> bytes | None:
        try:
            data, info = storage.read(settings.upload_bucket, cell.upload_name)
            if info.generation != cell.generation:
                return None  # replaced since it was classified: not the picture the label speaks of
            pixels = cell_crop(decode_image(data, limits), CROP_PIXELS)
        except (RejectedInput, ObjectNotFound) as exc:  # transient faults propagate: the caller retries
            log.info("no crop for %r: %s", cell.upload_name, exc)
            return None
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=82)
        return buffer.getvalue()

    return crop
