"""Nowcasting: forecast windows ``[0, c]`` that predict the forecast point's own row.

A nowcasting deployment predicts the row at the forecast point (FP) itself,
whose target is not known yet (an indicator published late, today's demand).
Its models may read the target strictly before FP, known-in-advance (KIA)
values at the predicted row, and other features up to the row before FP.

That is exactly an ordinary forecast made one step earlier: the prediction of
row ``FP + d`` as of FP is the prediction at distance ``d + 1`` from the
*origin* ``FP - 1``.  So a nowcasting deployment keeps its user-facing spec
(FW ``[0, c]``), and every model is fitted, backtested and asked for
predictions in *model coordinates* (:func:`model_spec`: FW ``[1, c + 1]``,
origins one step before the forecast points).  No model, feature or backtest
code needs a special case, and none can read the target of the row it
predicts: each reads only rows at or before its origin (see
:mod:`tsengine.models.base`), which is FP - 1.  This module holds the only
translations between the two coordinates: the spec, backtest rows, and the
request's forecast point and rows.

The whole request shares one rule: a nowcasting deployment never reads the
target at FP, at any distance of its window (a target posted on the FP row is
ignored), so the predictions at distances 1..c are those of a forecast from
FP - 1 too.  Rows to predict are never generated (DataRobot autoexpands only
when the project "does not use Nowcasting"): the client posts them, with
their KIA values, and a series lacking one is refused (:func:`require_rows`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import polars as pl

from tsengine.columns import FP, IDX, SID, D, Y
from tsengine.errors import InsufficientHistoryError, MissingForecastRowsError, short_list
from tsengine.spec import TimeSeriesSpec
from tsengine.window import Window, forecast_point_index, forecast_window

__all__ = [
    "forecast_shift",
    "is_nowcast",
    "model_forecast_point",
    "model_spec",
    "model_window",
    "next_forecast_point",
    "nowcast_window",
    "require_rows",
    "to_user_rows",
]


def is_nowcast(spec: TimeSeriesSpec) -> bool:
    """Whether the deployment's forecast window starts at distance 0."""
    return spec.forecast_window[0] == 0


def forecast_shift(spec: TimeSeriesSpec) -> int:
    """Steps between a request's forecast point and its models' origin (1 when nowcasting, else 0)."""
    return 1 if is_nowcast(spec) else 0


def model_window(forecast_window: tuple[int, int]) -> tuple[int, int]:
    """The forecast window models work with: ``[b + 1, c + 1]`` for a nowcast, else unchanged."""
    b, c = forecast_window
    return (b + 1, c + 1) if b == 0 else (b, c)


def model_spec(spec: TimeSeriesSpec) -> TimeSeriesSpec:
    """The spec models are fitted, backtested and asked with (the same spec unless nowcasting)."""
    if not is_nowcast(spec):
        return spec
    return dataclasses.replace(spec, forecast_window=model_window(spec.forecast_window))


def to_user_rows(rows: pl.DataFrame, spec: TimeSeriesSpec) -> pl.DataFrame:
    """Backtest rows from model coordinates to the deployment's (``__fp + 1``, ``__d - 1``) when nowcasting.

    Leaderboards, per-distance intervals and the backtest chart then speak of
    distance 0 and of forecast points that are the predicted rows' own time.
    The ``scale`` column stays as computed at the model origin, which is also
    where prediction computes it.
    """
    shift = forecast_shift(spec)
    if not shift or FP not in rows.columns:
        return rows
    return rows.with_columns(pl.col(FP) + shift, pl.col(D) - shift)


def model_forecast_point(
    canon: pl.DataFrame, spec: TimeSeriesSpec, forecast_point: dt.datetime | None
) -> tuple[int, dt.datetime]:
    """The request's forecast point (grid index) and its models' origin (timestamp, one step before).

    A missing ``forecast_point`` is inferred as the step after the latest
    timestamp with a non-empty target (across all series): the first row
    whose target is not known yet, since the FP row's own target is what a
    nowcast predicts.

    Raises:
        OffGridError: a given forecast point is off the grid.
        InsufficientHistoryError: no row has a target to infer the forecast point from.
    """
    idx = canon.get_column(IDX).to_numpy()
    fp = forecast_point_index(spec, idx, canon.get_column(Y).is_not_null().to_numpy(), forecast_point)
    if forecast_point is None:
        fp += 1  # the first row whose target is not known yet
    step = spec.time_step
    return fp, step.timestamp_of(fp - 1)


def next_forecast_point(spec: TimeSeriesSpec, latest_with_target: dt.datetime | None) -> dt.datetime | None:
    """A batch job's inferred forecast point: the step after its latest target when nowcasting.

    Batch jobs find the latest timestamp with a target over the whole input
    before splitting it into chunks; each chunk is then an ordinary request
    with that forecast point given, so the nowcasting rule of
    :func:`model_forecast_point` is applied here.  An off-grid value is left
    as it is, for the chunks to report.
    """
    if latest_with_target is None or not is_nowcast(spec):
        return latest_with_target
    idx = spec.time_step.index_of(latest_with_target)
    return latest_with_target if idx is None else spec.time_step.timestamp_of(idx + 1)


def require_rows(canon: pl.DataFrame, spec: TimeSeriesSpec, fp: int, codes: np.ndarray | None = None) -> None:
    """Refuse a nowcast whose series lack a posted row at ``FP + d`` for some distance d.

    Nowcasting predicts rows the client knows exist (the FP row carries its
    present KIA values), so they are never autoexpanded; a forgotten row would
    otherwise be predicted from imputed inputs.

    Raises:
        MissingForecastRowsError: naming the series (first few) and their missing timestamps.
    """
    b, c = spec.forecast_window
    idx = canon.get_column(IDX).to_numpy()
    sids = canon.get_column(SID)
    if codes is None:
        codes = sids.rank("dense").to_numpy().astype(np.int64) - 1
    n_codes = int(codes.max()) + 1 if codes.size else 0
    width = c - b + 1
    inside = (idx >= fp + b) & (idx <= fp + c)
    counts = np.bincount(codes[inside], minlength=n_codes)
    if (counts >= width).all():
        return
    first = np.full(n_codes, canon.height, dtype=np.int64)
    np.minimum.at(first, codes, np.arange(canon.height, dtype=np.int64))
    order = np.argsort(first, kind="stable")
    lacking = [int(k) for k in order if counts[k] < width]
    step = spec.time_step
    described = []
    for k in lacking[:3]:
        have = set(idx[inside & (codes == k)].tolist())
        missing = [step.timestamp_of(i).isoformat() for i in range(fp + b, fp + c + 1) if i not in have]
        sid = sids[int(first[k])]
        label = f"series {sid!r}" if spec.series_id_column else "the series"
        described.append(f"{label} at {short_list(missing, limit=3)}")
    more = f" ({len(lacking)} series in all)" if len(lacking) > 3 else ""
    msg = (
        f"this nowcasting deployment predicts posted rows only (forecast window {list(spec.forecast_window)}, "
        f"forecast point {step.timestamp_of(fp).isoformat()}), and rows are missing: "
        f"{'; '.join(described)}{more}. Post a row (with its known-in-advance values and an empty target) "
        "for every series at every forecast distance, or pass another forecastPoint"
    )
    raise MissingForecastRowsError(msg)


def nowcast_window(
    canon: pl.DataFrame,
    spec: TimeSeriesSpec,
    *,
    forecast_point: dt.datetime | None,
    relax_known_in_advance: bool,
    datetime_format: str,
    utc_offset: str | None,
    codes: np.ndarray | None = None,
) -> Window:
    """Forecast mode of a nowcasting deployment, in model coordinates.

    The forecast point is resolved (given or inferred, see
    :func:`model_forecast_point`), the posted rows ``FP + b .. FP + c`` are
    required (:func:`require_rows`), and the ordinary
    :func:`~tsengine.window.forecast_window` is asked for the model origin
    ``FP - 1`` with :func:`model_spec`: its history stops before the FP row
    (whose posted target is thereby ignored), its history check counts the
    window before FP, and its KIA check covers the rows to predict.  The
    query's ``__fp``/``__d`` are the model's; the deployment shifts them back
    in its output (:func:`forecast_shift`).

    Raises:
        OffGridError, InsufficientHistoryError, MissingForecastRowsError, KnownInAdvanceError.
    """
    fp, origin = model_forecast_point(canon, spec, forecast_point)
    require_rows(canon, spec, fp, codes)
    try:
        return forecast_window(
            canon,
            model_spec(spec),
            forecast_point=origin,
            relax_known_in_advance=relax_known_in_advance,
            datetime_format=datetime_format,
            utc_offset=utc_offset,
            codes=codes,
        )
    except InsufficientHistoryError as exc:  # name the request's forecast point, not the model origin
        said = f"before forecast point {origin.isoformat()}"
        meant = f"strictly before forecast point {spec.time_step.timestamp_of(fp).isoformat()} (nowcasting)"
        raise InsufficientHistoryError(exc.message.replace(said, meant)) from exc
