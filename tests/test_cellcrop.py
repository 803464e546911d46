"""cell_tensor: the contract's shape and range for any picture, the cell found and followed across scales."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from bloodcell.cellcrop import cell_tensor, locate_cell
from bloodcell.contract import CONTRACT


def _field(size: tuple[int, int], centre: tuple[float, float], radius: float) -> Image.Image:
    """A pale pink field with one dark violet 'nucleus'."""
    img = Image.new("RGB", size, (225, 190, 200))
    draw = ImageDraw.Draw(img)
    cx, cy = centre
    draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=(90, 40, 140))
    return img


@pytest.mark.parametrize(
    "picture",
    [
        Image.new("RGB", (32, 32), "white"),
        Image.new("RGB", (640, 480), "black"),
        Image.new("RGB", (256, 32), (10, 200, 30)),
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 200, 3), dtype=np.uint8)),
        _field((320, 240), (300, 20), 15),
    ],
)
def test_any_picture_gives_a_contract_tensor(picture: Image.Image) -> None:
    tensor = cell_tensor(picture)
    assert tensor.shape == CONTRACT.shape
    assert tensor.dtype == np.float32
    assert 0.0 <= float(tensor.min()) <= float(tensor.max()) <= 1.0


def test_blank_picture_falls_back_to_the_centre() -> None:
    box = locate_cell(Image.new("RGB", (400, 300), (240, 240, 240)))
    assert not box.found
    assert (box.cx, box.cy) == (200.0, 150.0)


def test_the_cell_is_found_off_centre() -> None:
    box = locate_cell(_field((640, 480), (200, 300), 30))
    assert box.found
    assert abs(box.cx - 200) < 12 and abs(box.cy - 300) < 12


def test_crop_side_follows_the_cell_not_the_pixels() -> None:
    small = locate_cell(_field((224, 224), (112, 112), 20))
    large = locate_cell(_field((360, 360), (180, 180), 20 * 360 / 224))
    assert large.side / small.side == pytest.approx(360 / 224, rel=0.1)


def test_a_colour_cast_is_taken_out_before_the_crop() -> None:
    """A yellow lamp or camera white point: the same field tinted gives (almost) the same tensor."""
    field = _field((320, 240), (160, 120), 25)
    tinted = Image.fromarray(
        np.clip(np.asarray(field, np.float32) * [1.08, 1.0, 0.75], 0, 255).astype(np.uint8)
    )

    plain, yellow = cell_tensor(field), cell_tensor(tinted)

    assert float(np.abs(plain - yellow).mean()) < 0.02
    background = plain[2, 2]  # the field's pale background is neutral grey after the gains
    assert float(background.max() - background.min()) < 0.03


def test_a_tight_crop_keeps_the_cell_size() -> None:
    """A picture cut tight around the cell is padded, not zoomed: the cell spans the same pixels."""
    wide = _field((360, 360), (180, 180), 40)
    tight = wide.crop((110, 110, 250, 250)).resize((120, 120))

    def nucleus_width(t: np.ndarray) -> int:
        dark = t.mean(axis=2) < 0.5
        return int(dark.any(axis=0).sum())

    assert locate_cell(tight).side > 120  # the nominal square is larger than the picture
    assert abs(nucleus_width(cell_tensor(wide)) - nucleus_width(cell_tensor(tight))) <= 3
