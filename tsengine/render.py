"""Prediction rows → DataRobot's JSON and CSV shapes, one renderer for CLI and HTTP.

Both shapes are built column-wise with polars expressions (struct and list
columns for the nested JSON objects) and written in one call, so rendering
100,000 rows costs no Python loop.  JSON is written by polars itself rather than
orjson: orjson would need a Python dict per row first (``to_dicts``), which cost
7x more than polars' own writer (``benchmarks/json_encoding.py``).
"""

from __future__ import annotations

from typing import Any, Protocol

import polars as pl

from tsengine.errors import BadRequestError, short_list
from tsengine.options import PredictOptions

__all__ = ["APPROVAL_STATUS", "csv_table", "passthrough_frame", "to_csv", "to_json"]

APPROVAL_STATUS = "APPROVED"
_FP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_TS_FORMAT = "%Y-%m-%dT%H:%M:%S%.6fZ"


class _Renderable(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def spec(self) -> Any: ...


class _Result(Protocol):
    @property
    def frame(self) -> pl.DataFrame: ...

    @property
    def interval_percentile(self) -> int | None: ...


def passthrough_frame(frame: pl.DataFrame, options: PredictOptions) -> pl.DataFrame | None:
    """Input columns to copy into the output, one row per input row.

    Raises:
        BadRequestError: a requested column is not in the input (DataRobot: 400).
    """
    if options.passthrough_all:
        return frame
    if not options.passthrough_columns:
        return None
    missing = [c for c in options.passthrough_columns if c not in frame.columns]
    if missing:
        msg = (
            f"passthroughColumns {short_list(missing)} not found in the prediction dataset; "
            f"its columns are {short_list(frame.columns, limit=10)}"
        )
        raise BadRequestError(msg)
    return frame.select(list(dict.fromkeys(options.passthrough_columns)))


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


def _ts_json_columns(deployment: _Renderable, result: _Result, pairs: list[tuple[str, str]]) -> list[pl.Expr]:
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
    if result.interval_percentile is not None:
        cols.append(
            pl.struct(
                pl.struct(
                    pl.col("predictionIntervalLow").alias("low"),
                    pl.col("predictionIntervalHigh").alias("high"),
                ).alias(str(result.interval_percentile))
            ).alias("predictionIntervals")
        )
    if pairs:
        cols.append(pl.struct([pl.col(p).alias(n) for p, n in pairs]).alias("passthroughValues"))
    if "humility" in result.frame.columns:
        cols.append(pl.col("humility"))
    return cols


def to_json(deployment: _Renderable, result: _Result, frame: pl.DataFrame, options: PredictOptions) -> bytes:
    """``{"data": [row, ...]}`` as bytes."""
    from tsengine.tabular import render as shared

    if deployment.kind == "tabular":
        return shared.to_json(deployment, result, frame, options)  # type: ignore[arg-type]
    passthrough = passthrough_frame(frame, options)
    out, pairs = _attach(result.frame, passthrough)
    rows = out.select(_ts_json_columns(deployment, result, pairs))
    if options.max_explanations > 0:
        rows = rows.with_columns(
            out.with_columns(shared.explanations_json(out, options).alias("__expl"))["__expl"]
        )
        return shared.json_body(rows, explanations="__expl")
    # polars writes the row objects in Rust: 7x faster than orjson over to_dicts(),
    # which must first build a Python dict per row (benchmarks/json_encoding.py).
    return b'{"data":' + rows.write_json().encode() + b"}"


def to_csv(deployment: _Renderable, result: _Result, frame: pl.DataFrame, options: PredictOptions) -> bytes:
    """DataRobot's CSV shape as bytes (see :func:`csv_table`)."""
    return csv_table(deployment, result, frame, options).write_csv().encode()


def csv_table(
    deployment: _Renderable, result: _Result, frame: pl.DataFrame, options: PredictOptions
) -> pl.DataFrame:
    """DataRobot's CSV columns as a frame: time series columns, then passthrough columns.

    Batch jobs take the frame (to rename, drop or append columns, or to write
    Parquet and database rows); the prediction routes take :func:`to_csv`.
    """
    from tsengine.tabular import render as shared

    if deployment.kind == "tabular":
        return shared.csv_table(deployment, result, frame, options)  # type: ignore[arg-type]
    spec = deployment.spec
    passthrough = passthrough_frame(frame, options)
    out, pairs = _attach(result.frame, passthrough)
    cols: list[pl.Expr] = []
    if spec.series_id_column:
        cols.append(pl.col("seriesId").alias(spec.series_id_column))
    cols += [
        pl.col("forecastPoint").dt.strftime(_FP_FORMAT).alias("FORECAST_POINT"),
        pl.col("originalFormatTimestamp").alias(spec.datetime_column),
        pl.col("forecastDistance").alias("FORECAST_DISTANCE"),
        pl.col("prediction").alias(f"{spec.target} (actual)_PREDICTION"),
    ]
    if result.interval_percentile is not None:
        p = result.interval_percentile
        cols += [
            pl.col("predictionIntervalLow").alias(f"PREDICTION_{p}_PERCENTILE_LOW"),
            pl.col("predictionIntervalHigh").alias(f"PREDICTION_{p}_PERCENTILE_HIGH"),
        ]
    if options.max_explanations > 0:
        cols += shared.explanation_csv(out, options)
    cols += shared.humility_csv(deployment, out)
    cols.append(pl.lit(APPROVAL_STATUS).alias("DEPLOYMENT_APPROVAL_STATUS"))
    taken = {spec.series_id_column, spec.datetime_column, "FORECAST_POINT", "FORECAST_DISTANCE"}
    cols += [pl.col(p).alias(f"{n}_passthrough" if n in taken else n) for p, n in pairs]
    return out.select(cols)
