"""Actuals from a table (CSV, Parquet, a catalog dataset) rather than a JSON body.

The CLI's ``tsengine monitor actuals`` and the ``actuals/fromDataset/`` route
share these: columns name the association id (or, for time series, the series
and timestamp that make it), the actual value, and optionally the timestamp and
``wasActedOn``; records go to :meth:`Monitor.submit_actuals` in batches of
10,000 and the reports are summed, with row numbers counted in the table.
"""

from __future__ import annotations

import re
from typing import Any

import polars as pl

from tsengine.errors import ParameterError
from tsengine.monitoring.service import MAX_ACTUALS_PER_REQUEST, Monitor

__all__ = ["actual_records", "submit_records"]

_MAX_INVALID_SHOWN = 20


def _require(frame: pl.DataFrame, column: str, option: str, source: str) -> None:
    if column not in frame.columns:
        msg = f"{source}: no column {column!r} ({option}); columns are {', '.join(frame.columns)}"
        raise ParameterError(msg)


def _text(values: pl.Series) -> list[str | None]:
    """Any column as text: dates and datetimes in ISO form, numbers as written."""
    if values.dtype == pl.Datetime:
        values = values.dt.strftime("%Y-%m-%dT%H:%M:%S")
    return [None if v is None else str(v) for v in values.to_list()]


def actual_records(
    deployment: Any,
    frame: pl.DataFrame,
    source: str,
    *,
    association_column: str | None,
    actual_column: str,
    timestamp_column: str | None,
    acted_column: str | None,
    series_column: str | None,
) -> list[dict[str, Any]]:
    """The ``actuals/fromJSON/`` records of a table.

    Raises:
        ParameterError: a named column is missing, or the options do not fit the deployment.
    """
    timeseries = deployment.kind == "timeseries"
    build = timeseries and (
        series_column is not None
        or (
            association_column is None
            and timestamp_column is not None
            and "association_id" not in frame.columns
        )
    )
    if series_column is not None and not timeseries:
        msg = "--series-column applies to time series deployments only; use --association-id-column"
        raise ParameterError(msg)
    _require(frame, actual_column, "--actual-value-column", source)
    if timestamp_column is not None:
        _require(frame, timestamp_column, "--timestamp-column", source)
    if acted_column is not None:
        _require(frame, acted_column, "--was-acted-on-column", source)
    if build:
        if timestamp_column is None:
            msg = "--series-column needs --timestamp-column: time series association ids are <series>|<timestamp>"
            raise ParameterError(msg)
        stamps = _text(frame.get_column(timestamp_column))
        if series_column is not None:
            _require(frame, series_column, "--series-column", source)
            series = _text(frame.get_column(series_column))
        else:
            series = [None] * frame.height
        ids: list[str | None] = [
            None if t is None else (t if s is None else f"{s}|{t}")
            for s, t in zip(series, stamps, strict=True)
        ]
    else:
        column = association_column or "association_id"
        _require(frame, column, "--association-id-column", source)
        ids = _text(frame.get_column(column))
    values = frame.get_column(actual_column).to_list()
    records: list[dict[str, Any]] = [
        {"associationId": a, "actualValue": v} for a, v in zip(ids, values, strict=True)
    ]
    if timestamp_column is not None:
        for record, stamp in zip(records, _text(frame.get_column(timestamp_column)), strict=True):
            if stamp is not None:
                record["timestamp"] = stamp
    if acted_column is not None:
        for record, acted in zip(records, frame.get_column(acted_column).to_list(), strict=True):
            if acted is not None:
                record["wasActedOn"] = acted
    return records


_DATA_INDEX = re.compile(r"^data\[(\d+)\]")


def submit_records(monitor: Monitor, deployment: Any, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Send the records in batches of 10,000 and sum the reports; row numbers count from 1 in the file."""
    total: dict[str, Any] = {
        "received": 0,
        "inserted": 0,
        "duplicates": 0,
        "invalid": 0,
        "invalidRows": [],
        "unknownAssociationIds": 0,
    }
    for offset in range(0, len(records), MAX_ACTUALS_PER_REQUEST):
        batch = records[offset : offset + MAX_ACTUALS_PER_REQUEST]
        report = monitor.submit_actuals(deployment, batch)
        for key in ("received", "inserted", "duplicates", "invalid", "unknownAssociationIds"):
            total[key] += int(report[key])
        room = _MAX_INVALID_SHOWN - len(total["invalidRows"])
        for message in report["invalidRows"][: max(room, 0)]:
            found = _DATA_INDEX.match(message)
            if found:
                message = f"row {offset + int(found[1]) + 1}: {message[found.end() :].lstrip('.')}"
            total["invalidRows"].append(message)
    return total
