"""Decoding untrusted uploads: every accepted kind decodes, every rejection says why."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from bloodcell.cellcrop import cell_tensor
from bloodcell.contract import CONTRACT
from bloodcell.errors import RejectedInput
from bloodcell.imaging import WORK_MIN_SIDE, ImageLimits, decode_image
from tests.support.common import image_bytes


def _png_header_only(width: int, height: int) -> bytes:
    """A valid PNG header declaring a huge image, with a tiny body: a decompression bomb's shape."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 10))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("fmt", "mode", "extra"),
    [
        ("JPEG", "RGB", {}),
        ("JPEG", "CMYK", {}),
        ("PNG", "RGBA", {}),
        ("PNG", "P", {}),
        ("PNG", "I;16", {}),
        ("PNG", "LA", {}),
        ("TIFF", "RGB", {}),
        ("BMP", "RGB", {}),
        ("GIF", "P", {}),
        ("WEBP", "RGB", {}),
    ],
)
def test_accepted_formats_and_modes_decode_to_rgb(fmt: str, mode: str, extra: dict[str, object]) -> None:
    data = image_bytes((120, 90), fmt, mode, **extra)

    image = decode_image(data)

    assert image.mode == "RGB"
    assert image.size == (120, 90)


@pytest.mark.parametrize("bits", [12, 16])
def test_sixteen_bit_grayscale_keeps_its_contrast(bits: int) -> None:
    ramp = np.linspace(0, 2**bits - 1, 100 * 100).reshape(100, 100).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(ramp).save(buffer, "PNG")

    pixels = np.asarray(decode_image(buffer.getvalue()))

    assert pixels.min() < 10 and pixels.max() > 245  # not clipped to white


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when shown
    data = image_bytes((200, 100), "JPEG", exif=exif.tobytes())

    image = decode_image(data)

    assert image.size == (100, 200)


def test_only_the_first_frame_of_an_animation_is_used() -> None:
    frames = [Image.new("RGB", (64, 64), color) for color in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])

    image = decode_image(buffer.getvalue())

    red, _, blue = image.getpixel((10, 10))  # type: ignore[misc]
    assert red > 200 and blue < 50


@pytest.mark.parametrize(
    ("data", "limits", "words"),
    [
        (b"", ImageLimits(), "empty"),
        (b"hello, this is a text file renamed .jpg\n", ImageLimits(), "not an image"),
        (image_bytes((320, 240), "JPEG")[:400], ImageLimits(), "damaged or truncated"),
        (image_bytes((20, 300)), ImageLimits(), "too small"),
        (image_bytes((900, 40)), ImageLimits(), "aspect ratio"),
        (image_bytes((320, 240)), ImageLimits(max_bytes=100), "over the limit"),
        (_png_header_only(30000, 30000), ImageLimits(), "megapixels"),
        (image_bytes((64, 64), "PDF"), ImageLimits(), "not an image"),
    ],
    ids=["empty", "not-image", "truncated", "too-small", "aspect", "too-big", "bomb", "pdf"],
)
def test_unusable_uploads_are_rejected_with_a_reason(data: bytes, limits: ImageLimits, words: str) -> None:
    with pytest.raises(RejectedInput) as caught:
        decode_image(data, limits)

    assert words in caught.value.reason


def test_bomb_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_load(self: Image.Image) -> None:
        raise AssertionError("pixels of a bomb were decoded")

    monkeypatch.setattr(Image.Image, "load", must_not_load)

    with pytest.raises(RejectedInput):
        decode_image(_png_header_only(40000, 40000))


@pytest.mark.parametrize("size", [(32, 32), (320, 240), (640, 480), (4000, 3000)])
def test_cell_tensor_follows_the_contract_for_any_size(size: tuple[int, int]) -> None:
    image = decode_image(image_bytes(size, "JPEG"))

    tensor = cell_tensor(image)

    assert tensor.shape == CONTRACT.shape
    assert tensor.dtype == np.dtype(CONTRACT.dtype)
    assert float(tensor.min()) >= 0.0 and float(tensor.max()) <= 1.0


@pytest.mark.parametrize(("fmt", "mode"), [("PNG", "RGBA"), ("PNG", "RGB"), ("GIF", "P"), ("PNG", "I;16")])
def test_large_images_are_reduced_while_decoding(fmt: str, mode: str) -> None:
    data = image_bytes((3000, 2200), fmt, mode)

    image = decode_image(data)

    assert image.mode == "RGB"
    assert WORK_MIN_SIDE <= min(image.size) < 2 * WORK_MIN_SIDE
    assert image.size[0] / image.size[1] == pytest.approx(3000 / 2200, rel=0.01)


def test_an_image_over_the_decode_budget_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    data = image_bytes((2000, 2000), "PNG", "RGBA")
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("pixels were decoded"))

    with pytest.raises(RejectedInput) as caught:
        decode_image(data, ImageLimits(max_decode_bytes=10 * 1024 * 1024))

    assert "over the budget of 10 MiB" in caught.value.reason
