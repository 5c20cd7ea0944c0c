"""Which (origin, distance) pairs a global model trains on, and their targets.

Split from :mod:`tsengine.features` because choosing the rows is a separate
question from computing their features: which forecast points have enough
history and a target ahead, how many origins to keep (thinned with a stride
coprime with the season), and the dense history backtests read around them.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from tsengine.columns import FP, IDX, ROW, SID, D, Y
from tsengine.errors import TrainingDataError
from tsengine.season import season_length
from tsengine.spec import TimeSeriesSpec

__all__ = [
    "MAX_ORIGINS_PER_SERIES",
    "TARGET_DISTANCES",
    "THIN_KEEPS_PAIRS",
    "dense_history",
    "query_at",
    "targets_at",
    "too_short",
    "training_query",
]

# Training origins per series at most [ours]: a direct multi-horizon model gets
# one row per origin and distance, and neighbouring origins share nearly all
# their targets.  Measured on half-hourly day-ahead data (forecast::taylor, 12
# weeks, FW 1..48): LightGBM training 173 s -> 39 s, mean MASE over three held-out
# days 1.21 -> 1.14.  Daily data up to ~3 years and every monthly panel are below it.
MAX_ORIGINS_PER_SERIES = 1000
# With rows to spare, each target is learnt at about this many of its distances
# at most [ours]: with F distances every target is the label of F pairs, one per
# origin ahead of it, so a stride of F // 14 origins keeps every target and every
# distance while the pairs, and a global model's training time, shrink by the
# stride.  Measured on the accuracy benchmark's daily panels (FW 1..28, mean MASE
# over three held-out horizons, unthinned -> stride 2): chicago_ridership (10
# series, 185,000 pairs) 0.713 -> 0.713 with training 138 s -> 38 s a window;
# flights_daily 0.723 -> 0.725; stride 3 cost 1-2 % on both.  fpp3's bank_calls
# (five-minute business hours, FW 1..169, next business day, three held-out days):
# stride 5 (the origin cap) -> 12, MASE 0.666 -> 0.668, training 214 s -> 110 s
# for the three.  A single year of one series (elecdaily, 10,000 pairs) lost 5 %
# at stride 2, hence the floor.
TARGET_DISTANCES = 14
# ... and only when the thinned pairs still number at least this many.
THIN_KEEPS_PAIRS = 50_000


def dense_history(history: pl.DataFrame, origins: pl.DataFrame, fdw: int, columns: list[str]) -> pl.DataFrame:
    """Each series' grid from ``min(fp) - fdw + 1`` to ``max(fp)``, gaps as nulls.

    Args:
        history: canonical rows (``__sid``, ``__i``, ``__y`` and ``columns``); only
            rows inside the span are used.
        origins: distinct ``(__sid, __fp)`` pairs.
        fdw: the feature derivation window ``a``.
        columns: history columns to carry besides the target.
    """
    spans = origins.group_by(SID).agg(
        (pl.col(FP).min() - fdw + 1).alias("__lo"), pl.col(FP).max().alias("__hi")
    )
    grid = (
        spans.select(SID, pl.int_ranges("__lo", pl.col("__hi") + 1, dtype=pl.Int64).alias(IDX))
        .explode(IDX)
        .sort(SID, IDX)
    )
    keep = history.select(SID, IDX, Y, *columns)
    return grid.join(keep, on=[SID, IDX], how="left", maintain_order="left")


def targets_at(history: pl.DataFrame, query: pl.DataFrame) -> np.ndarray:
    """The target ``y[__i]`` of each query row's series, in query order (NaN where absent)."""
    return (
        query.select(SID, IDX)
        .join(history.select(SID, IDX, Y), on=[SID, IDX], how="left", maintain_order="left")
        .get_column(Y)
        .to_numpy()
        .astype(np.float64)
    )


def too_short(spec: TimeSeriesSpec) -> TrainingDataError:
    """The error a global model raises when no training origin has a target ahead of it."""
    return TrainingDataError(
        f"no series has {spec.min_history} target values followed by a forecast window; "
        f"the data is too short for a {spec.fdw}-step feature derivation window and "
        f"forecast window {spec.forecast_window}"
    )


def training_query(
    history: pl.DataFrame,
    spec: TimeSeriesSpec,
    *,
    origins_upto: int | None = None,
    targets_upto: int | None = None,
    max_rows: int = 600_000,
    max_origins: int = MAX_ORIGINS_PER_SERIES,
) -> pl.DataFrame:
    """Every (origin, distance) pair of the training data with an observed target.

    Origins need ``spec.min_history`` observed targets inside the window, the same
    rule prediction applies.  When the pairs exceed ``max_rows``, or a series has
    more than ``max_origins`` origins, or the pairs are plentiful enough to learn
    each target at :data:`TARGET_DISTANCES` distances only, origins are thinned with a fixed stride
    (deterministic, coprime with the season), each series at its own phase
    (the ``k``-th series in id order keeps its newest origin when ``k`` is a
    multiple of the stride), so that together the series cover every date.

    Args:
        history: canonical training rows.
        spec: the deployment spec.
        origins_upto: latest allowed origin (backtests cut here).
        targets_upto: latest allowed target index (backtests: no peeking).
        max_rows: cap on returned pairs.
        max_origins: cap on origins per series.
    """
    a = spec.fdw
    observed = history.filter(pl.col(Y).is_not_null())
    spans = observed.group_by(SID).agg(pl.col(IDX).min().alias("__lo"), pl.col(IDX).max().alias("__hi"))
    counts = (
        spans.select(SID, pl.int_ranges("__lo", pl.col("__hi") + 1, dtype=pl.Int64).alias(IDX))
        .explode(IDX)
        .sort(SID, IDX)
        .join(observed.select(SID, IDX, Y), on=[SID, IDX], how="left", maintain_order="left")
        .with_columns(
            pl.col(Y).is_not_null().cast(pl.Int64).rolling_sum(a, min_samples=1).over(SID).alias("__n")
        )
    )
    # An origin whose nearest distance lies past the series' last target yields no
    # pair; dropping it here makes thinning keep the newest origin that does.
    has_target = pl.col(IDX) + spec.forecast_window[0] <= pl.col(IDX).max().over(SID)
    origins = counts.filter((pl.col("__n") >= spec.min_history) & has_target).select(
        SID, pl.col(IDX).alias(FP)
    )
    if origins_upto is not None:
        origins = origins.filter(pl.col(FP) <= origins_upto)
    dist = pl.DataFrame({D: list(spec.distances)}, schema={D: pl.Int64})
    n_dist = dist.height
    per_series = origins.group_by(SID).len().get_column("len").to_numpy()
    longest = int(per_series.max()) if per_series.size else 0
    n_pairs = origins.height * n_dist
    spare = n_dist // TARGET_DISTANCES
    if n_pairs < spare * THIN_KEEPS_PAIRS:  # thinning would leave too few
        spare = 1
    stride = max(1, -(-n_pairs // max_rows), -(-longest // max_origins), spare)
    if stride > 1:
        # A stride sharing a factor with the season (7 for days) would keep
        # origins on only some weekdays or hours; the next coprime stride keeps all.
        season = season_length(spec.time_step, a)
        while season > 1 and math.gcd(stride, season) != 1:
            stride += 1
        # Staggered by series: with the same phase every series would keep the same few
        # dates (all series of a panel usually share their calendar), and a global model
        # would see 2 dates of 700 instead of all of them (at 10,000 daily series x 2 years:
        # LightGBM's backtest MASE 0.85 with one phase, against 0.73 at 1,000 series unthinned).
        phase = pl.col(SID).rank("dense").cast(pl.Int64) - 1
        origins = origins.sort(SID, FP, descending=[False, True]).filter(
            ((pl.int_range(pl.len()).over(SID) + phase) % stride) == 0
        )
    pairs = origins.join(dist, how="cross").with_columns((pl.col(FP) + pl.col(D)).alias(IDX))
    if targets_upto is not None:
        pairs = pairs.filter(pl.col(IDX) <= targets_upto)
    kia = list(spec.known_in_advance)
    pairs = pairs.join(
        observed.select(SID, IDX, ROW, *kia), on=[SID, IDX], how="inner", maintain_order="left"
    )
    return pairs.sort(SID, FP, D)


def query_at(history: pl.DataFrame, spec: TimeSeriesSpec, origin: int) -> pl.DataFrame:
    """The pairs of ``training_query(history, spec, origins_upto=origin)`` at ``FP == origin``, unthinned.

    A backtest predicts one origin at a time, for every series that can be
    forecast there: building every origin up to it (a dense grid of each
    series' span, a rolling count, a sort) to keep one cost more than the
    models' own fits on a 1,000-series panel, and thinning (which is for
    training rows) must not drop series from a backtest.  The pairs: series
    whose observed span holds ``origin``, with ``spec.min_history`` targets in
    ``(origin - fdw, origin]`` and a target at or after ``origin + fw[0]``; one
    row per distance whose target is observed.
    """
    observed = history.filter(pl.col(Y).is_not_null())
    recent = pl.col(IDX).is_between(origin - spec.fdw + 1, origin)
    series = (
        observed.group_by(SID)
        .agg(
            pl.col(IDX).min().alias("__lo"),
            pl.col(IDX).max().alias("__hi"),
            recent.sum().alias("__n"),
        )
        .filter(
            (pl.col("__lo") <= origin)
            & (pl.col("__hi") >= origin + max(spec.forecast_window[0], 0))
            & (pl.col("__n") >= spec.min_history)
        )
        .select(SID)
    )
    dist = pl.DataFrame({D: list(spec.distances)}, schema={D: pl.Int64})
    pairs = series.join(dist, how="cross").select(
        SID,
        pl.lit(origin, dtype=pl.Int64).alias(FP),
        D,
        (pl.lit(origin, dtype=pl.Int64) + pl.col(D)).alias(IDX),
    )
    kia = list(spec.known_in_advance)
    pairs = pairs.join(
        observed.select(SID, IDX, ROW, *kia), on=[SID, IDX], how="inner", maintain_order="left"
    )
    return pairs.sort(SID, FP, D)
