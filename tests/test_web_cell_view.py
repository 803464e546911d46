"""The review panel's pictures: the crop centred on the cell the model saw, and the field it came from."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

from bloodcell.cellcrop import cell_crop, crop_box, locate_cell
from bloodcell.settings import Settings
from bloodcell.storage import LocalStorage
from bloodcell.web import cell_view

NAME = "HEM-5/corner.png"


def _field() -> Image.Image:
    """Pink red cells everywhere and one purple nucleus near the top-left corner, far from the centre."""
    field = Image.new("RGB", (640, 480), (236, 196, 200))
    draw = ImageDraw.Draw(field)
    for x in range(0, 640, 70):
        for y in range(0, 480, 70):
            draw.ellipse((x + 8, y + 8, x + 58, y + 58), fill=(214, 140, 150))
    draw.ellipse((70, 60, 150, 140), fill=(92, 40, 140))
    return field


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _purple(pixels: np.ndarray) -> float:
    """Share of pixels clearly bluer than red: the nucleus."""
    rgb = pixels.astype(int)
    return float(((rgb[..., 2] > rgb[..., 0] + 20) & (rgb[..., 1] < 120)).mean())


def test_the_panel_shows_the_cell_not_the_centre_of_the_field(
    settings: Settings, local: LocalStorage
) -> None:
    field = _field()
    local.write(settings.upload_bucket, NAME, _png(field))
    left, top, right, bottom = crop_box(locate_cell(field), *field.size)

    found = cell_view.picture(settings, NAME, "cell")
    zoomed = cell_view.picture(settings, NAME, "field")

    assert found is not None and found[0] is not None and zoomed is not None and zoomed[0] is not None
    shown = np.asarray(Image.open(io.BytesIO(found[0])).convert("RGB"))
    centre = np.asarray(field.crop((220, 140, 420, 340)))
    assert shown.shape == (cell_view.CELL_SIDE, cell_view.CELL_SIDE, 3)
    assert _purple(shown) > 0.05 and _purple(centre) == 0.0  # the old centre square missed the cell
    expected = cell_crop(field, cell_view.CELL_SIDE).astype(int)
    assert np.abs(shown.astype(int) - expected).mean() < 6  # the model's own crop, JPEG aside
    whole = Image.open(io.BytesIO(zoomed[0])).convert("RGB")
    assert whole.size == field.size
    edge = np.asarray(whole)[round(top) + 1, round((left + right) / 2)].astype(int)
    assert edge[0] > 200 and edge[1] > 180 and edge[2] < 90  # the crop outlined in yellow on the field
    assert bottom > top


def test_no_picture_for_a_missing_or_unsafe_upload(settings: Settings) -> None:
    assert cell_view.picture(settings, "HEM-5/absent.png", "cell") is None
    assert cell_view.picture(settings, "../etc/passwd", "field") is None
