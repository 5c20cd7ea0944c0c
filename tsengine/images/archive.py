"""DataRobot's image training format: a ZIP of images, with or without a CSV.

Two layouts, as DataRobot's Visual AI reads them:

* **a CSV inside the ZIP** (one, at any depth): its rows are the examples, and
  every column whose values are the paths of image files in the archive
  (relative to the CSV's folder or to the root) becomes an image column;
* **no CSV**: one folder per class (``cat/01.jpg``, ``dog/7.png``): the rows
  are the images, with columns ``image`` and ``class`` (the folder); images at
  the root have no class (a prediction set).

Either way each image's bytes are put into the row as base64 text, which is
exactly what a CSV posted to the prediction API carries, so a ZIP and a CSV
with the same images train (and predict) the same.  Sizes are checked from the
archive's directory before anything is read: a ZIP bomb is refused, not
inflated.
"""

from __future__ import annotations

import base64
import posixpath
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import polars as pl

from tsengine.codec import Source, decode
from tsengine.errors import BadRequestError, ValidationError, short_list

__all__ = ["IMAGE_SUFFIXES", "MAX_ARCHIVE_BYTES", "MAX_IMAGE_BYTES", "read_image_archive"]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"})
MAX_ARCHIVE_BYTES = 4 * 2**30
"""Uncompressed bytes a ZIP may hold in all (its rows are held in memory as base64)."""
MAX_IMAGE_BYTES = 20 * 2**20
"""Uncompressed bytes of one image (the prediction API's per-image limit)."""


def _is_image(path: str) -> bool:
    return PurePosixPath(path).suffix.lower() in IMAGE_SUFFIXES


def _members(archive: zipfile.ZipFile, name: str) -> dict[str, zipfile.ZipInfo]:
    """The archive's files (no folders, hidden files or macOS resource forks), sizes checked."""
    files = {
        info.filename: info
        for info in archive.infolist()
        if not info.is_dir()
        and not PurePosixPath(info.filename).name.startswith(".")
        and not info.filename.startswith("__MACOSX/")
    }
    total = sum(info.file_size for info in files.values())
    if total > MAX_ARCHIVE_BYTES:
        msg = f"ZIP {name!r} unpacks to {total:,} bytes, over the {MAX_ARCHIVE_BYTES:,}-byte limit"
        raise BadRequestError(msg)
    big = [i.filename for i in files.values() if _is_image(i.filename) and i.file_size > MAX_IMAGE_BYTES]
    if big:
        msg = f"ZIP {name!r}: image(s) {short_list(big)} exceed the {MAX_IMAGE_BYTES:,}-byte limit per image"
        raise BadRequestError(msg)
    return files


def _encoded(archive: zipfile.ZipFile, member: str) -> str:
    return base64.b64encode(archive.read(member)).decode("ascii")


def read_image_archive(
    path: str | Path, *, schema_overrides: Mapping[str, pl.DataType] | None = None
) -> pl.DataFrame:
    """The rows of an image ZIP, images as base64 text (see the module docstring).

    Raises:
        BadRequestError: not a ZIP, several CSVs, no images, over the size limits.
        ValidationError: a CSV row naming an image the archive does not hold.
    """
    path = Path(path)
    name = path.name
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        msg = f"cannot read {name!r} as a ZIP archive: {exc}"
        raise BadRequestError(msg) from exc
    with archive:
        files = _members(archive, name)
        tables = sorted(f for f in files if PurePosixPath(f).suffix.lower() == ".csv")
        if len(tables) > 1:
            msg = f"ZIP {name!r} holds {len(tables)} CSV files ({short_list(tables)}); keep one"
            raise BadRequestError(msg)
        try:
            if tables:
                return _with_table(archive, files, tables[0], name, schema_overrides or {})
            return _by_folder(archive, files, name)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            msg = f"ZIP {name!r} is damaged: {exc}"
            raise BadRequestError(msg) from exc


def _by_folder(archive: zipfile.ZipFile, files: Mapping[str, zipfile.ZipInfo], name: str) -> pl.DataFrame:
    images = sorted(f for f in files if _is_image(f))
    if not images:
        msg = f"ZIP {name!r} holds neither a CSV nor image files ({', '.join(sorted(IMAGE_SUFFIXES))})"
        raise BadRequestError(msg)
    classes = [PurePosixPath(f).parent.name or None for f in images]
    frame = pl.DataFrame(
        {"image": [_encoded(archive, f) for f in images], "class": classes},
        schema={"image": pl.String, "class": pl.String},
    )
    return frame if any(classes) else frame.drop("class")


def _with_table(
    archive: zipfile.ZipFile,
    files: Mapping[str, zipfile.ZipInfo],
    table: str,
    name: str,
    overrides: Mapping[str, pl.DataType],
) -> pl.DataFrame:
    folder = posixpath.dirname(table)
    frame = decode(archive.read(table), "csv", schema_overrides=dict(overrides), source=Source.file(table))
    images = {f for f in files if _is_image(f)}

    def resolve(value: str) -> str | None:
        relative = value.strip().replace("\\", "/")
        for candidate in (posixpath.join(folder, relative), relative):
            if (normal := posixpath.normpath(candidate)) in images:
                return normal
        return None

    out: list[pl.Series] = []
    for column in frame.columns:
        col = frame.get_column(column)
        if col.dtype != pl.String:
            continue
        values: list[str | None] = col.to_list()
        given = [i for i, v in enumerate(values) if v and v.strip()]
        if not given or not all(_is_image(str(values[i]).strip()) for i in given):
            continue  # not every value names an image file: an ordinary text column
        paths = [resolve(v) if v and v.strip() else None for v in values]
        missing = [i for i in given if paths[i] is None]
        if missing:
            shown = [values[i] for i in missing[:5]]
            msg = (
                f"ZIP {name!r}: column {column!r} rows {short_list(missing)} name images the archive "
                f"does not hold: {short_list(shown)}"
            )
            raise ValidationError(msg)
        out.append(pl.Series(column, [_encoded(archive, p) if p else None for p in paths], dtype=pl.String))
    if not out:
        msg = f"ZIP {name!r}: no column of {table!r} names image files of the archive"
        raise BadRequestError(msg)
    return frame.with_columns(out)
