"""Prediction rows → DataRobot's JSON and CSV shapes, one renderer for CLI and HTTP.

Both shapes are built column-wise with polars expressions (struct and list
columns for the nested JSON objects) and written in one call, so rendering
100,000 rows costs no Python loop.  JSON goes through orjson (numpy-backed
columns, no per-value Python dispatch); see ``benchmarks/`` for the numbers.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson
import polars as pl

from tsengine.errors import BadRequestError, short_list
from tsengine.options import PredictOptions

__all__ = ["APPROVAL_STATUS", "passthrough_frame", "to_csv", "to_json"]

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


def _attach(out: pl.DataFrame, passthrough: pl.DataFrame | None) -> pl.DataFrame:
    """Join passthrough values by input row; generated rows get nulls."""
    if passthrough is None:
        return out
    values = passthrough.with_row_index("rowId").with_columns(pl.col("rowId").cast(pl.Int64))
    return out.join(values, on="rowId", how="left", maintain_order="left", suffix="_passthrough")


def _ts_json_columns(deployment: _Renderable, result: _Result, names: list[str]) -> list[pl.Expr]:
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
    if names:
        cols.append(pl.struct(names).alias("passthroughValues"))
    if "humility" in result.frame.columns:
        cols.append(pl.col("humility"))
    return cols


def to_json(deployment: _Renderable, result: _Result, frame: pl.DataFrame, options: PredictOptions) -> bytes:
    """``{"data": [row, ...]}`` as bytes."""
    from tsengine.tabular import render as shared

    if deployment.kind == "tabular":
        return shared.to_json(deployment, result, frame, options)  # type: ignore[arg-type]
    passthrough = passthrough_frame(frame, options)
    out = _attach(result.frame, passthrough)
    names = [c for c in out.columns if c not in result.frame.columns]
    rows = out.select(_ts_json_columns(deployment, result, names))
    if options.max_explanations > 0:
        rows = rows.with_columns(
            out.with_columns(shared.explanations_json(out, options).alias("__expl"))["__expl"]
        )
        return shared.json_body(rows, explanations="__expl")
    return b'{"data":' + orjson.dumps(rows.to_dicts(), option=orjson.OPT_SERIALIZE_NUMPY) + b"}"


def to_csv(deployment: _Renderable, result: _Result, frame: pl.DataFrame, options: PredictOptions) -> bytes:
    """DataRobot's time series CSV columns, then passthrough columns."""
    from tsengine.tabular import render as shared

    if deployment.kind == "tabular":
        return shared.to_csv(deployment, result, frame, options)  # type: ignore[arg-type]
    spec = deployment.spec
    passthrough = passthrough_frame(frame, options)
    out = _attach(result.frame, passthrough)
    names = [c for c in out.columns if c not in result.frame.columns]
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
    cols += [pl.col(n).alias(f"{n}_passthrough" if n in taken else n) for n in names]
    return out.select(cols).write_csv().encode()
