"""Read a PyTorch ``state_dict`` file into numpy arrays, without torch and without running its pickle.

Pretrained weights are published as ``torch.save`` files, but torch is a
multi-gigabyte dependency the engine does not otherwise need, and
``pickle.load`` on a downloaded file can execute arbitrary code.  A state dict is
only a mapping of names to tensors, so a restricted unpickler that knows the
handful of globals such a file refers to (``OrderedDict``, the tensor rebuild
functions and the storage classes) reads it completely; any other global is
refused before anything is called.

Both on-disk layouts are read:

* the legacy format (torch < 1.6, still written with
  ``_use_new_zipfile_serialization=False``): five concatenated pickles (magic
  number, protocol version, system info, the object with persistent ids in
  place of storages, the list of storage keys) followed by the raw storages, each
  prefixed by its element count as an 8-byte little-endian integer;
* the zip format: ``<name>/data.pkl`` plus one raw file per storage,
  ``<name>/data/<key>``.
"""

from __future__ import annotations

import io
import math
import pickle
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = ["TorchPickleError", "load_state_dict"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

# torch storage class name -> numpy dtype of one element.  bfloat16 has no numpy
# dtype: its raw 16-bit words are read as uint16 and widened to float32 below.
_STORAGE_DTYPES: dict[str, np.dtype[Any]] = {
    "DoubleStorage": np.dtype(np.float64),
    "FloatStorage": np.dtype(np.float32),
    "HalfStorage": np.dtype(np.float16),
    "BFloat16Storage": np.dtype(np.uint16),
    "LongStorage": np.dtype(np.int64),
    "IntStorage": np.dtype(np.int32),
    "ShortStorage": np.dtype(np.int16),
    "CharStorage": np.dtype(np.int8),
    "ByteStorage": np.dtype(np.uint8),
    "BoolStorage": np.dtype(np.bool_),
    "ComplexFloatStorage": np.dtype(np.complex64),
    "ComplexDoubleStorage": np.dtype(np.complex128),
}


class TorchPickleError(ValueError):
    """The file is not a torch-serialized state dict this reader understands (or it is unsafe)."""


@dataclass(frozen=True, slots=True)
class _StorageType:
    """Stands in for a ``torch.*Storage`` class named by the pickle."""

    name: str
    dtype: np.dtype[Any]


@dataclass(slots=True)
class _Storage:
    """A storage referenced by a persistent id; its bytes are attached once they are read.

    ``view`` is set for the legacy format's storage views: (root key, element
    offset, element count) of a slice of another storage.
    """

    key: str
    type: _StorageType
    numel: int
    view: tuple[str, int, int] | None = None
    data: np.ndarray[Any, Any] | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class _TensorRef:
    """What ``_rebuild_tensor_v2`` returns here: a recipe materialised after the storages are read."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any, *_: Any) -> _TensorRef:
    """Replacement for ``torch._utils._rebuild_tensor(_v2)``: records the view, computes nothing.

    The v2 signature adds ``requires_grad``, ``backward_hooks`` and (newer
    torch) ``metadata``; they mean nothing for a numpy array and are ignored.
    """
    if not isinstance(storage, _Storage):
        msg = f"a tensor refers to {type(storage).__name__}, not to a storage"
        raise TorchPickleError(msg)
    shape = tuple(int(s) for s in size)
    strides = tuple(int(s) for s in stride)
    if len(shape) != len(strides):
        msg = f"tensor size {shape} and stride {strides} disagree"
        raise TorchPickleError(msg)
    return _TensorRef(storage, int(storage_offset), shape, strides)


def _rebuild_parameter(data: Any, *_: Any) -> Any:
    """Replacement for ``torch._utils._rebuild_parameter``: a parameter is its tensor."""
    return data


_ALLOWED: dict[tuple[str, str], Callable[..., Any]] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals a state dict needs; it never imports anything."""

    def __init__(self, file: IO[bytes], storages: dict[str, _Storage]) -> None:
        super().__init__(file, encoding="utf-8")
        self.storages = storages

    def find_class(self, module: str, name: str) -> Any:
        """Map the few known globals to harmless stand-ins; refuse everything else."""
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name, _STORAGE_DTYPES[name])
        try:
            return _ALLOWED[module, name]
        except KeyError:
            msg = f"refusing to load global {module}.{name}: a state dict holds only tensors"
            raise TorchPickleError(msg) from None

    def persistent_load(self, pid: Any) -> _Storage:
        """Turn ``('storage', type, key, location, numel[, view])`` into a (shared) :class:`_Storage`."""
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            msg = f"unknown persistent id {pid!r:.80}"
            raise TorchPickleError(msg)
        storage_type, key, numel = pid[1], str(pid[2]), int(pid[4])
        if not isinstance(storage_type, _StorageType):
            msg = f"storage {key!r} has unsupported type {storage_type!r:.80}"
            raise TorchPickleError(msg)
        storage = self.storages.get(key)
        if storage is None:
            storage = self.storages[key] = _Storage(key, storage_type, numel)
        view_metadata = pid[5] if len(pid) > 5 else None
        if view_metadata is None:
            return storage
        # legacy format only: a slice (in elements) of the root storage ``key``
        view_key, view_offset, view_size = (
            str(view_metadata[0]),
            int(view_metadata[1]),
            int(view_metadata[2]),
        )
        view = self.storages.get(view_key)
        if view is None:
            view = _Storage(view_key, storage_type, view_size, view=(key, view_offset, view_size))
            self.storages[view_key] = view
        return view


def _unpickle(data: IO[bytes], storages: dict[str, _Storage]) -> Any:
    try:
        return _RestrictedUnpickler(data, storages).load()
    except TorchPickleError:
        raise
    except Exception as exc:  # a corrupt pickle raises anything from EOFError to UnpicklingError
        msg = f"not a readable torch pickle ({type(exc).__name__}: {exc})"
        raise TorchPickleError(msg) from exc


def _plain_load(data: IO[bytes]) -> Any:
    """One of the legacy header pickles (numbers, a dict of sizes): no globals allowed at all."""
    return _unpickle(data, {})


def _read_legacy(f: IO[bytes], size: int) -> tuple[Any, dict[str, _Storage]]:
    if _plain_load(f) != _LEGACY_MAGIC:
        msg = "not a torch file (wrong magic number)"
        raise TorchPickleError(msg)
    if _plain_load(f) != _LEGACY_PROTOCOL:
        msg = "unsupported torch legacy protocol version"
        raise TorchPickleError(msg)
    sys_info = _plain_load(f)
    little = bool(sys_info.get("little_endian", True)) if isinstance(sys_info, dict) else True
    storages: dict[str, _Storage] = {}
    result = _unpickle(f, storages)
    keys = _plain_load(f)
    if not isinstance(keys, list):
        msg = "corrupt torch file: the storage key list is missing"
        raise TorchPickleError(msg)
    remaining = size - f.tell()
    for key in keys:
        storage = storages.get(str(key))
        if storage is None:
            msg = f"corrupt torch file: storage {key!r} is not referenced"
            raise TorchPickleError(msg)
        (count,) = struct.unpack("<q", _read_exactly(f, 8))
        if not 0 <= count <= remaining // storage.type.dtype.itemsize:  # never allocate what is not there
            msg = f"corrupt torch file: storage {key!r} claims {count} elements"
            raise TorchPickleError(msg)
        storage.data = _array(_read_exactly(f, count * storage.type.dtype.itemsize), storage, little=little)
        remaining = size - f.tell()
    return result, storages


def _read_exactly(f: IO[bytes], n: int) -> bytes:
    raw = f.read(n)
    if len(raw) != n:
        msg = f"truncated torch file: wanted {n} bytes, got {len(raw)}"
        raise TorchPickleError(msg)
    return raw


def _read_zip(archive: zipfile.ZipFile) -> tuple[Any, dict[str, _Storage]]:
    # The top folder is named after the file torch.save wrote ("archive" for buffers).
    pickles = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")]
    if len(pickles) != 1:
        msg = "not a torch zip file: no single <name>/data.pkl"
        raise TorchPickleError(msg)
    prefix = pickles[0].removesuffix("data.pkl")
    byteorder = "little"
    if f"{prefix}byteorder" in archive.namelist():
        byteorder = archive.read(f"{prefix}byteorder").decode("ascii").strip()
    storages: dict[str, _Storage] = {}
    with archive.open(pickles[0]) as f:
        result = _unpickle(io.BytesIO(f.read()), storages)
    for key, storage in storages.items():
        if storage.view is not None:
            continue
        try:
            raw = archive.read(f"{prefix}data/{key}")
        except KeyError:
            msg = f"corrupt torch zip file: storage {key!r} is missing"
            raise TorchPickleError(msg) from None
        storage.data = _array(raw, storage, little=byteorder == "little")
    return result, storages


def _array(raw: bytes, storage: _Storage, *, little: bool) -> np.ndarray[Any, Any]:
    """The elements of one storage in native byte order (a read-only view when no swap is needed)."""
    dtype = storage.type.dtype.newbyteorder("<" if little else ">")
    usable = len(raw) - len(raw) % dtype.itemsize
    return np.frombuffer(raw[:usable], dtype=dtype).astype(storage.type.dtype.newbyteorder("="), copy=False)


def _materialise(ref: _TensorRef, storages: Mapping[str, _Storage]) -> np.ndarray[Any, Any]:
    storage = ref.storage
    data = storage.data
    if storage.view is not None:
        root_key, view_offset, view_size = storage.view
        root = storages[root_key].data
        data = None if root is None else root[view_offset : view_offset + view_size]
    if data is None:
        msg = f"corrupt torch file: storage {storage.key!r} has no data"
        raise TorchPickleError(msg)
    if any(s == 0 for s in ref.size):
        out = np.zeros(ref.size, dtype=data.dtype)
    else:
        if ref.offset < 0 or any(s < 0 for s in ref.stride):
            msg = f"tensor in storage {storage.key!r} has a negative offset or stride"
            raise TorchPickleError(msg)
        last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride, strict=True))
        if (
            math.prod(ref.size) > data.size
        ):  # weights never broadcast; a crafted stride-0 view could ask for TBs
            msg = (
                f"tensor of size {ref.size} is larger than its storage {storage.key!r} ({data.size} elements)"
            )
            raise TorchPickleError(msg)
        if last >= data.size:
            msg = f"tensor reaches element {last} of storage {storage.key!r}, which holds {data.size}"
            raise TorchPickleError(msg)
        item = data.itemsize
        out = np.lib.stride_tricks.as_strided(
            data[ref.offset :], shape=ref.size, strides=tuple(s * item for s in ref.stride), writeable=False
        ).copy()
    if storage.type.name == "BFloat16Storage":  # the high half of a float32
        out = (out.astype(np.uint32) << 16).view(np.float32)
    return out


def _resolve(obj: Any, storages: Mapping[str, _Storage]) -> Any:
    """Replace every tensor recipe in the unpickled structure by its array."""
    if isinstance(obj, _TensorRef):
        return _materialise(obj, storages)
    if isinstance(obj, dict):
        return type(obj)((k, _resolve(v, storages)) for k, v in obj.items())
    if isinstance(obj, list | tuple):
        return type(obj)(_resolve(v, storages) for v in obj)
    return obj


def load_state_dict(path: str | Path) -> dict[str, np.ndarray[Any, Any]]:
    """The tensors of a ``torch.save``-d state dict, by name, as numpy arrays (C-contiguous copies).

    Raises:
        TorchPickleError: the file is not a state dict, is corrupt, or names a
            global outside the allow-list (it is refused, never called).
    """
    path = Path(path)
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                result, storages = _read_zip(archive)
        except (zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
            msg = f"corrupt torch zip file ({exc})"
            raise TorchPickleError(msg) from exc
    else:
        with path.open("rb") as f:
            result, storages = _read_legacy(f, path.stat().st_size)
    try:
        state = _resolve(result, storages)
    except RecursionError:
        msg = "the file nests containers too deeply to be a state dict"
        raise TorchPickleError(msg) from None
    if not isinstance(state, dict):
        msg = f"the file holds a {type(state).__name__}, not a state dict"
        raise TorchPickleError(msg)
    out: dict[str, np.ndarray[Any, Any]] = {}
    for key, value in state.items():
        if not isinstance(value, np.ndarray):
            msg = f"state dict entry {key!r} is a {type(value).__name__}, not a tensor"
            raise TorchPickleError(msg)
        out[str(key)] = value
    return out
