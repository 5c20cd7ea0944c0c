"""Which featurizer turns images into numbers, chosen by name and cached per process.

A deployment stores the *name* of the featurizer it was trained with, so that
prediction embeds images the same way; ``"auto"`` is only for training, where
the CNN is preferred and the classical features are the fallback on machines
without onnxruntime or the weights.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    from PIL.Image import Image

__all__ = ["FEATURIZERS", "Featurizer", "ImageFeaturizerUnavailable", "get_featurizer"]

FEATURIZERS: tuple[str, ...] = ("efficientnet-lite0", "classical")
"""The featurizer names :func:`get_featurizer` knows (besides ``"auto"``)."""


class ImageFeaturizerUnavailable(ImportError):  # noqa: N818 - the name says what the caller catches it for
    """A featurizer's optional dependencies (onnx, onnxruntime, the weights, scikit-image) are missing.

    An :class:`ImportError` so that code already catching missing optional
    packages treats it alike; the message names what to install.
    """


@runtime_checkable
class Featurizer(Protocol):
    """Turns images into fixed-length float32 rows, one per image, the same way in every process."""

    name: str
    dim: int

    def embed(self, images: Sequence[Image]) -> np.ndarray:
        """An ``(len(images), dim)`` float32 array; row ``i`` depends on ``images[i]`` only."""
        ...


def get_featurizer(name: str = "auto") -> Featurizer:
    """The featurizer called ``name``, built once per process.

    ``"auto"`` is EfficientNet-Lite0 when it loads here, else the classical
    features.

    Raises:
        ValueError: an unknown name (the message lists the choices).
        ImageFeaturizerUnavailable: the named featurizer cannot load here.
    """
    if name != "auto" and name not in FEATURIZERS:
        msg = (
            f"unknown image featurizer {name!r}; choose one of {', '.join(map(repr, ('auto', *FEATURIZERS)))}"
        )
        raise ValueError(msg)
    return _cached(name)


@functools.cache
def _cached(name: str) -> Featurizer:
    # Imported here: the concrete featurizers import this module for the error class,
    # and importing tsengine.images must not load onnxruntime.
    if name == "auto":
        try:
            return _cached(FEATURIZERS[0])
        except ImageFeaturizerUnavailable:
            return _cached("classical")
    if name == "classical":
        from tsengine.images.classical import Classical

        return Classical()
    from tsengine.images.efficientnet import EfficientNetLite0

    return EfficientNetLite0()
