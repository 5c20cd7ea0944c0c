"""The feature schema of a tabular deployment: kinds, type checks, dates, categories.

Learnt once from the training data and stored with the model, the schema is
what makes prediction strict where it must be and lenient where it can be:

* a missing feature column, a number column holding text, an unparseable date
  are the caller's mistakes (422, naming column and rows);
* an unseen category is not: it is encoded as missing, which LightGBM routes
  like a rare category, and a low-observation-region humility rule can flag it;
* a date column becomes calendar parts (year, month, …) the model can split on,
  keeping only the parts that vary in the training data;
* an image column (base64 text or a data URI per row, named at training) becomes
  the embedding of a pretrained image featurizer (:mod:`tsengine.tabular.images`),
  one model input per dimension, explained as one feature named by the column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from tsengine.datetimes import parse_datetimes
from tsengine.errors import DatetimeParseError, MissingColumnError, ValidationError, short_list
from tsengine.explain import display

__all__ = ["CATEGORICAL", "DATE", "DATE_PARTS", "IMAGE", "NUMERIC", "ColumnSchema", "FeatureSchema"]

NUMERIC, CATEGORICAL, DATE, IMAGE = "numeric", "categorical", "date", "image"
DATE_PARTS = ("year", "month", "day", "weekday", "yearday", "hour", "minute")
# dateutil reads almost anything ("May", "3rd") as a date: only the table of
# explicit formats may turn a text column into a date column.
_FALLBACK = "%Y-%m-%dT%H:%M:%S%.f"
_DATE_SAMPLE = 200
# [ours] a text column whose every value differs (names, ids) cannot generalise.
_MIN_ROWS_FOR_ID_CHECK = 20


@dataclass(frozen=True, slots=True)
class ColumnSchema:
    """One input column and how it becomes model inputs.

    Attributes:
        name: the column name.
        kind: numeric, categorical, date or image.
        categories: categorical: the training values, most frequent first (their
            position is the code the model sees).
        date_format: date: the training format, tried first at prediction.
        date_parts: date: the calendar parts the model uses.
        low: numeric: the training minimum (default outlying-input range).
        high: numeric: the training maximum.
        featurizer: image: the featurizer that embeds it (see :mod:`tsengine.images`).
        dim: image: the embedding's length (its number of model inputs).
    """

    name: str
    kind: str
    categories: tuple[str, ...] = ()
    date_format: str | None = None
    date_parts: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    featurizer: str | None = None
    dim: int = 0

    @property
    def feature_names(self) -> list[str]:
        """The model inputs this column gives, readably named."""
        if self.kind == DATE:
            return [f"{self.name} ({part})" for part in self.date_parts]
        if self.kind == IMAGE:
            return [f"{self.name} (image {i})" for i in range(self.dim)]
        return [self.name]

    @property
    def explained_names(self) -> list[str]:
        """The features explanations name: an image is one feature, whatever its dimensions."""
        return [self.name] if self.kind == IMAGE else self.feature_names

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "name": self.name,
            "kind": self.kind,
            "categories": list(self.categories),
            "date_format": self.date_format,
            "date_parts": list(self.date_parts),
            "low": self.low,
            "high": self.high,
            **({"featurizer": self.featurizer, "dim": self.dim} if self.kind == IMAGE else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnSchema:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=data["name"],
            kind=data["kind"],
            categories=tuple(data.get("categories") or ()),
            date_format=data.get("date_format"),
            date_parts=tuple(data.get("date_parts") or ()),
            low=data.get("low"),
            high=data.get("high"),
            featurizer=data.get("featurizer"),
            dim=int(data.get("dim") or 0),
        )


def _is_numeric_text(col: pl.Series) -> bool:
    text = col.cast(pl.String).str.strip_chars()
    text = text.set(text == "", None)
    return bool(text.cast(pl.Float64, strict=False).null_count() == text.null_count())


def _date_format(col: pl.Series) -> str | None:
    """The explicit format every value of a text column fits, if any."""
    values = col.cast(pl.String).str.strip_chars()
    values = values.filter(values.is_not_null() & (values != ""))
    if values.len() == 0:
        return None
    try:
        _, fmt = parse_datetimes(values.head(_DATE_SAMPLE), column=col.name)
        if fmt == _FALLBACK:
            return None
        parse_datetimes(values, column=col.name, preferred_format=fmt)
    except ValidationError:
        return None
    return fmt


def _parts(ts: pl.Expr) -> dict[str, pl.Expr]:
    return {
        "year": ts.dt.year(),
        "month": ts.dt.month(),
        "day": ts.dt.day(),
        "weekday": ts.dt.weekday(),
        "yearday": ts.dt.ordinal_day(),
        "hour": ts.dt.hour(),
        "minute": ts.dt.minute(),
    }


def _column_schema(frame: pl.DataFrame, name: str, *, force_date: bool) -> ColumnSchema | None:
    col = frame.get_column(name)
    dtype = col.dtype
    if col.null_count() == col.len():
        return None
    fmt: str | None = None
    if dtype == pl.Date or isinstance(dtype, pl.Datetime):
        fmt = "%Y-%m-%d"
    elif dtype == pl.String and (force_date or not _is_numeric_text(col)):
        fmt = _date_format(col)
        if fmt is None and force_date:
            msg = f"datetime column {name!r} does not parse as dates; its values look like {short_list(col.drop_nulls().head(3).to_list())}"
            raise DatetimeParseError(msg)
    if fmt is not None:
        ts = _parse_dates(col, fmt, name)
        parts = _parts(pl.col("t"))
        varying = ts.to_frame("t").select(
            *(parts[p].n_unique().alias(p) for p in DATE_PARTS)
        )  # nulls count as a value
        keep = tuple(p for p in DATE_PARTS if varying.get_column(p).item() > 1) or ("year",)
        return ColumnSchema(name, DATE, date_format=fmt, date_parts=keep)
    if dtype.is_numeric() or dtype == pl.Boolean or (dtype == pl.String and _is_numeric_text(col)):
        bounds = (
            _numbers(col).to_frame("v").select(pl.col("v").min().alias("lo"), pl.col("v").max().alias("hi"))
        )
        low, high = bounds.row(0)
        return ColumnSchema(name, NUMERIC, low=low, high=high)
    text = _texts(col)
    counts = text.drop_nulls().value_counts(sort=True)
    if counts.height == 0:
        return None
    if counts.height == text.drop_nulls().len() and counts.height >= _MIN_ROWS_FOR_ID_CHECK:
        return None
    ordered = counts.sort(["count", text.name], descending=[True, False]).get_column(text.name)
    return ColumnSchema(name, CATEGORICAL, categories=tuple(ordered.to_list()))


def _numbers(col: pl.Series) -> pl.Series:
    if col.dtype == pl.String:
        text = col.str.strip_chars()
        return text.set(text == "", None).cast(pl.Float64, strict=False)
    return col.cast(pl.Float64, strict=False)


def _texts(col: pl.Series) -> pl.Series:
    """Categories as text; integral floats (JSON ``1.0``) as ``1``."""
    if col.dtype.is_float():
        return col.to_frame().select(display(pl.col(col.name))).to_series()
    return col.cast(pl.String, strict=False)


def _npy_numbers(text: pl.Series, arrays: pl.Series, numbers: pl.Series, problems: list[str]) -> pl.Series:
    """Numbers sent as Peltarion's one-element ``.npy`` data URIs, unwrapped in place."""
    from tsengine.images import ImageError
    from tsengine.tabular.images import npy_number

    rows = np.flatnonzero(arrays.to_numpy())
    values: list[float | None] = []
    for row, value in zip(rows.tolist(), text.gather(rows).to_list(), strict=True):
        try:
            values.append(npy_number(value))
        except ImageError as exc:
            problems.append(f"column {text.name!r} row {row}: {exc}")
            values.append(None)
    return numbers.scatter(rows, pl.Series(values, dtype=pl.Float64))


def _parse_dates(col: pl.Series, fmt: str, name: str) -> pl.Series:
    """Naive datetimes; empty values stay null, anything else must parse."""
    if col.dtype == pl.Date or isinstance(col.dtype, pl.Datetime):
        return _as_datetime(col)
    text = col.cast(pl.String).str.strip_chars()
    text = text.set(text == "", None)
    present = text.is_not_null()
    if not bool(present.any()):
        return pl.Series(name, [None] * col.len(), dtype=pl.Datetime("us"))
    try:
        parsed, _ = parse_datetimes(text.filter(present), column=name, preferred_format=fmt)
    except ValidationError as exc:
        bad = present & text.str.to_datetime(fmt, strict=False, exact=True).is_null()
        rows = np.flatnonzero(bad.to_numpy()).tolist()
        values = text.filter(bad).head(5).to_list()
        msg = (
            f"column {name!r} must hold dates like the training data ({fmt}); "
            f"rows {short_list(rows)} hold {short_list(values)}"
        )
        raise DatetimeParseError(msg) from exc
    out = pl.Series(name, [None] * col.len(), dtype=pl.Datetime("us"))
    return out.scatter(np.flatnonzero(present.to_numpy()), parsed)


def _as_datetime(col: pl.Series) -> pl.Series:
    if isinstance(col.dtype, pl.Datetime) and col.dtype.time_zone is not None:
        col = col.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    return col.cast(pl.Datetime("us"))


@dataclass(frozen=True, slots=True)
class FeatureSchema:
    """The columns a tabular model reads, in model order."""

    columns: tuple[ColumnSchema, ...]
    ignored: tuple[str, ...] = ()

    @classmethod
    def infer(
        cls,
        frame: pl.DataFrame,
        *,
        exclude: Sequence[str],
        date_columns: Sequence[str] = (),
        image_columns: Sequence[str] = (),
        featurizer: tuple[str, int] = ("", 0),
    ) -> FeatureSchema:
        """Kinds from the training data: numbers, dates (explicit formats), else categories.

        Image columns are named by the caller (``featurizer`` is the name and
        embedding length of the featurizer that reads them): base64 text looks
        like any other all-distinct text column, which is ignored.  Text
        columns whose every value differs (ids, names) and all-empty columns
        are ignored: a model cannot learn from them.
        """
        columns: list[ColumnSchema] = []
        ignored: list[str] = []
        for name in frame.columns:
            if name in exclude:
                continue
            if name in image_columns:
                columns.append(ColumnSchema(name, IMAGE, featurizer=featurizer[0], dim=featurizer[1]))
                continue
            schema = _column_schema(frame, name, force_date=name in date_columns)
            if schema is None:
                ignored.append(name)
            else:
                columns.append(schema)
        return cls(tuple(columns), tuple(ignored))

    @property
    def names(self) -> list[str]:
        """Model input names, in model order."""
        return [n for c in self.columns for n in c.feature_names]

    @property
    def explained_names(self) -> list[str]:
        """The features explanations name, in model order (an image column once)."""
        return [n for c in self.columns for n in c.explained_names]

    @property
    def image_columns(self) -> list[str]:
        """The columns read as images."""
        return [c.name for c in self.columns if c.kind == IMAGE]

    def explained_index(self) -> np.ndarray:
        """Per model input, the position of the explained feature it adds to."""
        sizes = [
            len(c.feature_names) if c.kind == IMAGE else 1 for c in self.columns for _ in c.explained_names
        ]
        return np.repeat(np.arange(len(sizes)), sizes)

    @property
    def categorical_names(self) -> list[str]:
        """Model inputs LightGBM treats as categories."""
        return [c.name for c in self.columns if c.kind == CATEGORICAL]

    def column(self, name: str) -> ColumnSchema | None:
        """The schema of one input column, if the model reads it."""
        return next((c for c in self.columns if c.name == name), None)

    def overrides(self) -> dict[str, pl.DataType]:
        """CSV dtypes: categories, dates and images stay text (``007`` is not 7)."""
        return {c.name: pl.String() for c in self.columns if c.kind in {CATEGORICAL, DATE, IMAGE}}

    def check(self, frame: pl.DataFrame) -> pl.DataFrame:
        """The model's columns, typed: Float64 numbers, String categories, Datetime dates.

        Raises:
            MissingColumnError: feature columns absent, naming them all.
            ValidationError: values of the wrong type, naming column and rows.
        """
        missing = [c.name for c in self.columns if c.name not in frame.columns]
        if missing:
            msg = (
                f"the prediction data is missing feature column(s) {short_list(missing, limit=10)}; "
                f"send every column the deployment was trained on (empty values are allowed)"
            )
            raise MissingColumnError(msg)
        out: list[pl.Series] = []
        problems: list[str] = []
        for c in self.columns:
            col = frame.get_column(c.name)
            if c.kind == NUMERIC:
                out.append(self._numeric(col, problems))
            elif c.kind == CATEGORICAL:
                out.append(_texts(col).alias(c.name))
            elif c.kind == IMAGE:
                from tsengine.tabular.images import image_features  # the image stack loads on first use

                out.append(image_features(col, featurizer=c.featurizer or "", dim=c.dim))
            else:
                if col.dtype.is_numeric():
                    problems.append(f"column {c.name!r} must hold dates, got numbers ({col.dtype})")
                    continue
                out.append(_parse_dates(col, c.date_format or "%Y-%m-%d", c.name))
        if problems:
            msg = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
            raise ValidationError(msg)
        return pl.DataFrame(out)

    @staticmethod
    def _numeric(col: pl.Series, problems: list[str]) -> pl.Series:
        if col.dtype.is_numeric() or col.dtype in {pl.Boolean, pl.Null}:
            return col.cast(pl.Float64)
        if col.dtype != pl.String:
            problems.append(f"column {col.name!r} must hold numbers, got {col.dtype}")
            return col
        text = col.str.strip_chars()
        text = text.set(text == "", None)
        numbers = text.cast(pl.Float64, strict=False)
        arrays = text.str.starts_with("data:application/x.peltarion.npy")
        if bool(arrays.any()):
            numbers = _npy_numbers(text, arrays, numbers, problems)
            text = text.set(arrays, None)
        bad = text.is_not_null() & numbers.is_null()
        if bool(bad.any()):
            rows = np.flatnonzero(bad.to_numpy()).tolist()
            values = text.filter(bad).head(5).to_list()
            problems.append(
                f"column {col.name!r} must hold numbers; rows {short_list(rows)} hold {short_list(values)}"
            )
        return numbers

    def _feature_exprs(self) -> list[pl.Expr]:
        """One expression per model input of the non-image columns, in model order."""
        exprs: list[pl.Expr] = []
        for c in self.columns:
            if c.kind == NUMERIC:
                exprs.append(pl.col(c.name))
            elif c.kind == CATEGORICAL:
                exprs.append(
                    pl.col(c.name).replace_strict(
                        list(c.categories),
                        list(range(len(c.categories))),
                        default=None,
                        return_dtype=pl.Float64,
                    )
                )
            elif c.kind == DATE:
                parts = _parts(pl.col(c.name))
                exprs += [parts[p].cast(pl.Float64) for p in c.date_parts]
        return [e.alias(f"__x{i}") for i, e in enumerate(exprs)]

    def matrix(self, checked: pl.DataFrame) -> np.ndarray:
        """The float matrix LightGBM reads (NaN for missing and unseen).

        Image embeddings (fixed-length arrays) go in as blocks of columns at
        their column's place, never as thousands of one-column expressions.
        """
        plain = checked.select(self._feature_exprs()).to_numpy().astype(np.float64, copy=False)
        images = self.image_columns
        if not images:
            return np.ascontiguousarray(plain)
        x = np.empty((checked.height, len(self.names)), dtype=np.float64)
        at = taken = 0
        for c in self.columns:
            width = len(c.feature_names)
            if c.kind == IMAGE:
                x[:, at : at + width] = checked.get_column(c.name).to_numpy()
            else:
                x[:, at : at + width] = plain[:, taken : taken + width]
                taken += width
            at += width
        return x

    def display_values(self, checked: pl.DataFrame) -> np.ndarray:
        """Per row and explained feature, the value as text (explanations' ``featureValue``).

        An image shows as ``image`` (or nothing when the row had none): its
        pixels are the caller's, and repeating kilobytes of base64 helps no one.
        """
        exprs: list[pl.Expr] = []
        plain = iter(self._feature_exprs())
        for c in self.columns:
            if c.kind == IMAGE:
                present = pl.col(c.name).arr.first().is_not_nan()
                exprs.append(pl.when(present).then(pl.lit("image")).otherwise(None))
                continue
            for _ in c.feature_names:
                e = next(plain)
                exprs.append(pl.col(c.name) if c.kind == CATEGORICAL else display(e))
        frame = checked.select(*(e.alias(f"__v{i}") for i, e in enumerate(exprs)))
        return frame.to_numpy().astype(object)

    def input_columns(self) -> list[ColumnSchema]:
        """The input column behind each model input (a date column once per part)."""
        return [c for c in self.columns for _ in c.feature_names]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"columns": [c.to_dict() for c in self.columns], "ignored": list(self.ignored)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSchema:
        """Inverse of :meth:`to_dict`."""
        return cls(
            tuple(ColumnSchema.from_dict(c) for c in data["columns"]),
            tuple(data.get("ignored") or ()),
        )
