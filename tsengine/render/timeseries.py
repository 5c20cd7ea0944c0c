"""Time series prediction rows → DataRobot's JSON and CSV shapes.

Both shapes are built column-wise with polars expressions (struct and list
columns for the nested JSON objects) and written in one call, so rendering
100,000 rows costs no Python loop.  JSON is written by polars itself rather than
orjson: orjson would need a Python dict per row first (``to_dicts``), which cost
7x more than polars' own writer (``benchmarks/json_encoding.py``).

Small answers (up to :data:`SMALL_ROWS` rows: a few series) of plain columns
take another road to the same bytes: every polars query or writer call pays a
planning and thread-pool cost of tens to hundreds of microseconds whatever the
size, more than a one-series forecast's whole rendering.  There the CSV is
written by :func:`_small_csv` and the JSON by orjson from the column values,
each only where its text is polars' text (floats in the range both write the
same way, strings needing no quotes; anything else falls back to polars).

The functions here render time series deployments only; :mod:`tsengine.render`
picks this module or :mod:`tsengine.render.tabular` by the deployment's kind.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Iterable
from typing import Any

import numpy as np
import orjson
import polars as pl

from tsengine.humility import HUMILITY
from tsengine.options import PredictOptions
from tsengine.render.shared import (
    APPROVAL_STATUS,
    Renderable,
    Result,
    csv_pieces,
    explanation_csv,
    explanations_json,
    humility_csv,
    interval_sets,
    json_body,
    passthrough_frame,
)
from tsengine.validate import format_iso

__all__ = [
    "RENDER_CHUNK_ROWS",
    "SMALL_ROWS",
    "csv_parts",
    "csv_table",
    "json_parts",
]

_FP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_TS_FORMAT = "%Y-%m-%dT%H:%M:%S%.6fZ"
SMALL_ROWS = 4_096
"""Answers up to this many rows may be rendered without polars (same bytes)."""
RENDER_CHUNK_ROWS = 4_096
"""Rows per piece of :func:`csv_parts` and :func:`json_parts` (under a megabyte of text).

Each piece's writer buffers are freed before the next is written, so the
allocator reuses them: 16,384-row pieces left ~3 MB more resident after a
1,000-series answer (28,000 rows) than 4,096-row ones, for 1.5 ms less of CSV
writing and 4 ms more of JSON (measured on that answer).

Tabular CSV answers are cut in pieces of this many rows too (:func:`tsengine.render.csv_parts`).
"""
# polars writes a float as Python's repr does inside this range (and 0); outside
# it their exponent forms differ (1e-5: "1e-5" vs "1e-05"), so polars writes those.
_REPR_LOW, _REPR_HIGH = 1e-4, 1e16
# text polars would quote in a CSV field (or a header)
_NEEDS_QUOTES = re.compile(r'[,"\r\n]')


def _attach(
    out: pl.DataFrame, passthrough: pl.DataFrame | None
) -> tuple[pl.DataFrame, list[tuple[str, str]]]:
    """Join passthrough values by input row; generated rows get nulls.

    Passthrough columns travel under private names (an input column may well be
    called ``rowId`` or ``prediction``); the pairs map them back to their names.
    """
    if passthrough is None:
        return out, []
    pairs = [(f"__pt{k}", name) for k, name in enumerate(passthrough.columns)]
    values = passthrough.rename(dict(zip(passthrough.columns, (p for p, _ in pairs), strict=True)))
    values = values.with_row_index("__prow").with_columns(pl.col("__prow").cast(pl.Int64))
    joined = out.join(values, left_on="rowId", right_on="__prow", how="left", maintain_order="left")
    return joined, pairs


def _ts_json_columns(deployment: Renderable, result: Result, pairs: list[tuple[str, str]]) -> list[pl.Expr]:
    label = f"{deployment.spec.target} (actual)"
    # an override humility rule changes ``prediction``; predictionValues keep the model's (DataRobot)
    value = "modelPrediction" if "modelPrediction" in result.frame.columns else "prediction"
    cols = [
        pl.col("seriesId"),
        pl.col("forecastPoint").dt.strftime(_FP_FORMAT),
        pl.col("rowId"),
        pl.col("timestamp").dt.strftime(_TS_FORMAT),
        pl.concat_list(pl.struct(pl.col(value).alias("value"), pl.lit(label).alias("label"))).alias(
            "predictionValues"
        ),
        pl.col("forecastDistance"),
        pl.col("prediction"),
        pl.col("originalFormatTimestamp"),
    ]
    sets = interval_sets(result)
    if sets:
        cols.append(
            pl.struct(
                [
                    pl.struct(pl.col(low).alias("low"), pl.col(high).alias("high")).alias(str(p))
                    for p, low, high in sets
                ]
            ).alias("predictionIntervals")
        )
    if pairs:
        cols.append(pl.struct([pl.col(p).alias(n) for p, n in pairs]).alias("passthroughValues"))
    if "humility" in result.frame.columns:
        cols.append(pl.col("humility"))
    return cols


def json_parts(
    deployment: Renderable, result: Result, frame: pl.DataFrame, options: PredictOptions
) -> list[bytes]:
    """:func:`tsengine.render.to_json` in consecutive pieces of at most :data:`RENDER_CHUNK_ROWS` rows each.

    The server sends the pieces one after the other, so a large answer never
    exists as one more copy of itself (joined, they are :func:`tsengine.render.to_json`'s bytes).
    """
    passthrough = passthrough_frame(frame, options)
    if passthrough is None and _plain(result.frame, options):
        small = _small_json(deployment, result)
        if small is not None:
            return [small]
    out, pairs = _attach(result.frame, passthrough)
    rows = out.select(_ts_json_columns(deployment, result, pairs))
    if options.max_explanations > 0:
        rows = rows.with_columns(out.with_columns(explanations_json(out, options).alias("__expl"))["__expl"])
        return [json_body(rows, explanations="__expl")]
    # polars writes the row objects in Rust: 7x faster than orjson over to_dicts(),
    # which must first build a Python dict per row (benchmarks/json_encoding.py).
    parts: list[bytes] = []
    for start in range(0, rows.height, RENDER_CHUNK_ROWS):
        sink = io.BytesIO()
        rows.slice(start, RENDER_CHUNK_ROWS).write_json(sink)
        with sink.getbuffer() as text:  # "[{...},{...}]": the pieces join into one array
            parts.append((b"," if parts else b'{"data":[') + text[1:-1])
    if not parts:
        return [b'{"data":[]}']
    parts.append(b"]}")
    return parts


def csv_parts(
    deployment: Renderable, result: Result, frame: pl.DataFrame, options: PredictOptions
) -> list[bytes]:
    """:func:`tsengine.render.to_csv` in consecutive pieces of at most :data:`RENDER_CHUNK_ROWS` rows (see :func:`json_parts`)."""
    if _plain(result.frame, options):
        out, pairs = _attach(result.frame, passthrough_frame(frame, options))
        columns = _plain_columns(deployment, result, out, pairs)
        small = _small_csv(columns, out.height)
        if small is not None:
            return [small]
        table = _table(columns, out.height)
    else:
        table = csv_table(deployment, result, frame, options)
    return csv_pieces(table, RENDER_CHUNK_ROWS)


def _plain(out: pl.DataFrame, options: PredictOptions) -> bool:
    """Whether a result renders from its own columns alone: no explanations, no humility report."""
    return options.max_explanations == 0 and HUMILITY not in out.columns


_Column = pl.Series | str
"""A CSV column: its values, or one text on every row."""


def _strftime(values: pl.Series, fmt: str) -> _Column:
    """``dt.strftime`` of a datetime column; numpy writes a small one (see module doc).

    One value on every row (the forecast point of a forecast) is written once.
    """
    if values.len() <= SMALL_ROWS and values.null_count() == 0 and values.len():
        micros = values.to_numpy().view(np.int64)
        if bool((micros == micros[0]).all()):
            text = format_iso(micros[:1], fmt)
            if text is not None:
                return str(text[0])
        text = format_iso(micros, fmt)
        if text is not None:
            return pl.Series(values.name, text.tolist(), dtype=pl.String)
    return values.dt.strftime(fmt)


def _plain_columns(
    deployment: Renderable, result: Result, out: pl.DataFrame, pairs: list[tuple[str, str]]
) -> list[tuple[str, _Column]]:
    """DataRobot's CSV columns of a plain result (see :func:`_plain`), from ready columns.

    The same columns as :func:`csv_table`'s polars query, without planning one.
    """
    spec = deployment.spec
    columns: list[tuple[str, _Column]] = []
    if spec.series_id_column:
        columns.append((spec.series_id_column, out.get_column("seriesId")))
    columns += [
        ("FORECAST_POINT", _strftime(out.get_column("forecastPoint"), _FP_FORMAT)),
        (spec.datetime_column, out.get_column("originalFormatTimestamp")),
        ("FORECAST_DISTANCE", out.get_column("forecastDistance")),
        (f"{spec.target} (actual)_PREDICTION", out.get_column("prediction")),
    ]
    for p, low, high in interval_sets(result):
        columns += [
            (f"PREDICTION_{p}_PERCENTILE_LOW", out.get_column(low)),
            (f"PREDICTION_{p}_PERCENTILE_HIGH", out.get_column(high)),
        ]
    columns.append(("DEPLOYMENT_APPROVAL_STATUS", APPROVAL_STATUS))
    taken = {spec.series_id_column, spec.datetime_column, "FORECAST_POINT", "FORECAST_DISTANCE"}
    columns += [(f"{n}_passthrough" if n in taken else n, out.get_column(p)) for p, n in pairs]
    return columns


def _table(columns: list[tuple[str, _Column]], height: int) -> pl.DataFrame:
    """The frame of :func:`_plain_columns` (a text column repeated on every row)."""
    return pl.DataFrame(
        [
            pl.Series(name, [value], dtype=pl.String).new_from_index(0, height)
            if isinstance(value, str)
            else value.alias(name)
            for name, value in columns
        ]
    )


def _small_json(deployment: Renderable, result: Result) -> bytes | None:
    """:func:`to_json` of a small plain result with orjson (the same bytes as polars writes), or None."""
    out = result.frame
    if out.height > SMALL_ROWS:
        return None
    times = [out.get_column(c) for c in ("forecastPoint", "timestamp")]
    if any(t.null_count() for t in times):
        return None
    fps = format_iso(times[0].to_numpy().view(np.int64), _FP_FORMAT)
    stamps = format_iso(times[1].to_numpy().view(np.int64), _TS_FORMAT)
    if fps is None or stamps is None:
        return None
    label = f"{deployment.spec.target} (actual)"
    sid, row_id, distance, prediction, orig = (
        out.get_column(c).to_list()
        for c in ("seriesId", "rowId", "forecastDistance", "prediction", "originalFormatTimestamp")
    )
    rows: list[dict[str, Any]] = [
        {
            "seriesId": sid[i],
            "forecastPoint": fp,
            "rowId": row_id[i],
            "timestamp": ts,
            "predictionValues": [{"value": prediction[i], "label": label}],
            "forecastDistance": distance[i],
            "prediction": prediction[i],
            "originalFormatTimestamp": orig[i],
        }
        for i, (fp, ts) in enumerate(zip(fps.tolist(), stamps.tolist(), strict=True))
    ]
    sets = interval_sets(result)
    if len(sets) == 1:  # the usual case, without a per-row comprehension
        key = str(sets[0][0])
        low, high = out.get_column(sets[0][1]).to_list(), out.get_column(sets[0][2]).to_list()
        for row, lo, hi in zip(rows, low, high, strict=True):
            row["predictionIntervals"] = {key: {"low": lo, "high": hi}}
    elif sets:
        bounds = [(str(p), out.get_column(lo).to_list(), out.get_column(hi).to_list()) for p, lo, hi in sets]
        for i, row in enumerate(rows):
            row["predictionIntervals"] = {key: {"low": low[i], "high": high[i]} for key, low, high in bounds}
    return b'{"data":' + orjson.dumps(rows) + b"}"


def _plain_text(text: str) -> bool:
    """Whether polars writes this text into a CSV field as it is (no quotes)."""
    return bool(text) and _NEEDS_QUOTES.search(text) is None


def _csv_field(values: _Column, height: int) -> Iterable[str] | None:
    """One column's CSV fields as polars writes them, or None when only polars should write them."""
    if isinstance(values, str):
        return itertools.repeat(values, height) if _plain_text(values) else None
    if values.null_count():
        return None
    dtype = values.dtype
    if dtype == pl.String:
        text: list[str] = values.to_list()
        if "" in text or _NEEDS_QUOTES.search("".join(text)) is not None:
            return None
        return text
    if dtype.is_integer():
        return list(map(str, values.to_list()))
    if dtype == pl.Float64:
        array = values.to_numpy()
        size = np.abs(array)
        if not bool((((size >= _REPR_LOW) & (size < _REPR_HIGH)) | (array == 0)).all()):
            return None  # NaN, infinities and exponent forms: polars' text
        return list(map(repr, array.tolist()))
    return None


def _small_csv(columns: list[tuple[str, _Column]], height: int) -> bytes | None:
    """A small plain table as polars' ``write_csv`` writes it, or None.

    Fields are Python's text of the values wherever that is polars' text too
    (see :data:`_REPR_LOW`; strings without quotes); any other column sends
    the whole table to polars.
    """
    if height > SMALL_ROWS or not all(_plain_text(name) for name, _ in columns):
        return None
    fields = []
    for _, values in columns:
        text = _csv_field(values, height)
        if text is None:
            return None
        fields.append(text)
    lines = [
        ",".join(name for name, _ in columns),
        *map(",".join, zip(*fields, strict=False)),
        "",
    ]  # repeats are endless
    return "\n".join(lines).encode()


def csv_table(
    deployment: Renderable, result: Result, frame: pl.DataFrame, options: PredictOptions
) -> pl.DataFrame:
    """DataRobot's CSV columns as a frame: time series columns, then passthrough columns.

    Batch jobs take the frame (to rename, drop or append columns, or to write
    Parquet and database rows); the prediction routes take :func:`to_csv`.
    """
    spec = deployment.spec
    passthrough = passthrough_frame(frame, options)
    out, pairs = _attach(result.frame, passthrough)
    taken = {spec.series_id_column, spec.datetime_column, "FORECAST_POINT", "FORECAST_DISTANCE"}
    if _plain(out, options):
        return _table(_plain_columns(deployment, result, out, pairs), out.height)
    cols: list[pl.Expr] = []
    if spec.series_id_column:
        cols.append(pl.col("seriesId").alias(spec.series_id_column))
    cols += [
        pl.col("forecastPoint").dt.strftime(_FP_FORMAT).alias("FORECAST_POINT"),
        pl.col("originalFormatTimestamp").alias(spec.datetime_column),
        pl.col("forecastDistance").alias("FORECAST_DISTANCE"),
        pl.col("prediction").alias(f"{spec.target} (actual)_PREDICTION"),
    ]
    for p, low, high in interval_sets(result):
        cols += [
            pl.col(low).alias(f"PREDICTION_{p}_PERCENTILE_LOW"),
            pl.col(high).alias(f"PREDICTION_{p}_PERCENTILE_HIGH"),
        ]
    if options.max_explanations > 0:
        cols += explanation_csv(out, options)
    cols += humility_csv(deployment, out)
    cols.append(pl.lit(APPROVAL_STATUS).alias("DEPLOYMENT_APPROVAL_STATUS"))
    cols += [pl.col(p).alias(f"{n}_passthrough" if n in taken else n) for p, n in pairs]
    return out.select(cols)
