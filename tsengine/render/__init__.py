"""Prediction rows → DataRobot's JSON and CSV shapes, one renderer for CLI and HTTP.

The functions here take any deployment and pick the renderer of its kind:
:mod:`tsengine.render.timeseries` (forecasts) or :mod:`tsengine.render.tabular`
(regression and classification rows).  Both build on
:mod:`tsengine.render.shared` (approval status, passthrough columns,
explanations, humility reports, JSON and CSV pieces), which imports neither:
dependencies run one way, shared ← timeseries, tabular ← this package.

The size thresholds :data:`~tsengine.render.timeseries.SMALL_ROWS` and
:data:`~tsengine.render.timeseries.RENDER_CHUNK_ROWS` live in
:mod:`tsengine.render.timeseries`, where they are read.
"""

from __future__ import annotations

import polars as pl

from tsengine.options import PredictOptions
from tsengine.render import tabular, timeseries
from tsengine.render.shared import (
    APPROVAL_STATUS,
    Renderable,
    Result,
    csv_pieces,
    joined,
    passthrough_frame,
)

__all__ = [
    "APPROVAL_STATUS",
    "csv_parts",
    "csv_table",
    "json_parts",
    "passthrough_frame",
    "to_csv",
    "to_json",
]


def to_json(deployment: Renderable, result: Result, frame: pl.DataFrame, options: PredictOptions) -> bytes:
    """``{"data": [row, ...]}`` as bytes."""
    return joined(json_parts(deployment, result, frame, options))


def json_parts(
    deployment: Renderable, result: Result, frame: pl.DataFrame, options: PredictOptions
) -> list[bytes]:
    """:func:`to_json` in consecutive pieces of at most ``RENDER_CHUNK_ROWS`` rows each.

    The server sends the pieces one after the other, so a large answer never
    exists as one more copy of itself (joined, they are :func:`to_json`'s bytes).
    A tabular answer is one piece.
    """
    if deployment.kind == "tabular":
        return [tabular.to_json(deployment, result, frame, options)]  # type: ignore[arg-type]
    return timeseries.json_parts(deployment, result, frame, options)


def to_csv(deployment: Renderable, result: Result, frame: pl.DataFrame, options: PredictOptions) -> bytes:
    """DataRobot's CSV shape as bytes (see :func:`csv_table`)."""
    return joined(csv_parts(deployment, result, frame, options))


def csv_parts(
    deployment: Renderable, result: Result, frame: pl.DataFrame, options: PredictOptions
) -> list[bytes]:
    """:func:`to_csv` in consecutive pieces of at most ``RENDER_CHUNK_ROWS`` rows (see :func:`json_parts`)."""
    if deployment.kind == "tabular":
        table = tabular.csv_table(deployment, result, frame, options)  # type: ignore[arg-type]
        return csv_pieces(table, timeseries.RENDER_CHUNK_ROWS)
    return timeseries.csv_parts(deployment, result, frame, options)


def csv_table(
    deployment: Renderable, result: Result, frame: pl.DataFrame, options: PredictOptions
) -> pl.DataFrame:
    """DataRobot's CSV columns as a frame, of a time series or a tabular deployment.

    Batch jobs take the frame (to rename, drop or append columns, or to write
    Parquet and database rows); the prediction routes take :func:`to_csv`.
    """
    if deployment.kind == "tabular":
        return tabular.csv_table(deployment, result, frame, options)  # type: ignore[arg-type]
    return timeseries.csv_table(deployment, result, frame, options)
