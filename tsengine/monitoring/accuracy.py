"""Accuracy of a deployment's logged predictions against the actuals posted later.

The monitoring store joins each logged prediction to its actual by association
id; this module turns that joined table into numbers and nothing else: no I/O,
no web types, so every metric can be checked against a slow obvious oracle.

One aggregation serves every view: :func:`metrics` is a single group, while
:func:`over_time`, :func:`by_distance` and :func:`by_series` group by a time
bucket, a forecast distance or a series, so the overall number and its
breakdowns can never disagree about what a metric means.

The joined table (one row per prediction/actual pair) has ``created`` (POSIX
seconds of the prediction), ``timestamp`` (the predicted timestamp for time
series, the actual's timestamp or null for tabular; naive UTC), ``series_id``,
``distance``, ``prediction`` (binary: the positive class probability), ``low``
and ``high`` (interval, may be null; ``low_<p>`` and ``high_<p>`` for each
further percentile the deployment serves), ``actual`` (binary: 1.0 positive, 0.0
negative) and, for multiclass, ``label`` and ``actual_label``.  Rows that
cannot be scored (no finite prediction or actual; multiclass: a missing label)
are left out, and ``sampleSize`` counts the rows that were scored.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal, TypeAlias

import polars as pl

from tsengine.errors import MissingColumnError, ParameterError, short_list

__all__ = [
    "BINARY_METRICS",
    "MULTICLASS_METRICS",
    "REGRESSION_METRICS",
    "Kind",
    "binary_metrics",
    "by_distance",
    "by_series",
    "choose_bucket",
    "coverage_metric",
    "further_percentiles",
    "metric_names",
    "metrics",
    "multiclass_metrics",
    "over_time",
    "regression_metrics",
]

Kind: TypeAlias = Literal["regression", "binary", "multiclass"]

REGRESSION_METRICS = ("RMSE", "MAE", "MAPE", "MASE", "Coverage")
BINARY_METRICS = ("LogLoss", "AUC", "Accuracy")
MULTICLASS_METRICS = ("Accuracy",)

DEFAULT_THRESHOLD = 0.5
# scikit-learn's historical ``log_loss`` clipping: a confident wrong answer costs
# about 34.5 nats instead of infinity, so one row cannot make LogLoss unbounded.
LOGLOSS_EPS = 1e-15
# [ours] More buckets than this is a bucket size mistaken for another unit (PT1S
# over a year); refusing it keeps a chart request from building a huge frame.
MAX_BUCKETS = 10_000

_METRICS: dict[str, tuple[str, ...]] = {
    "regression": REGRESSION_METRICS,
    "binary": BINARY_METRICS,
    "multiclass": MULTICLASS_METRICS,
}
# Optional columns and their types: absent ones are added as nulls.
_OPTIONAL: dict[str, pl.DataType] = {
    "timestamp": pl.Datetime("us"),
    "series_id": pl.String(),
    "distance": pl.Int64(),
    "low": pl.Float64(),
    "high": pl.Float64(),
    "label": pl.String(),
    "actual_label": pl.String(),
}
# A further served percentile's lower bound in the joined table (MonitoringStore.joined).
_FURTHER_LOW = re.compile(r"low_(\d+)")
_SCALE = "__scale"
_KEY = "__key"
_MAE = "__mae"
_EPOCH = dt.datetime(1970, 1, 1)
_US = dt.timedelta(microseconds=1)


def regression_metrics(joined: pl.DataFrame) -> dict[str, float | None]:
    """RMSE, MAE, MAPE, MASE and Coverage of regression or time series predictions.

    MAPE is a percentage over the rows whose actual is not zero (None when all
    are).  MASE is MASE against a naive forecast of the posted actuals: the MAE
    divided by the mean, over series, of each series' mean absolute change
    between consecutive distinct timestamps of its actuals.  The training
    backtest's MASE scales by the training data instead, which a deployment no
    longer has at hand; the two are comparable in spirit, not digit for digit.
    MASE is None when no series has two distinct timestamps or the scale is 0.
    Coverage is the share (0 to 1) of rows with both bounds whose actual lies in
    ``[low, high]``, the deployment's own interval; None when no row has an
    interval.  A deployment serving further percentiles has their bounds as
    ``low_<p>``/``high_<p>`` columns, scored the same way as ``Coverage<p>``.

    Returns:
        Each name of :data:`REGRESSION_METRICS`, None where undefined (and for
        every metric on an empty table).
    """
    return metrics(joined, kind="regression")


def binary_metrics(joined: pl.DataFrame, *, threshold: float = DEFAULT_THRESHOLD) -> dict[str, float | None]:
    """LogLoss, AUC and Accuracy of positive-class probabilities.

    LogLoss clips probabilities to ``[1e-15, 1 - 1e-15]`` so a single confident
    miss stays finite.  AUC is the Mann–Whitney statistic from average ranks,
    so tied probabilities count half, as ``roc_auc_score`` does; None when the
    actuals hold only one class.  Accuracy labels a row positive when its
    probability exceeds ``threshold``, the rule the deployment itself applies.

    Returns:
        Each name of :data:`BINARY_METRICS`, None where undefined.
    """
    return metrics(joined, kind="binary", threshold=threshold)


def multiclass_metrics(joined: pl.DataFrame) -> dict[str, float | None]:
    """Accuracy: the share of rows whose predicted ``label`` equals ``actual_label``.

    Returns:
        ``{"Accuracy": ...}``, None when no row has both labels.
    """
    return metrics(joined, kind="multiclass")


def metrics(
    joined: pl.DataFrame, *, kind: Kind, threshold: float = DEFAULT_THRESHOLD
) -> dict[str, float | None]:
    """Every metric of ``kind`` over the whole joined table.

    Time series deployments are ``"regression"``.  See
    :func:`regression_metrics`, :func:`binary_metrics` and
    :func:`multiclass_metrics` for the definitions.

    Raises:
        ParameterError: an unknown ``kind``.
        MissingColumnError: ``prediction`` or ``actual`` is absent (regression, binary).
    """
    names = metric_names(kind, joined)
    rows = _prepare(joined, kind).with_columns(pl.lit(0).alias(_KEY))
    table = _aggregate(rows, kind=kind, keys=[_KEY], threshold=threshold, scales=_scales(rows, kind))
    if table.height == 0:
        return dict.fromkeys(names)
    return {name: table.item(0, name) for name in names}


def over_time(
    joined: pl.DataFrame,
    *,
    kind: Kind,
    bucket: dt.timedelta,
    start: dt.datetime,
    end: dt.datetime,
    by: Literal["timestamp", "created"] = "timestamp",
    threshold: float = DEFAULT_THRESHOLD,
) -> pl.DataFrame:
    """Metrics per time bucket ``[start + k·bucket, start + (k+1)·bucket)`` covering ``[start, end)``.

    Every bucket is listed, empty ones with ``sampleSize`` 0 and null metrics, so
    a chart shows a gap rather than joining its neighbours.  The last bucket
    keeps its full width even when it ends after ``end``; rows at or after
    ``end`` are ignored all the same.  ``by="timestamp"`` places a row by the
    timestamp it predicts (falling back to ``created`` where that is null, as
    for tabular rows without an actual timestamp); ``by="created"`` by when the
    prediction was made.  MASE divides each bucket's MAE by the scales, taken
    from the whole of ``joined``, of the series present in the bucket: one
    bucket rarely holds two timestamps of a series.  Naive datetimes are UTC;
    aware ones are converted to it.

    Returns:
        ``bucketStart``, ``bucketEnd`` (Datetime us), ``sampleSize`` (Int64)
        and one Float64 column per metric of ``kind``, oldest bucket first.

    Raises:
        ParameterError: an unknown ``kind`` or ``by``, a bucket that is not
            positive, ``end`` before ``start`` or more than ``MAX_BUCKETS`` buckets.
        MissingColumnError: ``created`` (or a scored column) is absent.
    """
    names = metric_names(kind, joined)
    if by not in ("timestamp", "created"):
        msg = f"by must be 'timestamp' or 'created', got {by!r}"
        raise ParameterError(msg)
    step = bucket // _US
    if step <= 0:
        msg = f"bucket must be a positive duration, got {bucket}"
        raise ParameterError(msg)
    lo, hi = _epoch_us(start), _epoch_us(end)
    if hi < lo:
        msg = f"end ({end.isoformat()}) must not be before start ({start.isoformat()})"
        raise ParameterError(msg)
    n = -(-(hi - lo) // step)
    if n > MAX_BUCKETS:
        msg = f"{n} buckets of {bucket} between {start.isoformat()} and {end.isoformat()}; at most {MAX_BUCKETS} are allowed, use a larger bucket"
        raise ParameterError(msg)
    _require(joined, ["created"])
    rows = _prepare(joined, kind)
    scales = _scales(rows, kind)
    made = (pl.col("created") * 1e6).round().cast(pl.Int64)
    at = made if by == "created" else pl.coalesce(pl.col("timestamp").cast(pl.Int64), made)
    rows = (
        rows.with_columns(at.alias(_KEY))
        .filter((pl.col(_KEY) >= lo) & (pl.col(_KEY) < hi))
        .with_columns((pl.col(_KEY) - lo) // step)
    )
    table = _aggregate(rows, kind=kind, keys=[_KEY], threshold=threshold, scales=scales)
    k = pl.int_range(0, n, dtype=pl.Int64, eager=True).alias(_KEY)
    return (
        pl.DataFrame(k)
        .join(table, on=_KEY, how="left", maintain_order="left")
        .select(
            (lo + pl.col(_KEY) * step).cast(pl.Datetime("us")).alias("bucketStart"),
            (lo + (pl.col(_KEY) + 1) * step).cast(pl.Datetime("us")).alias("bucketEnd"),
            pl.col("sampleSize").fill_null(0),
            *names,
        )
    )


def by_distance(joined: pl.DataFrame, *, kind: Kind, threshold: float = DEFAULT_THRESHOLD) -> pl.DataFrame:
    """Metrics per forecast distance: how accuracy decays with the horizon.

    MASE uses the scales of the series present at each distance (see
    :func:`over_time`).  Rows without a distance form a null group, listed last.

    Returns:
        ``forecastDistance`` (Int64), ``sampleSize`` and one column per metric,
        sorted by distance.
    """
    return _grouped(joined, kind, "distance", "forecastDistance", threshold)


def by_series(joined: pl.DataFrame, *, kind: Kind, threshold: float = DEFAULT_THRESHOLD) -> pl.DataFrame:
    """Metrics per series: which series the deployment serves worst.

    MASE divides each series' MAE by that series' own scale.  Rows without a
    series id (a single-series deployment) form a null group, listed last.

    Returns:
        ``seriesId`` (String), ``sampleSize`` and one column per metric, sorted
        by series id.
    """
    return _grouped(joined, kind, "series_id", "seriesId", threshold)


def choose_bucket(start: dt.datetime, end: dt.datetime) -> dt.timedelta:
    """A bucket width that gives a readable chart of ``[start, end)``.

    An hour up to 2 days (at most 48 points), a day up to 90 days (at most 90),
    a week up to 2 years (at most about 104) and 30 days beyond: enough points
    to see a trend, few enough that each bucket holds a useful sample.
    """
    span = end - start
    if span <= dt.timedelta(days=2):
        return dt.timedelta(hours=1)
    if span <= dt.timedelta(days=90):
        return dt.timedelta(days=1)
    if span <= dt.timedelta(days=730):
        return dt.timedelta(weeks=1)
    return dt.timedelta(days=30)


def coverage_metric(percentile: int) -> str:
    """The name of the coverage of a further served percentile's interval: ``Coverage<p>``."""
    return f"Coverage{percentile}"


def further_percentiles(joined: pl.DataFrame) -> tuple[int, ...]:
    """Percentiles with a ``low_<p>``/``high_<p>`` pair in ``joined``, increasing."""
    found = (m.group(1) for c in joined.columns if (m := _FURTHER_LOW.fullmatch(c)))
    return tuple(sorted(int(p) for p in found if f"high_{p}" in joined.columns))


def metric_names(kind: str, joined: pl.DataFrame | None = None) -> tuple[str, ...]:
    """The metrics of ``kind``; regression adds a ``Coverage<p>`` per further percentile of ``joined``."""
    try:
        names = _METRICS[kind]
    except KeyError:
        msg = f"kind must be one of {', '.join(_METRICS)}, got {kind!r}"
        raise ParameterError(msg) from None
    if kind != "regression" or joined is None:
        return names
    return (*names, *map(coverage_metric, further_percentiles(joined)))


def _require(joined: pl.DataFrame, columns: list[str]) -> None:
    missing = [c for c in columns if c not in joined.columns]
    if missing:
        msg = f"the joined prediction/actual table lacks {short_list(missing)}; it has {short_list(joined.columns)}"
        raise MissingColumnError(msg)


def _prepare(joined: pl.DataFrame, kind: str) -> pl.DataFrame:
    """Typed optional columns and only the rows that ``kind`` can score."""
    if kind != "multiclass":
        _require(joined, ["prediction", "actual"])
    frame = joined.with_columns(
        pl.lit(None, dtype).alias(name) for name, dtype in _OPTIONAL.items() if name not in joined.columns
    )
    stamp = frame.schema["timestamp"]
    ts = pl.col("timestamp")
    if isinstance(stamp, pl.Datetime) and stamp.time_zone is not None:
        ts = ts.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    frame = frame.with_columns(
        ts.cast(pl.Datetime("us")),
        *(pl.col(name).cast(dtype) for name, dtype in _OPTIONAL.items() if name != "timestamp"),
    )
    if kind == "multiclass":
        return frame.filter(pl.col("label").is_not_null() & pl.col("actual_label").is_not_null())
    return frame.filter(pl.col("prediction").is_finite() & pl.col("actual").is_finite())


def _scales(rows: pl.DataFrame, kind: str) -> pl.DataFrame | None:
    """Per-series MASE scale: mean |a_t - a_{t-1}| over the series' distinct timestamps.

    Several forecast distances predict the same timestamp, so the actuals are
    first reduced to one per (series, timestamp).  A series with one timestamp
    has a null scale and is left out of every pooled scale.
    """
    if kind != "regression":
        return None
    a = pl.col("actual")
    return (
        rows.filter(pl.col("timestamp").is_not_null())
        .group_by("series_id", "timestamp")
        .agg(a.mean())
        .group_by("series_id")
        .agg(a.sort_by("timestamp").diff().abs().mean().alias(_SCALE))
    )


def _coverage(low: pl.Expr, high: pl.Expr, name: str) -> pl.Expr:
    """Share of the rows with both bounds whose actual lies in ``[low, high]``."""
    y = pl.col("actual")
    bounded = low.is_not_null() & high.is_not_null()
    return ((low <= y) & (y <= high)).filter(bounded).cast(pl.Float64).mean().alias(name)


def _exprs(kind: str, threshold: float, percentiles: tuple[int, ...] = ()) -> list[pl.Expr]:
    """Aggregations of ``kind`` for one group (regression: MAE stands in for MASE)."""
    if kind == "regression":
        y = pl.col("actual")
        err = pl.col("prediction") - y
        return [
            (err**2).mean().sqrt().alias("RMSE"),
            err.abs().mean().alias("MAE"),
            (100.0 * err.abs() / y.abs()).filter(y != 0).mean().alias("MAPE"),
            err.abs().mean().alias(_MAE),
            _coverage(pl.col("low"), pl.col("high"), "Coverage"),
            *(_coverage(pl.col(f"low_{p}"), pl.col(f"high_{p}"), coverage_metric(p)) for p in percentiles),
        ]
    if kind == "binary":
        pos = pl.col("actual") == 1.0
        y = pos.cast(pl.Float64)
        p = pl.col("prediction").clip(LOGLOSS_EPS, 1.0 - LOGLOSS_EPS)
        n_pos = pos.sum().cast(pl.Float64)
        n_neg = pl.len().cast(pl.Float64) - n_pos
        rank_sum = pl.col("prediction").rank("average").filter(pos).sum().cast(pl.Float64)
        return [
            (-(y * p.log() + (1.0 - y) * (1.0 - p).log())).mean().alias("LogLoss"),
            pl.when((n_pos > 0) & (n_neg > 0))
            .then((rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg))
            .alias("AUC"),
            ((pl.col("prediction") > threshold) == pos).cast(pl.Float64).mean().alias("Accuracy"),
        ]
    return [(pl.col("label") == pl.col("actual_label")).cast(pl.Float64).mean().alias("Accuracy")]


def _aggregate(
    rows: pl.DataFrame, *, kind: str, keys: list[str], threshold: float, scales: pl.DataFrame | None
) -> pl.DataFrame:
    """One row per group of ``keys``: ``sampleSize`` and the metrics of ``kind``.

    A group's MASE scale is the mean of the scales of the series present in it,
    so a group of one series uses that series' scale and the whole table pools
    all series.  Non-finite values become null (JSON has no NaN).
    """
    names = metric_names(kind, rows)
    table = rows.group_by(keys).agg(
        pl.len().cast(pl.Int64).alias("sampleSize"), *_exprs(kind, threshold, further_percentiles(rows))
    )
    if scales is not None:
        pooled = (
            rows.select(*dict.fromkeys([*keys, "series_id"]))
            .unique()
            .join(scales, on="series_id", how="left", nulls_equal=True)
            .group_by(keys)
            .agg(pl.col(_SCALE).mean())
        )
        scale = pl.col(_SCALE)
        table = table.join(pooled, on=keys, how="left", nulls_equal=True).with_columns(
            pl.when(scale > 0).then(pl.col(_MAE) / scale).alias("MASE")
        )
    finite = [pl.when(pl.col(n).is_finite()).then(pl.col(n)).cast(pl.Float64).alias(n) for n in names]
    return table.select(*keys, "sampleSize", *finite)


def _grouped(joined: pl.DataFrame, kind: Kind, column: str, name: str, threshold: float) -> pl.DataFrame:
    rows = _prepare(joined, kind)
    table = _aggregate(rows, kind=kind, keys=[column], threshold=threshold, scales=_scales(rows, kind))
    return table.sort(column, nulls_last=True).rename({column: name})


def _epoch_us(t: dt.datetime) -> int:
    """Microseconds since the epoch; a naive datetime is UTC."""
    if t.tzinfo is not None:
        t = t.astimezone(dt.UTC).replace(tzinfo=None)
    return (t - _EPOCH) // _US
