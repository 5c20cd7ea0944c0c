"""Images as features: safe decoding of client images and fixed-length vectors for LightGBM.

A gradient-boosted model cannot read pixels, so an image column is turned into
a fixed-length float vector per row (a "featurizer"), the same way at training
and at prediction.  The preferred featurizer is a pretrained EfficientNet-Lite0
run by onnxruntime, built from PyTorch weights without torch and without the
network; the classical one (histograms, HOG, LBP) is the fallback where the CNN
cannot load.  Images come from clients as text, so decoding is defensive: size
limits before any pixel is decoded, a short list of formats, and every failure
a short reason naming the row.

Importing this package loads Pillow and numpy only; onnx, onnxruntime and
scikit-image are imported when a featurizer is built.
"""

from __future__ import annotations

from tsengine.images.classical import Classical
from tsengine.images.decode import (
    ImageError,
    ImageLimits,
    array_to_image,
    decode_images,
    image_bytes,
    npy_array,
    open_image,
)
from tsengine.images.efficientnet import EfficientNetLite0
from tsengine.images.featurizer import FEATURIZERS, Featurizer, ImageFeaturizerUnavailable, get_featurizer
from tsengine.images.torch_pickle import TorchPickleError, load_state_dict

__all__ = [
    "FEATURIZERS",
    "Classical",
    "EfficientNetLite0",
    "Featurizer",
    "ImageError",
    "ImageFeaturizerUnavailable",
    "ImageLimits",
    "TorchPickleError",
    "array_to_image",
    "decode_images",
    "get_featurizer",
    "image_bytes",
    "load_state_dict",
    "npy_array",
    "open_image",
]
