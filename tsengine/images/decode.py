"""Safe decoding of images sent by clients: text → bytes → a loaded RGB image, or a short reason why not.

Images arrive as text in a CSV or JSON cell (base64, a ``data:image/...;base64,``
URI, or Peltarion's ``.npy`` data URI).  Such input is hostile until proven
otherwise: image decoders are large C libraries, and a few kilobytes of PNG
can claim billions of pixels (a decompression bomb).  So every value is size
checked as bytes, opened lazily (header only), checked for pixel count and side
length *before* its pixels are decoded, restricted to a handful of common
formats, and every failure becomes an :class:`ImageError` with a human reason;
no Pillow exception escapes.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from tsengine.errors import ValidationError

__all__ = [
    "ALLOWED_FORMATS",
    "NPY_MIME",
    "ImageError",
    "ImageLimits",
    "array_to_image",
    "as_rgb",
    "decode_images",
    "image_bytes",
    "npy_array",
    "open_image",
]

ALLOWED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")
"""Pillow formats a client image may be in; the other decoders (many rarely exercised) are never tried."""

NPY_MIME = "application/x.peltarion.npy"
"""MIME type of Peltarion's data URIs holding a ``.npy`` array (not an image format)."""

_MAX_REPORTED = 5  # rows named in a decode_images error before "and N more"

# One pass over the payload: drop ASCII whitespace (line-wrapped base64) and map
# the urlsafe alphabet onto the standard one.
_CLEAN = str.maketrans(
    {" ": None, "\t": None, "\n": None, "\r": None, "\v": None, "\f": None, "-": "+", "_": "/"}
)
_BASE64 = re.compile(r"[A-Za-z0-9+/]*")
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


class ImageError(ValueError):
    """A client value is not a usable image; the message is a short reason fit for the client."""


@dataclass(frozen=True, slots=True)
class ImageLimits:
    """What a single client image may cost before it is refused.

    Attributes:
        max_bytes: encoded size (after base64).  20 MiB holds any sensible
            photo, even an uncompressed 12-megapixel BMP, while bounding the
            memory a request can pin before decoding starts.
        max_pixels: decoded area.  Decoding needs about 4 bytes a pixel (more
            while converting), so 40 megapixels caps one image at a few hundred
            MB; real cameras stay below it, decompression bombs (a tiny file
            claiming 50,000×50,000 pixels) do not.  It is below Pillow's own
            bomb threshold (about 89 megapixels), so our message, not Pillow's
            warning, is what a client sees.
        max_side: longest side.  A 20,000×2,000 strip passes the pixel limit
            but its side is already unusual; 1×40,000,000 "images" are attacks
            on resize code, not pictures.
    """

    max_bytes: int = 20 * 2**20
    max_pixels: int = 40_000_000
    max_side: int = 20_000


_DEFAULT_LIMITS = ImageLimits()


def _short(text: str, limit: int = 60) -> str:
    """A header quoted in a message: a payload glued onto it must not flood the message."""
    return text if len(text) <= limit else f"{text[:limit]}..."


def _b64decode(payload: str) -> bytes:
    """Standard or urlsafe base64, padded or not, wrapped or not."""
    text = payload.translate(_CLEAN).rstrip("=")
    if not text:
        msg = "empty base64 payload"
        raise ImageError(msg)
    bad = _BASE64.fullmatch(text) is None
    if bad:
        first = next(c for c in text if not (c.isascii() and (c.isalnum() or c in "+/")))
        msg = f"not valid base64 (unexpected character {first!r})"
        raise ImageError(msg)
    if len(text) % 4 == 1:
        msg = "not valid base64 (truncated: its length cannot be decoded)"
        raise ImageError(msg)
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error as exc:  # pragma: no cover - the checks above leave nothing for it to refuse
        msg = f"not valid base64 ({exc})"
        raise ImageError(msg) from exc


def _split_data_uri(text: str) -> tuple[str, str, str]:
    """``data:<mime>[;params];base64,<payload>`` → (header, lower-cased MIME type, payload).

    Raises:
        ImageError: no comma, or the payload is not declared ``;base64``.
    """
    header, sep, payload = text.partition(",")
    if not sep:
        msg = f"data URI {_short(header)!r} has no ',' before its payload"
        raise ImageError(msg)
    params = [p.strip().lower() for p in header[5:].split(";")]
    if len(params) < 2 or params[-1] != "base64":
        msg = f"data URI header {_short(header)!r} is not base64-encoded (expected ';base64,')"
        raise ImageError(msg)
    return header, params[0], payload


def image_bytes(value: str) -> bytes:
    """The encoded image in a client value: raw base64 or a ``data:image/...;base64,`` URI.

    Raises:
        ImageError: not base64, or a data URI of another MIME type (the
            message quotes the header, e.g. ``'data:text/plain;base64'``).
    """
    text = value.strip()
    if not text:
        msg = "empty image value"
        raise ImageError(msg)
    if text[:5].lower() == "data:":
        header, mime, text = _split_data_uri(text)
        if not mime.startswith("image/"):
            msg = f"data URI header {_short(header)!r} is not an image MIME type"
            raise ImageError(msg)
    return _b64decode(text)


def _check_size(width: int, height: int, limits: ImageLimits) -> None:
    pixels = width * height
    if pixels > limits.max_pixels:
        msg = f"image is {width}×{height} = {pixels:,} pixels; the limit is {limits.max_pixels:,}"
        raise ImageError(msg)
    if max(width, height) > limits.max_side:
        msg = f"image is {width}×{height}; a side may be at most {limits.max_side:,} pixels"
        raise ImageError(msg)
    if pixels == 0:
        msg = f"image is {width}×{height}: it has no pixels"
        raise ImageError(msg)


def _bomb_message(exc: Exception, limits: ImageLimits) -> str:
    """Pillow's own bomb guard fired (only for images far above our limit): its pixel count, our limit."""
    found = _BOMB_PIXELS.search(str(exc))
    size = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
    return f"image is {size}; the limit is {limits.max_pixels:,} (refused as a decompression bomb)"


def _failure(exc: Exception) -> str:
    """A short reason for a decoder failure (Pillow raises OSError, SyntaxError, EOFError, ValueError...)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, EOFError) or "truncated" in text:
        return "truncated image"
    return f"not a decodable image ({_short(text, 100)})"


def open_image(data: bytes, limits: ImageLimits = _DEFAULT_LIMITS) -> Image.Image:
    """A loaded RGB image from encoded bytes, refused cheaply when it is too big or not an image.

    The header is read first (``Image.open`` is lazy), so size and pixel limits
    are enforced before any pixel is decoded.  GIFs and multi-page TIFFs give
    their first frame; the EXIF orientation is applied, so a phone photo is
    the right way up; transparency is composited onto white.

    Raises:
        ImageError: too many bytes or pixels, an unsupported format, a corrupt
            or truncated file.
    """
    if len(data) > limits.max_bytes:
        msg = f"image is {len(data):,} bytes; the limit is {limits.max_bytes:,}"
        raise ImageError(msg)
    try:
        opened = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError:
        msg = f"not a decodable image (cannot identify image file; accepted formats: {', '.join(ALLOWED_FORMATS)})"
        raise ImageError(msg) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # the warning arrives here only where a warnings filter turned it into an error
        raise ImageError(_bomb_message(exc, limits)) from None
    except Exception as exc:  # a plugin choking on its header
        raise ImageError(_failure(exc)) from None
    with opened:
        _check_size(*opened.size, limits)
        try:
            opened.load()
            upright = ImageOps.exif_transpose(opened)
            image = as_rgb(upright)
            image.load()
        except ImageError:
            raise
        except Exception as exc:  # Pillow's decoders raise a zoo of types; none may escape
            raise ImageError(_failure(exc)) from None
    return image


def as_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow image as 8-bit RGB, the one layout the featurizers read.

    Transparent pixels often carry arbitrary (usually black) colour, so alpha
    is composited onto white rather than dropped; 16-bit and float greyscale
    are scaled to 0..255 instead of being clipped to white.

    Raises:
        ImageError: Pillow cannot convert the mode (e.g. LAB) to RGB.
    """
    mode = image.mode
    if mode == "RGB":
        return image
    try:
        if mode.startswith("I") or mode == "F":
            grey = np.asarray(image, dtype=np.float64)
            if mode.startswith("I") and grey.size and grey.max() > 255:
                grey = grey / 257.0
            image = Image.fromarray(np.clip(np.rint(grey), 0, 255).astype(np.uint8))
            return image.convert("RGB")
        if mode in _ALPHA_MODES or "transparency" in image.info:
            rgba = image.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(white, rgba).convert("RGB")
        return image.convert("RGB")
    except ValueError as exc:
        msg = f"cannot convert a {mode} image to RGB ({exc})"
        raise ImageError(msg) from None


def npy_array(value: str) -> np.ndarray[Any, Any]:
    """The array in Peltarion's ``data:application/x.peltarion.npy;base64,<payload>``.

    The ``.npy`` header is checked before loading: pickled objects are refused
    (``allow_pickle=False``), and so is a header claiming more data than the
    payload holds, which would otherwise make numpy allocate the claimed size.

    Raises:
        ImageError: another data URI, bad base64, or not a ``.npy`` array.
    """
    text = value.strip()
    if text[:5].lower() != "data:":
        msg = f"expected a 'data:{NPY_MIME};base64,' URI"
        raise ImageError(msg)
    header, mime, payload = _split_data_uri(text)
    if mime != NPY_MIME:
        msg = f"data URI header {_short(header)!r} is not 'data:{NPY_MIME};base64'"
        raise ImageError(msg)
    raw = _b64decode(payload)
    stream = io.BytesIO(raw)
    fmt = np.lib.format
    try:
        version = fmt.read_magic(stream)
        reader = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, _, dtype = reader(stream)
    except Exception as exc:
        msg = f"not a .npy array ({_short(str(exc), 100)})"
        raise ImageError(msg) from None
    if dtype.hasobject:
        msg = "a .npy array of Python objects is refused"
        raise ImageError(msg)
    needed = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if needed > len(raw) - stream.tell():
        msg = f"truncated .npy array: shape {tuple(shape)} needs {needed:,} bytes, the payload has fewer"
        raise ImageError(msg)
    stream.seek(0)
    try:
        array: np.ndarray[Any, Any] = np.load(stream, allow_pickle=False)
    except Exception as exc:
        msg = f"not a .npy array ({_short(str(exc), 100)})"
        raise ImageError(msg) from None
    return array


def array_to_image(arr: np.ndarray[Any, Any], limits: ImageLimits = _DEFAULT_LIMITS) -> Image.Image:
    """An RGB image from a ``(H, W)`` or ``(H, W, C)`` array, C in 1, 3, 4.

    Floats all within [0, 1] are read as intensities and scaled to 0..255;
    any other numbers are rounded and clipped to 0..255 (so 0..255 floats and
    uint16 that are really 8-bit work); booleans are black and white.  Four
    channels are RGBA, composited onto white like an uploaded PNG.

    Raises:
        ImageError: another shape or dtype, non-finite values, over the limits.
    """
    a = np.asarray(arr)
    if a.dtype.kind not in "biuf":
        msg = f"an array of dtype {a.dtype} is not an image; expected numbers"
        raise ImageError(msg)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))):
        msg = (
            f"an array of shape {tuple(arr.shape)} is not an image; expected (height, width) "
            "or (height, width, channels) with 1, 3 or 4 channels"
        )
        raise ImageError(msg)
    _check_size(a.shape[1], a.shape[0], limits)
    if a.dtype.kind == "b":
        pixels = a.astype(np.uint8) * np.uint8(255)
    elif a.dtype.kind == "f":
        if not np.isfinite(a).all():
            msg = "the array has NaN or infinite values"
            raise ImageError(msg)
        scaled = a * 255.0 if a.min() >= 0 and a.max() <= 1 else a
        pixels = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    else:
        pixels = np.clip(a, 0, 255).astype(np.uint8)
    return as_rgb(Image.fromarray(np.ascontiguousarray(pixels)))


def _decode_one(value: str, limits: ImageLimits) -> Image.Image:
    text = value.strip()
    if text[: 5 + len(NPY_MIME)].lower() == f"data:{NPY_MIME}":
        return array_to_image(npy_array(text), limits)
    return open_image(image_bytes(text), limits)


def decode_images(
    values: Sequence[str | None], *, column: str, limits: ImageLimits = _DEFAULT_LIMITS
) -> list[Image.Image | None]:
    """Decode a column of client values; ``None`` or blank is a missing image and stays ``None``.

    Besides base64 and image data URIs, Peltarion's ``.npy`` data URIs are
    read as pixel arrays.  Every row is tried, so one error names all the bad
    rows (the first few, then a count) instead of only the first.

    Raises:
        ValidationError: (HTTP 422) naming the column, the 0-based rows and why.
    """
    images: list[Image.Image | None] = []
    problems: list[str] = []
    for row, value in enumerate(values):
        if value is None or not value.strip():
            images.append(None)
            continue
        try:
            images.append(_decode_one(value, limits))
        except ImageError as exc:
            images.append(None)
            problems.append(f"row {row}: {exc}")
    if problems:
        listed = "; ".join(problems[:_MAX_REPORTED])
        if len(problems) > _MAX_REPORTED:
            listed += f"; and {len(problems) - _MAX_REPORTED} more"
        msg = f"column {column!r}: {listed}"
        raise ValidationError(msg)
    return images
