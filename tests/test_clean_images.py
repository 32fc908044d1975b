"""Image cleaning on bytes: every mode and format, and hostile inputs."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from mfr.image.clean import clean_image


def encode(img: Image.Image, fmt: str, **kw) -> bytes:  # noqa: ANN003
    out = io.BytesIO()
    img.save(out, fmt, **kw)
    return out.getvalue()


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def noise(size: tuple[int, int]) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


def claimed_png(width: int, height: int) -> bytes:
    """A tiny valid PNG whose IHDR claims width x height (CRC fixed, so only the size lies)."""
    data = bytearray(encode(Image.new("RGB", (8, 8)), "PNG"))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "BMP", "TIFF", "WEBP"])
def test_valid_rgb_within_bounds_keeps_its_bytes(fmt: str) -> None:
    r = clean_image(encode(Image.new("RGB", (300, 200), (10, 120, 30)), fmt))
    assert r.reject is None and not r.changed and r.data is None
    assert (r.width, r.height, r.format) == (300, 200, fmt)


@pytest.mark.parametrize(
    "img, fmt, action",
    [
        (Image.new("RGBA", (40, 30), (255, 0, 0, 0)), "PNG", "rgb_from_RGBA_on_white"),
        (Image.new("LA", (40, 30), (0, 0)), "PNG", "rgb_from_LA_on_white"),
        (Image.new("L", (40, 30), 77), "PNG", "rgb_from_L"),
        (Image.new("1", (40, 30), 1), "PNG", "rgb_from_1"),
        (Image.new("P", (40, 30)), "GIF", "rgb_from_P"),
        (Image.new("CMYK", (40, 30), (0, 255, 255, 0)), "JPEG", "rgb_from_CMYK"),
        (Image.new("L", (40, 30), 200), "JPEG", "rgb_from_L"),
    ],
)
def test_modes_are_converted_to_rgb(img: Image.Image, fmt: str, action: str) -> None:
    r = clean_image(encode(img, fmt))
    assert r.reject is None and r.changed and action in r.actions
    out = decode(r.data)
    assert out.mode == "RGB" and out.size == (40, 30)
    assert r.format == ("JPEG" if fmt == "JPEG" else "PNG") == out.format


def test_transparent_pixels_become_white_not_black() -> None:
    r = clean_image(encode(Image.new("RGBA", (10, 10), (0, 0, 0, 0)), "PNG"))
    assert decode(r.data).getpixel((5, 5)) == (255, 255, 255)
    pal = Image.new("P", (10, 10), 0)
    pal.putpalette([0, 0, 0] * 256)
    r = clean_image(encode(pal, "PNG", transparency=0))
    assert decode(r.data).getpixel((5, 5)) == (255, 255, 255)


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    arr = np.full((20, 20), 32896, dtype=np.uint16)  # mid-grey in 16 bits
    # Pillow 13 makes a uint16 array mode I: frombytes keeps the 16-bit mode on every version
    r = clean_image(encode(Image.frombytes("I;16", (20, 20), arr.astype("<u2").tobytes()), "PNG"))
    assert r.reject is None
    assert decode(r.data).getpixel((3, 3)) == (128, 128, 128)


def test_exif_orientation_is_applied() -> None:
    img = Image.new("RGB", (60, 30))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    r = clean_image(encode(img, "JPEG", exif=exif))
    assert "exif_rotated" in r.actions and (r.width, r.height) == (30, 60)
    assert decode(r.data).getexif().get(0x0112, 1) == 1


@pytest.mark.parametrize("fmt, size", [("JPEG", (2600, 1900)), ("PNG", (3000, 1000)), ("JPEG", (1000, 5000))])
def test_large_images_are_resized_keeping_aspect(fmt: str, size: tuple[int, int]) -> None:
    r = clean_image(encode(noise(size), fmt))
    assert r.reject is None and "resized" in r.actions
    assert max(r.width, r.height) == 2048
    assert abs(r.width / r.height - size[0] / size[1]) < 0.01
    assert decode(r.data).size == (r.width, r.height)
    assert r.format == fmt


def test_animated_gif_keeps_its_first_frame() -> None:
    frames = [Image.new("RGB", (20, 20), (80 * i, 0, 0)) for i in range(3)]
    data = io.BytesIO()
    frames[0].save(data, "GIF", save_all=True, append_images=frames[1:])
    r = clean_image(data.getvalue())
    assert r.reject is None and "first_frame" in r.actions


@pytest.mark.parametrize(
    "data, reason",
    [
        (None, "image_missing"),
        (b"", "image_missing"),
        (b"\x00\x01garbage" * 100, "image_corrupt"),
        (b"\x89PNG\r\n\x1a\n", "image_corrupt"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>', "image_unsupported"),
        (b'<?xml version="1.0"?><svg></svg>', "image_unsupported"),
        (b"%PDF-1.4\n1 0 obj", "image_unsupported"),
        (claimed_png(30000, 30000), "image_too_large"),
    ],
)
def test_hostile_inputs_are_rejected_with_a_reason(data: bytes | None, reason: str) -> None:
    assert clean_image(data).reject == reason


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_truncated_files_are_corrupt(fmt: str) -> None:
    data = encode(noise((400, 300)), fmt)
    r = clean_image(data[: len(data) // 2])
    assert r.reject == "image_corrupt", r


def test_truncated_large_jpeg_is_corrupt_on_the_resize_path_too() -> None:
    data = encode(noise((3000, 2000)), "JPEG")
    assert clean_image(data[: len(data) * 2 // 3]).reject == "image_corrupt"


def test_pixel_limit_is_checked_before_decoding() -> None:
    data = encode(Image.new("RGB", (200, 200)), "PNG")
    assert clean_image(data, max_pixels=10_000).reject == "image_too_large"
    assert clean_image(data, max_pixels=40_000).reject is None


def test_unsupported_raster_format_is_named() -> None:
    r = clean_image(encode(Image.new("RGB", (20, 20)), "PCX"))
    assert r.reject == "image_unsupported" and "PCX" in (r.detail or "")
