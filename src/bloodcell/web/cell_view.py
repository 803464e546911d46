"""The pictures of the review panel: the cell-centred crop the model saw, and the whole field to zoom to.

The panel once showed a centre square of the field, which could miss the cell
("Neutrophil 100 %" over red cells). Now it shows the square the pipeline's own
locator (``cellcrop``) finds, white-balanced as the model receives it, and a
click opens the whole field with that square outlined. Both are made once per
upload version, through the same guarded decoder and decode slot as thumbnails.
"""

from __future__ import annotations

import io
import logging
from functools import lru_cache

from fastapi import Request, Response
from nicegui import app, run
from PIL import Image, ImageDraw

from bloodcell.cellcrop import cell_crop, crop_box, locate_cell
from bloodcell.errors import BloodcellError, RejectedInput
from bloodcell.imaging import ImageLimits, decode_image
from bloodcell.settings import Settings
from bloodcell.storage import check_object_name
from bloodcell.web import results_feed

log = logging.getLogger(__name__)
CELL_SIDE = 256  # the crop as the panel shows it (the model's input, larger)
FIELD_SIDE = 1280  # the whole field, at most this wide or high
KINDS = ("cell", "field")


def picture_url(kind: str, name: str) -> str:
    from urllib.parse import quote

    return f"/{kind}/" + quote(name, safe="/")


def _draw(rgb: Image.Image, kind: str) -> bytes:
    box = locate_cell(rgb)
    if kind == "cell":
        picture = Image.fromarray(cell_crop(rgb, CELL_SIDE))
    else:
        left, top, right, bottom = crop_box(box, *rgb.size)
        scale = min(1.0, FIELD_SIDE / max(rgb.size))
        picture = (
            rgb.resize((round(rgb.width * scale), round(rgb.height * scale))) if scale < 1 else rgb.copy()
        )
        outline = [round(v * scale) for v in (left, top, right, bottom)]
        ImageDraw.Draw(picture).rectangle(outline, outline=(255, 214, 0), width=max(2, picture.width // 300))
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


@lru_cache(maxsize=256)
def _picture_cached(settings: Settings, name: str, generation: str, kind: str) -> bytes | None:
    storage = results_feed.storage_for(settings)
    limits = ImageLimits(max_bytes=settings.max_upload_bytes, max_pixels=settings.max_image_pixels)
    try:
        data, info = storage.read(settings.upload_bucket, name, max_bytes=limits.max_bytes)
        if info.generation != generation:
            return None
        rgb = decode_image(data, limits)
    except BloodcellError as exc:
        log.info("web: no %s picture of %r: %s", kind, name, exc)
        return None
    return _draw(rgb.convert("RGB"), kind)


def picture(settings: Settings, name: str, kind: str) -> tuple[bytes | None, str] | None:
    """(JPEG or None, generation) of one upload's cell or field; None when there is no such upload."""
    try:
        check_object_name(name)
    except RejectedInput:
        return None
    info = results_feed.storage_for(settings).stat(settings.upload_bucket, name)
    if info is None or kind not in KINDS:
        return None
    if info.size > settings.max_upload_bytes:
        return None, info.generation
    with results_feed.DECODE_SLOTS:
        return _picture_cached(settings, name, info.generation, kind), info.generation


def register(settings: Settings) -> None:
    """``/cell/<upload>`` and ``/field/<upload>``: cached by the upload version (ETag)."""
    for kind in KINDS:

        async def serve(name: str, request: Request, kind: str = kind) -> Response:
            found = await run.io_bound(picture, settings, name, kind)
            if found is None or found[0] is None:
                return Response(results_feed.PLACEHOLDER_SVG, media_type="image/svg+xml")
            data, generation = found
            headers = {"Cache-Control": "private, max-age=300", "ETag": f'"{kind}-{generation}"'}
            if request.headers.get("if-none-match") == headers["ETag"]:
                return Response(status_code=304, headers=headers)
            return Response(data, media_type="image/jpeg", headers=headers)

        app.get(f"/{kind}/{{name:path}}", include_in_schema=False)(serve)
