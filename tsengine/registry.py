"""The on-disk deployment store: one folder per id, versions, atomic writes.

Layout::

    REGISTRY/
      <id>/
        CURRENT            name of the live version (replaced atomically)
        v0001/             deployment.json + model.bin
        v0002/ ...

A save writes a new version into a temporary folder, fsyncs it, renames it into
place and only then flips ``CURRENT`` with :func:`os.replace`; a crash at any
moment leaves either the old or the new deployment, never half of one.
"""

from __future__ import annotations

import builtins
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import orjson

from tsengine.errors import DeploymentStoreError, NotFoundError, ParameterError, TsEngineError

__all__ = ["DEPLOYMENT_FORMAT_VERSION", "ENV_VAR", "Registry", "default_registry_path"]

DEPLOYMENT_FORMAT_VERSION = 1
ENV_VAR = "TSENGINE_REGISTRY"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_META, _CURRENT = "deployment.json", "CURRENT"
logger = logging.getLogger("tsengine.registry")


class StoredDeployment(Protocol):
    """What the registry needs of any deployment kind (time series, tabular)."""

    @property
    def id(self) -> str: ...

    @property
    def kind(self) -> str: ...

    def to_files(self) -> tuple[dict[str, Any], dict[str, bytes]]:
        """Metadata for ``deployment.json`` and the other files to store."""
        ...


def _timeseries() -> Callable[..., Any]:
    from tsengine.deployment import Deployment

    return Deployment.from_files


def _tabular() -> Callable[..., Any]:
    from tsengine.tabular.deployment import TabularDeployment  # type: ignore[import-not-found,unused-ignore]

    return TabularDeployment.from_files  # type: ignore[no-any-return,unused-ignore]


# kind → loader of ``from_files(meta, read)``; imported lazily to keep start-up small.
_KINDS: dict[str, Callable[[], Callable[..., Any]]] = {
    "timeseries": _timeseries,
    "tabular": _tabular,
}


def _decoding_errors() -> tuple[type[Exception], ...]:
    """What decoding a stored deployment raises when its bytes are bad, not its code.

    Missing or unreadable files (OSError), malformed JSON and values
    (``orjson.JSONDecodeError`` and ``UnicodeDecodeError`` are ValueErrors),
    missing keys or too short lists (LookupError), values of the wrong type
    (TypeError), LightGBM's model-string parser (LightGBMError) and the core's
    own errors raised while rebuilding a stored spec (else they would blame the
    caller with a 4xx).  Anything else, an AttributeError or a ZeroDivisionError,
    is a bug in tsengine and must surface as one.  Evaluated only when loading
    fails, so LightGBM is not imported for it.
    """
    from lightgbm.basic import LightGBMError

    return (OSError, ValueError, LookupError, TypeError, LightGBMError, TsEngineError)


def _meta_document(document: Any) -> dict[str, Any]:
    """A parsed ``deployment.json``, which must be an object.

    Raises:
        TypeError: it is not (the callers report a corrupt deployment).
    """
    if not isinstance(document, dict):
        msg = f"{_META} holds a JSON {type(document).__name__}, not an object"
        raise TypeError(msg)
    return document


def _store_error(deployment_id: str, version: str, folder: Path, exc: BaseException) -> DeploymentStoreError:
    """A corrupt-deployment error naming the id and version; the path goes to the server's log only.

    The message reaches HTTP clients, which must not learn the server's
    filesystem layout; an OSError is named by its file and reason alone.
    """
    logger.error(
        "deployment %r version %s in %s cannot be loaded", deployment_id, version, folder, exc_info=exc
    )
    if isinstance(exc, OSError):
        detail = (
            f"{Path(exc.filename).name if exc.filename else 'a file'}: {exc.strerror or type(exc).__name__}"
        )
    elif isinstance(exc, KeyError):
        detail = f"missing entry {exc}"
    else:
        detail = str(exc).replace(str(folder), "<deployment folder>") or type(exc).__name__
    msg = f"deployment {deployment_id!r} (version {version}) is corrupt or incomplete: {detail}"
    return DeploymentStoreError(msg)


def default_registry_path() -> Path:
    """``$TSENGINE_REGISTRY``, else ``~/.tsengine/registry``."""
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".tsengine" / "registry"


def check_id(deployment_id: str) -> str:
    """Ids become folder names and URL segments: keep them plain.

    Raises:
        ParameterError: the id has characters outside ``[A-Za-z0-9._-]``.
    """
    if not _ID.match(deployment_id) or deployment_id in {".", ".."}:
        msg = (
            f"deployment id {deployment_id!r} is invalid: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
        raise ParameterError(msg)
    return deployment_id


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(path: Path, data: bytes) -> None:
    with path.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


class Registry:
    """Deployments stored under one folder."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_registry_path()
        # deployment id -> (identity of its CURRENT file, the version it names); see live_version
        self._versions: dict[str, tuple[tuple[int, int, int], str]] = {}

    def __repr__(self) -> str:
        return f"Registry({str(self.path)!r})"

    def list(self) -> list[str]:
        """Ids of the stored deployments, sorted."""
        if not self.path.is_dir():
            return []
        return sorted(p.name for p in self.path.iterdir() if (p / _CURRENT).is_file())

    def exists(self, deployment_id: str) -> bool:
        """Whether an id is stored."""
        return _ID.match(deployment_id) is not None and (self.path / deployment_id / _CURRENT).is_file()

    def live_version(self, deployment_id: str) -> str | None:
        """The live version's name, or None for an unknown id (a stat; a read when it changed).

        Servers compare it with the version they cached, so a retrained
        deployment is picked up without a restart.
        """
        if _ID.match(deployment_id) is None:
            return None
        # Servers ask on every request: a stat (~2 us) answers unless the file changed;
        # save() swaps CURRENT by os.replace, so a new version is always a new inode.
        current = os.path.join(self.path, deployment_id, _CURRENT)
        try:
            st = os.stat(current)
            identity = (st.st_ino, st.st_mtime_ns, st.st_size)
            cached = self._versions.get(deployment_id)
            if cached is not None and cached[0] == identity:
                return cached[1]
            with open(current, encoding="utf-8") as file:
                version = file.read().strip()
        except OSError:
            return None
        self._versions[deployment_id] = (identity, version)
        return version

    def save(self, deployment: StoredDeployment) -> Path:
        """Store a deployment as a new version and make it live atomically.

        Returns:
            The version folder.
        """
        check_id(deployment.id)
        home = self.path / deployment.id
        home.mkdir(parents=True, exist_ok=True)
        meta, files = deployment.to_files()
        meta = {
            "format_version": DEPLOYMENT_FORMAT_VERSION,
            "id": deployment.id,
            "kind": deployment.kind,
            **meta,
        }
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=home))
        try:
            for name, data in files.items():
                _write(tmp / name, data)
            self._carry_over(deployment.id, meta, tmp)
            _write(
                tmp / _META,
                orjson.dumps(meta, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY),
            )
            _fsync_dir(tmp)
            versions = [int(p.name[1:]) for p in home.glob("v[0-9]*") if p.name[1:].isdigit()]
            final = home / f"v{max(versions, default=0) + 1:04d}"
            tmp.rename(final)
            pointer = home / ".CURRENT.tmp"
            _write(pointer, final.name.encode())
            os.replace(pointer, home / _CURRENT)
            _fsync_dir(home)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def _carry_over(self, deployment_id: str, meta: dict[str, Any], tmp: Path) -> None:
        """Copy the live version's extra files (e.g. the backtest trace) into a new version of the same model.

        A deployment loaded and saved again with new metadata (humility rules)
        does not hold those files; they describe the fitted model, so a version
        with the same ``model_id`` keeps them, and a retrained model does not.
        """
        live = self.live_version(deployment_id)
        if live is None:
            return
        folder = self.path / deployment_id / live
        try:
            old = orjson.loads((folder / _META).read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return
        model_id = (meta.get("metadata") or {}).get("model_id")
        if not model_id or (old.get("metadata") or {}).get("model_id") != model_id:
            return
        for path in folder.iterdir():
            if path.name != _META and path.is_file() and not (tmp / path.name).exists():
                _write(tmp / path.name, path.read_bytes())

    def read_meta(self, deployment_id: str) -> dict[str, Any]:
        """The live version's metadata document, without loading the model (lists, pages).

        Raises:
            NotFoundError: unknown id.
            DeploymentStoreError: an unreadable document (naming the id, not the path).
        """
        if not self.exists(deployment_id):
            msg = f"deployment {deployment_id!r} not found; check the deployment id"
            raise NotFoundError(msg)
        home = self.path / deployment_id
        version = "?"
        try:
            version = (home / _CURRENT).read_text().strip()
            return _meta_document(orjson.loads((home / version / _META).read_bytes()))
        except (OSError, ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
            raise _store_error(deployment_id, version, home / version, exc) from exc

    def read_file(self, deployment_id: str, name: str) -> bytes | None:
        """An optional file of the live version (e.g. ``backtest.parquet``), None when absent."""
        version = self.live_version(deployment_id)
        if version is None or "/" in name or name.startswith("."):
            return None
        try:
            return (self.path / deployment_id / version / name).read_bytes()
        except OSError:
            return None

    def versions(self, deployment_id: str) -> builtins.list[str]:
        """Stored version names of a deployment, oldest first."""
        home = self.path / check_id(deployment_id)
        return sorted(p.name for p in home.glob("v[0-9]*"))

    def load(self, deployment_id: str, *, version: str | None = None) -> Any:
        """Load the live (or a given) version.

        Raises:
            NotFoundError: unknown id.
            DeploymentStoreError: corrupt files or a newer format.
        """
        if not self.exists(deployment_id):
            # The message reaches HTTP clients: name the id, not the server's paths or other ids.
            msg = f"deployment {deployment_id!r} not found; check the deployment id"
            raise NotFoundError(msg)
        home = self.path / deployment_id
        name = version or "?"
        folder = home / name
        try:
            name = version or (home / _CURRENT).read_text().strip()
            folder = home / name
            meta = _meta_document(orjson.loads((folder / _META).read_bytes()))
            fmt = int(meta.get("format_version", 0))
            if fmt > DEPLOYMENT_FORMAT_VERSION:
                msg = (
                    f"deployment {deployment_id!r} was written by a newer tsengine (format {fmt}, "
                    f"this one reads up to {DEPLOYMENT_FORMAT_VERSION}); upgrade tsengine"
                )
                raise DeploymentStoreError(msg)
            kind = meta.get("kind", "timeseries")
            if kind not in _KINDS:
                msg = f"deployment {deployment_id!r} has unknown kind {kind!r}"
                raise DeploymentStoreError(msg)
            from_files = _KINDS[kind]()
            return from_files(meta, lambda file: (folder / file).read_bytes())
        except DeploymentStoreError:
            raise
        # Only what decoding stored bytes raises; any other exception is a bug and propagates.
        except _decoding_errors() as exc:
            raise _store_error(deployment_id, name, folder, exc) from exc

    def delete(self, deployment_id: str) -> None:
        """Remove a deployment and all its versions.

        Raises:
            NotFoundError: unknown id.
        """
        if not self.exists(deployment_id):
            msg = f"deployment {deployment_id!r} not found"
            raise NotFoundError(msg)
        trash = self.path / f".trash-{deployment_id}"
        os.replace(self.path / deployment_id, trash)
        shutil.rmtree(trash, ignore_errors=True)
