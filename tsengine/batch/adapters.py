"""Intake and output adapters: where a job's rows come from and where its predictions go.

Every intake materialises its rows as one local file (:class:`Source`) that the
chunk planner scans twice with polars: time series must see a whole series at
once, and a series' rows may sit anywhere in the input, so nothing is scored
before the intake is complete.  Every output is a :class:`Sink` that receives
the scored chunks *in input order* and either commits them all or leaves nothing
under its final name (a temporary file renamed on success, an S3 multipart
upload completed on success, one database transaction per chunk).

Adapters register themselves by DataRobot's ``type`` name in :data:`INTAKES` and
:data:`OUTPUTS`; the S3 and SQL ones live in their own modules and are imported
lazily, so boto3 and database drivers load only when a job uses them.
"""

from __future__ import annotations

import importlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, Protocol

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from tsengine.batch.catalog import snapshot_path
from tsengine.batch.spec import AdapterSettings, CsvSettings
from tsengine.batch.store import BatchStore
from tsengine.errors import ParameterError

__all__ = [
    "AdapterContext",
    "FileSink",
    "Sink",
    "Source",
    "intake_source",
    "open_sink",
]


@dataclass(frozen=True, slots=True)
class Source:
    """A job's rows as one local file.

    Attributes:
        path: the file.
        format: ``csv`` (in the job's dialect) or ``parquet``.
        csv: delimiter, quote and encoding of a CSV source.
        owned: whether the file belongs to the job (deleted with it) or is a
            user's file or a catalog snapshot (never deleted).
    """

    path: Path
    format: Literal["csv", "parquet"] = "csv"
    csv: CsvSettings = CsvSettings()
    owned: bool = True


@dataclass(frozen=True, slots=True)
class AdapterContext:
    """What adapters may use: the job's folder and the store (credentials, data stores, datasets)."""

    job_id: str
    folder: Path
    store: BatchStore

    def secret(self, credential_id: str | None) -> dict[str, Any] | None:
        """A credential's secret by id, or None when no id is given."""
        return None if credential_id is None else self.store.secret(credential_id)


class Sink(Protocol):
    """Receives scored chunks in order; all or nothing lands under the final name."""

    def write(self, frame: pl.DataFrame) -> None:
        """Append one chunk's output rows (same columns every time)."""
        ...

    def commit(self) -> None:
        """Make the output final (rename, complete the upload)."""
        ...

    def abort(self) -> None:
        """Discard what was written; idempotent, never raises."""
        ...

    @property
    def bytes_written(self) -> int:
        """Bytes of output so far (``jobOutputSize``)."""
        ...


# ---------------------------------------------------------------------- intake


IntakeOpener = Callable[[AdapterSettings, CsvSettings, AdapterContext], Source]
SinkOpener = Callable[[AdapterSettings, CsvSettings, AdapterContext], Sink]

UPLOAD_NAME = "upload.csv"


def _local_file_intake(_settings: AdapterSettings, csv: CsvSettings, ctx: AdapterContext) -> Source:
    """The body the client PUT to ``csvUpload/`` (assembled from parts when multipart)."""
    return Source(ctx.folder / UPLOAD_NAME, "csv", csv)


def _path_format(path: Path, settings: AdapterSettings) -> Literal["csv", "parquet"]:
    """Parquet by extension or ``format``, else CSV."""
    return "parquet" if path.suffix.lower() in {".parquet", ".pq"} or settings.format == "parquet" else "csv"


def _filesystem_intake(settings: AdapterSettings, csv: CsvSettings, _ctx: AdapterContext) -> Source:
    path = Path(str(settings.get("path"))).expanduser()
    if not path.is_file():
        msg = f"intakeSettings.path: no such file {str(path)!r}"
        raise ParameterError(msg)
    return Source(path, _path_format(path, settings), csv, owned=False)


def _dataset_intake(settings: AdapterSettings, csv: CsvSettings, ctx: AdapterContext) -> Source:
    path, fmt = snapshot_path(ctx.store, str(settings.get("datasetId")), settings.get("datasetVersionId"))
    return Source(path, fmt, csv if fmt == "csv" else CsvSettings(), owned=False)


def _lazy(module: str, name: str) -> Callable[..., Any]:
    def opener(*args: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args)

    return opener


INTAKES: dict[str, IntakeOpener] = {
    "localFile": _local_file_intake,
    "filesystem": _filesystem_intake,
    "dataset": _dataset_intake,
    "s3": _lazy("tsengine.batch.s3", "s3_intake"),
    "jdbc": _lazy("tsengine.batch.sql", "sql_intake"),
}


def intake_source(settings: AdapterSettings, csv: CsvSettings, ctx: AdapterContext) -> Source:
    """Materialise a job's intake as a local :class:`Source`."""
    return INTAKES[settings.type](settings, csv, ctx)


# ---------------------------------------------------------------------- output


def csv_bytes(frame: pl.DataFrame, csv: CsvSettings, *, header: bool) -> bytes:
    """One chunk as CSV in the job's dialect (UTF-8 unless another encoding was asked)."""
    text = frame.write_csv(include_header=header, separator=csv.delimiter, quote_char=csv.quotechar)
    return text.encode(csv.encoding, errors="replace") if not csv.is_default else text.encode()


class FileSink:
    """CSV or Parquet written to ``<final>.part`` and renamed to ``final`` on commit.

    A reader may follow the ``.part`` file while the job runs (the download
    route does); after a failure nothing exists under the final name.
    """

    def __init__(self, final: Path, *, fmt: Literal["csv", "parquet"], csv: CsvSettings) -> None:
        """Create ``<final>.part``, replacing any leftover."""
        self.final = final
        self.part = final.with_name(final.name + ".part")
        self.fmt = fmt
        self.csv = csv
        self.part.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[bytes] | None = self.part.open("wb")
        self._parquet: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None
        self._header = True
        self._bytes = 0

    @property
    def bytes_written(self) -> int:
        """Bytes in the output so far."""
        return self._bytes

    def write(self, frame: pl.DataFrame) -> None:
        """Append a chunk and flush it, so a follower sees it at once."""
        assert self._fh is not None
        if self.fmt == "parquet":
            table = frame.to_arrow()
            if self._parquet is None:
                self._schema = table.schema
                self._parquet = pq.ParquetWriter(self._fh, self._schema)
            assert self._schema is not None
            self._parquet.write_table(table.cast(self._schema))
            self._bytes = self._fh.tell()
            return
        data = csv_bytes(frame, self.csv, header=self._header)
        self._header = False
        self._fh.write(data)
        self._fh.flush()
        self._bytes += len(data)

    def commit(self) -> None:
        """Close, fsync and rename into place."""
        assert self._fh is not None
        if self._parquet is not None:
            self._parquet.close()
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        self._fh = None
        os.replace(self.part, self.final)

    def abort(self) -> None:
        """Close and delete the partial file."""
        if self._fh is not None:
            try:
                if self._parquet is not None:
                    self._parquet.close()
            except Exception:  # noqa: BLE001 - best effort on a failed job
                pass
            self._fh.close()
            self._fh = None
        self.part.unlink(missing_ok=True)


RESULT_NAME = "result.csv"


def _local_file_sink(_settings: AdapterSettings, csv: CsvSettings, ctx: AdapterContext) -> Sink:
    return FileSink(ctx.folder / RESULT_NAME, fmt="csv", csv=csv)


def _filesystem_sink(settings: AdapterSettings, csv: CsvSettings, _ctx: AdapterContext) -> Sink:
    path = Path(str(settings.get("path"))).expanduser()
    if not path.parent.is_dir():
        msg = f"outputSettings.path: folder {str(path.parent)!r} does not exist"
        raise ParameterError(msg)
    return FileSink(path, fmt=_path_format(path, settings), csv=csv)


OUTPUTS: dict[str, SinkOpener] = {
    "localFile": _local_file_sink,
    "filesystem": _filesystem_sink,
    "s3": _lazy("tsengine.batch.s3", "s3_sink"),
    "jdbc": _lazy("tsengine.batch.sql", "sql_sink"),
}


def open_sink(settings: AdapterSettings, csv: CsvSettings, ctx: AdapterContext) -> Sink:
    """Open a job's output."""
    return OUTPUTS[settings.type](settings, csv, ctx)


def remove_folder(folder: Path) -> None:
    """Delete a job's working folder (intake spool, chunks, result)."""
    shutil.rmtree(folder, ignore_errors=True)
