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

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import orjson

from tsengine.deployment import Deployment
from tsengine.errors import DeploymentStoreError, NotFoundError, ParameterError, short_list
from tsengine.intervals import IntervalTable
from tsengine.models import model_class
from tsengine.spec import TimeSeriesSpec

__all__ = ["DEPLOYMENT_FORMAT_VERSION", "ENV_VAR", "Registry", "default_registry_path"]

DEPLOYMENT_FORMAT_VERSION = 1
ENV_VAR = "TSENGINE_REGISTRY"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_META, _MODEL, _CURRENT = "deployment.json", "model.bin", "CURRENT"


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

    def save(self, deployment: Deployment) -> Path:
        """Store a deployment as a new version and make it live atomically.

        Returns:
            The version folder.
        """
        check_id(deployment.id)
        home = self.path / deployment.id
        home.mkdir(parents=True, exist_ok=True)
        meta = {
            "format_version": DEPLOYMENT_FORMAT_VERSION,
            "id": deployment.id,
            "kind": deployment.kind,
            "model_kind": deployment.model.kind,
            "spec": deployment.spec.to_dict(),
            "intervals": deployment.intervals.to_dict() if deployment.intervals else None,
            "metadata": dict(deployment.metadata),
        }
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=home))
        try:
            _write(tmp / _MODEL, deployment.model.to_bytes())
            _write(tmp / _META, orjson.dumps(meta, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
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

    def versions(self, deployment_id: str) -> list[str]:
        """Stored version names of a deployment, oldest first."""
        home = self.path / check_id(deployment_id)
        return sorted(p.name for p in home.glob("v[0-9]*"))

    def load(self, deployment_id: str, *, version: str | None = None) -> Deployment:
        """Load the live (or a given) version.

        Raises:
            NotFoundError: unknown id.
            DeploymentStoreError: corrupt files or a newer format.
        """
        if not self.exists(deployment_id):
            known = self.list()
            hint = f"; known deployments: {short_list(known)}" if known else "; the registry is empty"
            msg = f"deployment {deployment_id!r} not found in {str(self.path)!r}{hint}"
            raise NotFoundError(msg)
        home = self.path / deployment_id
        folder = home / (version or (home / _CURRENT).read_text().strip())
        try:
            meta: dict[str, Any] = orjson.loads((folder / _META).read_bytes())
            fmt = int(meta.get("format_version", 0))
            if fmt > DEPLOYMENT_FORMAT_VERSION:
                msg = (
                    f"deployment {deployment_id!r} was written by a newer tsengine (format {fmt}, "
                    f"this one reads up to {DEPLOYMENT_FORMAT_VERSION}); upgrade tsengine"
                )
                raise DeploymentStoreError(msg)
            model = model_class(meta["model_kind"]).from_bytes((folder / _MODEL).read_bytes())
            spec = TimeSeriesSpec.from_dict(meta["spec"])
            intervals = IntervalTable.from_dict(meta["intervals"]) if meta.get("intervals") else None
        except DeploymentStoreError:
            raise
        except (OSError, ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
            msg = f"deployment {deployment_id!r} in {str(folder)!r} is corrupt or incomplete: {exc}"
            raise DeploymentStoreError(msg) from exc
        return Deployment(
            id=meta["id"], spec=spec, model=model, intervals=intervals, metadata=meta.get("metadata", {})
        )

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
