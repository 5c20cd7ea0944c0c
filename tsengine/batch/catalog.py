"""The dataset catalog: registered files that batch jobs read by id (DataRobot's AI Catalog).

``tsengine datasets add FILE`` copies the file into the catalog under its
SHA-256 (content-addressed, so a version never changes once written) and
records a dataset with that version.  Adding again with the same dataset id
records a new version.  A job created with ``intakeSettings.datasetId`` is
pinned to a version at creation, so replacing the file later never changes
what a queued job scores.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

from tsengine.batch.store import BatchStore, new_id, utc_now
from tsengine.errors import NotFoundError, ParameterError

__all__ = ["add_dataset", "latest_version", "public_dataset", "snapshot_path"]

_BLOCK = 1 << 20


def _format_of(path: Path) -> Literal["csv", "parquet"]:
    return "parquet" if path.suffix.lower() in {".parquet", ".pq"} else "csv"


def add_dataset(
    store: BatchStore,
    folder: Path,
    file: Path,
    *,
    name: str | None = None,
    dataset_id: str | None = None,
) -> dict[str, Any]:
    """Snapshot a file into the catalog as a new dataset, or a new version of one.

    Args:
        store: the batch store holding the catalog records.
        folder: where snapshots are kept (``<registry>/.batch/datasets``).
        file: a CSV or Parquet file.
        name: display name (default: the file name).
        dataset_id: add a version to this dataset instead of creating one.

    Returns:
        The dataset's public record.

    Raises:
        ParameterError: the file is missing.
        NotFoundError: ``dataset_id`` is unknown.
    """
    file = file.expanduser()
    if not file.is_file():
        msg = f"no such file: {str(file)!r}"
        raise ParameterError(msg)
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, file.open("rb") as src:
            while block := src.read(_BLOCK):
                digest.update(block)
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        fmt = _format_of(file)
        final = folder / f"{digest.hexdigest()}.{fmt}"
        if final.exists():
            tmp.unlink()
        else:
            os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    version = {
        "versionId": new_id(),
        "sha256": digest.hexdigest(),
        "path": str(final),
        "format": fmt,
        "size": final.stat().st_size,
        "created": utc_now(),
        "fileName": file.name,
    }
    if dataset_id is not None:
        doc = store.dataset(dataset_id)
        doc["versions"].append(version)
    else:
        doc = {"id": new_id(), "name": name or file.name, "created": utc_now(), "versions": [version]}
    store.put_dataset(doc)
    return public_dataset(doc)


def public_dataset(doc: dict[str, Any]) -> dict[str, Any]:
    """The record shown by the CLI and ``GET /api/v2/datasets/``: no server paths."""
    latest = doc["versions"][-1]
    return {
        "datasetId": doc["id"],
        "name": doc["name"],
        "versionId": latest["versionId"],
        "sha256": latest["sha256"],
        "datasetSize": latest["size"],
        "format": latest["format"],
        "creationDate": doc["created"],
        "versions": [
            {k: v[k] for k in ("versionId", "sha256", "size", "created", "fileName")} for v in doc["versions"]
        ],
    }


def latest_version(store: BatchStore, dataset_id: str) -> str:
    """The newest version id of a dataset (pinned into a job at creation)."""
    return str(store.dataset(dataset_id)["versions"][-1]["versionId"])


def snapshot_path(
    store: BatchStore, dataset_id: str, version_id: str | None
) -> tuple[Path, Literal["csv", "parquet"]]:
    """The immutable file of a dataset version (the latest when no version is given).

    Raises:
        NotFoundError: unknown dataset or version, or a snapshot file gone missing.
    """
    doc = store.dataset(dataset_id)
    versions = doc["versions"]
    chosen = (
        versions[-1]
        if version_id is None
        else next((v for v in versions if v["versionId"] == version_id), None)
    )
    if chosen is None:
        msg = f"dataset {dataset_id!r} has no version {version_id!r}"
        raise NotFoundError(msg)
    path = Path(chosen["path"])
    if not path.is_file():
        msg = f"dataset {dataset_id!r} version {chosen['versionId']!r}: its snapshot file is missing"
        raise NotFoundError(msg)
    return path, "parquet" if chosen["format"] == "parquet" else "csv"


def remove_snapshots(folder: Path) -> None:
    """Delete every snapshot (tests and ``datasets purge``)."""
    shutil.rmtree(folder, ignore_errors=True)
