"""Hand-made image features: colour histograms, HOG and LBP on a 64×64 thumbnail.

The fallback when the CNN cannot load (no onnxruntime, no weights): far
weaker than a pretrained network, but deterministic, cheap (about a
millisecond an image) and enough for a gradient-boosted model to pick up
colour, edge layout and texture.  Every image is reduced to the same
thumbnail first, so the vector length is fixed whatever the input size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from tsengine.images.decode import as_rgb
from tsengine.images.featurizer import ImageFeaturizerUnavailable

__all__ = ["Classical"]

_SIZE = 64  # thumbnail side
_BINS = 8  # histogram bins per HSV channel
_CELL = 16  # HOG cell side, pixels
_BLOCK = 2  # HOG block side, cells
_ORIENTATIONS = 9
_LBP_POINTS, _LBP_RADIUS = 8, 1
_LBP_BINS = _LBP_POINTS + 2  # "uniform" LBP codes are 0..P+1

_HOG_DIM = ((_SIZE // _CELL - _BLOCK + 1) ** 2) * _BLOCK * _BLOCK * _ORIENTATIONS
_DIM = 3 * _BINS + _HOG_DIM + _LBP_BINS


def _skimage_feature() -> Any:
    try:
        from skimage import feature
    except ImportError as exc:
        msg = f"the classical image featurizer needs scikit-image ({exc}); install tsengine[images]"
        raise ImageFeaturizerUnavailable(msg) from exc
    return feature


class Classical:
    """A fixed-length float32 vector per image: HSV histograms (24), HOG (324), uniform LBP histogram (10).

    HSV rather than RGB histograms because hue separates "what colour" from
    "how bright", which lighting changes; the histograms and the LBP are
    fractions of the thumbnail's pixels, so they do not depend on image size.
    """

    name = "classical"
    dim = _DIM

    def __init__(self) -> None:
        """Check scikit-image is importable now, not at the first prediction."""
        self._feature = _skimage_feature()

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray[Any, Any]:
        """An ``(len(images), dim)`` float32 array (any PIL mode: L, RGBA, P, 1-pixel-wide...)."""
        out = np.empty((len(images), self.dim), dtype=np.float32)
        if not images:
            return out
        thumbs = [as_rgb(im).resize((_SIZE, _SIZE), Image.Resampling.BILINEAR) for im in images]
        out[:, : 3 * _BINS] = _hsv_histograms(np.stack([np.asarray(t.convert("HSV")) for t in thumbs]))
        greys = np.stack([np.asarray(t.convert("L")) for t in thumbs])
        for i, grey in enumerate(greys):
            out[i, 3 * _BINS : 3 * _BINS + _HOG_DIM] = self._feature.hog(
                grey,
                orientations=_ORIENTATIONS,
                pixels_per_cell=(_CELL, _CELL),
                cells_per_block=(_BLOCK, _BLOCK),
                block_norm="L2-Hys",
                feature_vector=True,
            )
        codes = np.stack(
            [self._feature.local_binary_pattern(g, _LBP_POINTS, _LBP_RADIUS, method="uniform") for g in greys]
        )
        out[:, 3 * _BINS + _HOG_DIM :] = _histograms(
            codes.astype(np.int64).reshape(len(images), -1), _LBP_BINS
        )
        return out


def _histograms(values: np.ndarray[Any, Any], bins: int) -> np.ndarray[Any, Any]:
    """Row-wise normalised counts of integer codes 0..bins-1 (one ``bincount`` for the whole batch)."""
    n, width = values.shape
    offsets = (np.arange(n, dtype=np.int64) * bins)[:, None]
    counts = np.bincount((values + offsets).ravel(), minlength=n * bins).reshape(n, bins)
    return counts.astype(np.float32) / np.float32(width)


def _hsv_histograms(hsv: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """(n, H, W, 3) uint8 HSV → (n, 3·bins): each channel's histogram, channels side by side."""
    n = hsv.shape[0]
    binned = (hsv.astype(np.int64) * _BINS) >> 8  # 0..255 → 0..bins-1
    per_channel = binned.reshape(n, -1, 3).transpose(0, 2, 1).reshape(n * 3, -1)
    return _histograms(per_channel, _BINS).reshape(n, 3 * _BINS)
