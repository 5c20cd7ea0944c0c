"""Image columns of a tabular deployment: client text → decoded images → embeddings.

Every surface (CSV, JSON, ``{"rows"}``, multipart uploads, batch files, the
Peltarion and Einstein routes) ends up handing the deployment one text value per
row: base64, a ``data:image/...;base64,`` URI, or Peltarion's
``data:application/x.peltarion.npy;base64,`` array.  This module is the one
place that turns such a column into the featurizer's embedding, so a photo
gives the same numbers whichever way it came in.

Images are decoded and embedded a chunk at a time: a batch file of ten
thousand photos never holds more than one chunk of decoded pixels.  Every bad
row is reported (column, row and reason), not only the first, and once one is
found the remaining rows are only checked, not embedded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from tsengine.errors import ParameterError, UnavailableError, ValidationError

if TYPE_CHECKING:
    from PIL.Image import Image

    from tsengine.images import Featurizer

__all__ = ["NPY_PREFIX", "featurizer_for", "image_features", "npy_number", "to_image"]

NPY_PREFIX = "data:application/x.peltarion.npy"
"""Peltarion's data URI for a ``.npy`` array; an image column reads 2-D or 3-D arrays as pixels."""

_CHUNK = 64  # images decoded and embedded at a time
_MAX_REPORTED = 5


def featurizer_for(name: str) -> Featurizer:
    """The featurizer a deployment was trained with, or a 503 naming what to install.

    Raises:
        ParameterError: an unknown featurizer name.
        UnavailableError: the image extra (or the CNN's weights) is not installed.
    """
    try:
        from tsengine.images import get_featurizer

        return get_featurizer(name)
    except ValueError as exc:
        raise ParameterError(str(exc)) from exc
    except ImportError as exc:
        msg = (
            f"this deployment reads images with the {name!r} featurizer, which cannot load here "
            f"({exc}); install the image extra: pip install 'tsengine[images]'"
        )
        raise UnavailableError(msg) from exc


def to_image(value: str) -> Image:
    """One client value as a decoded RGB image (base64, image data URI or ``.npy`` data URI).

    Raises:
        ImageError: undecodable, not an image, over the size limits.
    """
    from tsengine.images import array_to_image, image_bytes, npy_array, open_image

    text = value.strip()
    if is_npy(text):
        return array_to_image(npy_array(text))
    return open_image(image_bytes(text))


def is_npy(value: str) -> bool:
    """Whether a client value is Peltarion's ``.npy`` data URI."""
    return value.lstrip()[: len(NPY_PREFIX)].lower() == NPY_PREFIX


def npy_number(value: str) -> float:
    """A number sent as a one-element ``.npy`` array (Peltarion's numeric feature).

    Raises:
        ImageError: not a ``.npy`` array, or one with more than one element.
    """
    from tsengine.images import ImageError, npy_array

    array = npy_array(value.strip())
    if array.size != 1 or not np.issubdtype(array.dtype, np.number):
        msg = f"a numeric column takes a one-number .npy array, got shape {array.shape} of {array.dtype}"
        raise ImageError(msg)
    return float(array.reshape(-1)[0])


def image_features(col: pl.Series, *, featurizer: str, dim: int) -> pl.Series:
    """The embedding of every row's image: ``Array(Float32, dim)``, NaN where a row has none.

    An empty or missing value is a missing image (LightGBM routes it as missing),
    as an empty cell is a missing number.

    Raises:
        ValidationError: rows whose value is not a decodable image, naming the
            column, the rows and why.
        UnavailableError: the featurizer cannot load on this machine.
    """
    from tsengine.images import ImageError

    model = featurizer_for(featurizer)
    if model.dim != dim:
        msg = f"image featurizer {featurizer!r} gives {model.dim} values here, the deployment expects {dim}"
        raise UnavailableError(msg)
    text = col.cast(pl.String, strict=False) if col.dtype != pl.String else col
    text = text.str.strip_chars()
    present = np.flatnonzero((text.is_not_null() & (text != "")).to_numpy())
    values: Sequence[str] = text.gather(present).to_list() if present.size else []
    out = np.full((col.len(), dim), np.nan, dtype=np.float32)
    problems: list[str] = []
    for start in range(0, present.size, _CHUNK):
        rows = present[start : start + _CHUNK]
        images: list[Image] = []
        for row, value in zip(rows.tolist(), values[start : start + _CHUNK], strict=True):
            try:
                images.append(to_image(value))
            except ImageError as exc:
                problems.append(f"row {row}: {exc}")
        if not problems:
            out[rows] = model.embed(images)
    if problems:
        more = len(problems) - _MAX_REPORTED
        listed = "; ".join(problems[:_MAX_REPORTED]) + (f"; and {more} more" if more > 0 else "")
        msg = f"image column {col.name!r}: {listed}"
        raise ValidationError(msg)
    return pl.Series(col.name, out)
