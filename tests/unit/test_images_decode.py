"""Decoding client images: base64 and data URIs, size limits before decoding, short reasons, npy arrays."""

from __future__ import annotations

import base64
import contextlib
import io
import struct
import zlib
from typing import Any

import numpy as np
import pytest
import skimage.data
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from tsengine.errors import ValidationError
from tsengine.images import (
    ImageError,
    ImageLimits,
    array_to_image,
    decode_images,
    image_bytes,
    npy_array,
    open_image,
)

NPY_PREFIX = "data:application/x.peltarion.npy;base64,"


def _encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _png(array: np.ndarray) -> bytes:
    return _encode(Image.fromarray(array), "PNG")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _npy(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return NPY_PREFIX + _b64(buffer.getvalue())


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bilevel_png(width: int, height: int, *, rows: int | None = None) -> bytes:
    """A black 1-bit PNG of any claimed size, built by hand: huge sizes cost a few KB.

    ``rows`` limits the pixel data actually written (the header still claims
    ``height`` rows): enough to be refused, never enough to be decoded.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = bytes(1 + (width + 7) // 8)  # filter byte + packed bits
    pixels = zlib.compress(row * (height if rows is None else rows), 9)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", pixels) + _chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def cat() -> np.ndarray:
    return skimage.data.chelsea()


# --- text → bytes ------------------------------------------------------------------------------------


def test_base64_variants(cat: np.ndarray) -> None:
    png = _png(cat[:40, :30])
    if len(png) % 3 == 0:
        png += b"\0"  # so that standard base64 has padding to drop
    plain = _b64(png)
    unpadded = plain.rstrip("=")
    assert unpadded != plain  # the fixture exercises the padding
    wrapped = "\n".join(plain[i : i + 76] for i in range(0, len(plain), 76))
    urlsafe = base64.urlsafe_b64encode(png).decode().rstrip("=")
    for value in (
        plain,
        unpadded,
        f"  {wrapped}\r\n",
        urlsafe,
        f"data:image/png;base64,{plain}",
        f"DATA:IMAGE/PNG;BASE64,{unpadded}",
        f"data:image/png;name=cat.png;base64,{wrapped}",
    ):
        assert image_bytes(value) == png


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (
            "data:text/plain;base64,aGVsbG8=",
            "data URI header 'data:text/plain;base64' is not an image MIME type",
        ),
        (
            "data:application/x.peltarion.npy;base64,aGk=",
            "data URI header 'data:application/x.peltarion.npy;base64' is not an image MIME type",
        ),
        ("data:image/png,iVBORw0KGgo=", "data URI header 'data:image/png' is not base64-encoded"),
        ("data:image/png;base64", "has no ',' before its payload"),
        ("iVBORw0K!Ggo=", "unexpected character '!'"),
        ("iVBORw0KG", "truncated"),
        ("   ", "empty image value"),
        ("data:image/png;base64,", "empty base64 payload"),
    ],
)
def test_text_that_is_not_an_image_is_refused(value: str, reason: str) -> None:
    with pytest.raises(ImageError) as caught:
        image_bytes(value)
    assert reason in str(caught.value)


# --- bytes → image -----------------------------------------------------------------------------------


def test_png_round_trip_is_exact(cat: np.ndarray) -> None:
    image = open_image(_png(cat))
    assert image.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(image), cat)


def test_jpeg_round_trip(cat: np.ndarray) -> None:
    image = open_image(_encode(Image.fromarray(cat), "JPEG", quality=95))
    assert image.mode == "RGB"
    assert image.size == (cat.shape[1], cat.shape[0])
    assert np.abs(np.asarray(image).astype(int) - cat).mean() < 3


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "WEBP", "TIFF"])
def test_other_allowed_formats(cat: np.ndarray, fmt: str) -> None:
    image = open_image(_encode(Image.fromarray(cat), fmt))
    assert (image.mode, image.size) == ("RGB", (451, 300))


def test_a_gif_gives_its_first_frame() -> None:
    frames = [Image.new("P", (8, 8), i) for i in (10, 200)]
    frames[0].putpalette([v for i in range(256) for v in (i, 0, 255 - i)])
    frames[1].putpalette([v for i in range(256) for v in (i, 0, 255 - i)])
    gif = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert getattr(Image.open(io.BytesIO(gif)), "n_frames", 1) == 2
    np.testing.assert_array_equal(np.asarray(open_image(gif))[0, 0], [10, 0, 245])


def test_exif_orientation_is_applied(cat: np.ndarray) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    jpeg = _encode(Image.fromarray(cat), "JPEG", exif=exif)
    assert Image.open(io.BytesIO(jpeg)).size == (451, 300)
    assert open_image(jpeg).size == (300, 451)


def test_transparency_is_composited_on_white() -> None:
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)  # transparent black
    rgba[0, 0] = (255, 0, 0, 255)
    image = np.asarray(open_image(_png(rgba)))
    np.testing.assert_array_equal(image[0, 0], [255, 0, 0])
    np.testing.assert_array_equal(image[3, 3], [255, 255, 255])


def test_sixteen_bit_greyscale_is_scaled_not_clipped() -> None:
    grey = np.linspace(0, 65535, 64, dtype=np.uint16).reshape(8, 8)
    image = np.asarray(open_image(_encode(Image.fromarray(grey), "PNG")))
    np.testing.assert_array_equal(image[..., 0], np.rint(grey / 257).astype(np.uint8))


def test_a_format_outside_the_list_is_refused(cat: np.ndarray) -> None:
    with pytest.raises(ImageError, match="cannot identify image file"):
        open_image(_encode(Image.fromarray(cat), "PPM"))  # Pillow reads it; clients may not send it


@pytest.mark.parametrize(
    "garbage", [b"", b"hello world", bytes(range(256)) * 4, b"\x89PNG\r\n\x1a\n" + bytes(40)]
)
def test_garbage_is_refused(garbage: bytes) -> None:
    with pytest.raises(ImageError, match="not a decodable image"):
        open_image(garbage)


def test_a_truncated_jpeg_is_refused(cat: np.ndarray) -> None:
    jpeg = _encode(Image.fromarray(cat), "JPEG")
    with pytest.raises(ImageError, match="^truncated image$"):
        open_image(jpeg[: len(jpeg) // 2])


def test_a_truncated_png_is_refused(cat: np.ndarray) -> None:
    png = _png(cat)
    with pytest.raises(ImageError):
        open_image(png[: len(png) // 2])


def test_a_decompression_bomb_is_refused_before_decoding() -> None:
    bomb = _bilevel_png(50_000, 50_000, rows=8)
    assert len(bomb) < 1_000
    with pytest.raises(ImageError, match=r"2,500,000,000 pixels; the limit is 40,000,000"):
        open_image(bomb)


def test_a_complete_bomb_under_pillows_threshold_is_refused_by_our_limit() -> None:
    bomb = _bilevel_png(10_000, 5_000)  # every row present: a real 50-megapixel image in ~7 KB
    assert len(bomb) < 20_000
    with pytest.raises(ImageError) as caught:
        open_image(bomb)
    assert str(caught.value) == "image is 10000×5000 = 50,000,000 pixels; the limit is 40,000,000"


def test_limits_are_configurable(cat: np.ndarray) -> None:
    png = _png(cat)
    with pytest.raises(ImageError, match=rf"image is {len(png):,} bytes; the limit is 1,000"):
        open_image(png, ImageLimits(max_bytes=1_000))
    with pytest.raises(ImageError, match=r"451×300 = 135,300 pixels; the limit is 100,000"):
        open_image(png, ImageLimits(max_pixels=100_000))
    with pytest.raises(ImageError, match=r"image is 451×300; a side may be at most 400 pixels"):
        open_image(png, ImageLimits(max_side=400))
    assert open_image(png, ImageLimits(max_bytes=len(png), max_pixels=451 * 300, max_side=451)).size == (
        451,
        300,
    )


@given(
    st.binary(max_size=300),
    st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"II*\x00"]),
)
def test_no_decoder_exception_escapes(payload: bytes, magic: bytes) -> None:
    with contextlib.suppress(ImageError):
        open_image(magic + payload)


@given(st.text(max_size=60))
def test_any_text_is_bytes_or_an_image_error(text: str) -> None:
    with contextlib.suppress(ImageError):
        assert isinstance(image_bytes(text), bytes)


@given(
    arrays(np.uint8, st.tuples(st.integers(1, 12), st.integers(1, 12), st.just(3))),
    st.booleans(),
    st.booleans(),
    st.integers(0, 3),
    st.sampled_from(["", "data:image/png;base64,", "data:image/x-anything;base64,"]),
)
def test_any_rgb_array_survives_png_and_any_base64_spelling(
    pixels: np.ndarray, urlsafe: bool, keep_padding: bool, wrap: int, prefix: str
) -> None:
    png = _png(pixels)
    text = (base64.urlsafe_b64encode(png) if urlsafe else base64.b64encode(png)).decode()
    if not keep_padding:
        text = text.rstrip("=")
    if wrap:
        step = 4 * wrap + 1
        text = " \n\t"[wrap - 1].join(text[i : i + step] for i in range(0, len(text), step))
    np.testing.assert_array_equal(np.asarray(open_image(image_bytes(prefix + text))), pixels)


# --- a column of values --------------------------------------------------------------------------


def test_decode_images_keeps_missing_and_names_bad_rows(cat: np.ndarray) -> None:
    good = _b64(_png(cat[:10, :10]))
    images = decode_images([None, good, "", "  ", f"data:image/png;base64,{good}"], column="photo")
    assert [None if im is None else im.size for im in images] == [None, (10, 10), None, None, (10, 10)]
    with pytest.raises(ValidationError) as caught:
        decode_images(
            [good, None, good, "aGVsbG8=", good, "", good, "data:text/plain;base64,aGk="], column="photo"
        )
    assert caught.value.status == 422
    assert str(caught.value) == (
        "column 'photo': row 3: not a decodable image (cannot identify image file; accepted formats: "
        "PNG, JPEG, GIF, BMP, WEBP, TIFF); row 7: data URI header 'data:text/plain;base64' is not an image MIME type"
    )


def test_decode_images_lists_the_first_five_problems() -> None:
    with pytest.raises(ValidationError) as caught:
        decode_images(["!"] * 8, column="scan")
    message = str(caught.value)
    assert message.startswith("column 'scan': row 0: not valid base64")
    assert "row 4:" in message
    assert "row 5:" not in message
    assert message.endswith("; and 3 more")


def test_decode_images_reads_npy_arrays_and_applies_limits() -> None:
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    (image,) = decode_images([_npy(grey)], column="x")
    assert image is not None
    np.testing.assert_array_equal(np.asarray(image), np.repeat(grey[:, :, None], 3, axis=2))
    with pytest.raises(ValidationError, match=r"row 0: image is 4×3 = 12 pixels; the limit is 10"):
        decode_images([_npy(grey)], column="x", limits=ImageLimits(max_pixels=10))


# --- Peltarion's npy arrays ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "array",
    [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones((4, 5, 3), dtype=np.uint8), np.array([[True]])],
)
def test_npy_round_trip(array: np.ndarray) -> None:
    back = npy_array(_npy(array))
    assert back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)
    assert npy_array(" " + _npy(array).replace(NPY_PREFIX, NPY_PREFIX.upper()) + "\n").shape == array.shape


def test_npy_refusals(cat: np.ndarray) -> None:
    with pytest.raises(
        ImageError,
        match=r"data URI header 'data:image/png;base64' is not 'data:application/x\.peltarion\.npy;base64'",
    ):
        npy_array(f"data:image/png;base64,{_b64(_png(cat[:4, :4]))}")
    with pytest.raises(ImageError, match=r"expected a 'data:application/x\.peltarion\.npy;base64,' URI"):
        npy_array(_b64(b"\x93NUMPY"))
    with pytest.raises(ImageError, match=r"not a \.npy array"):
        npy_array(NPY_PREFIX + _b64(_png(cat[:4, :4])))
    with pytest.raises(ImageError, match="not valid base64"):
        npy_array(NPY_PREFIX + "@@@@")
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ImageError, match="Python objects"):
        npy_array(NPY_PREFIX + _b64(buffer.getvalue()))


def test_a_npy_header_claiming_more_than_the_payload_is_refused_unallocated() -> None:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "<f8", "fortran_order": False, "shape": (100_000, 100_000, 3)}
    )
    with pytest.raises(
        ImageError, match=r"truncated \.npy array: shape \(100000, 100000, 3\) needs 240,000,000,000 bytes"
    ):
        npy_array(NPY_PREFIX + _b64(buffer.getvalue() + bytes(64)))


def test_array_to_image_shapes_and_scales() -> None:
    grey = np.array([[0, 128], [255, 7]], dtype=np.uint8)
    for array in (grey, grey[:, :, None]):
        image = array_to_image(array)
        assert (image.mode, image.size) == ("RGB", (2, 2))
        np.testing.assert_array_equal(np.asarray(image)[..., 1], grey)
    unit = np.array([[[0.0, 0.5, 1.0]]])
    np.testing.assert_array_equal(np.asarray(array_to_image(unit)), [[[0, 128, 255]]])
    wide = np.array([[[-5.0, 100.4, 300.0]]])
    np.testing.assert_array_equal(np.asarray(array_to_image(wide)), [[[0, 100, 255]]])
    np.testing.assert_array_equal(
        np.asarray(array_to_image(np.array([[1000, -1, 3]], dtype=np.int32)))[0, :, 0], [255, 0, 3]
    )
    np.testing.assert_array_equal(np.asarray(array_to_image(np.array([[True, False]])))[0, :, 0], [255, 0])
    rgba = np.zeros((1, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (0, 0, 255, 255)
    np.testing.assert_array_equal(np.asarray(array_to_image(rgba)), [[[0, 0, 255], [255, 255, 255]]])


@pytest.mark.parametrize(
    ("array", "reason"),
    [
        (np.zeros((2, 2, 2)), r"shape \(2, 2, 2\) is not an image"),
        (np.zeros(5), r"shape \(5,\) is not an image"),
        (np.zeros((1, 2, 2, 3)), r"shape \(1, 2, 2, 3\) is not an image"),
        (np.zeros((0, 3)), "no pixels"),
        (np.array([[np.nan]]), "NaN"),
        (np.array([["a"]]), "dtype <U1 is not an image"),
        (np.zeros((1, 1), dtype=np.complex64), "dtype complex64"),
    ],
)
def test_array_to_image_refusals(array: np.ndarray, reason: str) -> None:
    with pytest.raises(ImageError, match=reason):
        array_to_image(array)
