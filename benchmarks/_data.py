"""Benchmark datasets built from the real fixtures, and request bodies cut from them.

The workload the performance issue describes is a replenishment system: many
daily series, one store or one SKU per call.  ``fixtures/flights_daily.csv`` has
12 real daily series of 365 days (NYC delayed departures, 2013).  We tile them
into as many series as a benchmark needs: copy ``k`` of series ``s`` is named
``s#k`` and its target is ``s``'s multiplied by a per-copy factor (log-uniform in
[0.2, 5]) and by a per-row noise factor (uniform ±10 %), both drawn from a fixed
seed, so copies are not exact duplicates and every run builds the same data.
The known-in-advance columns are dropped: the benchmark requests post history
only and let the server autoexpand the forecast rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

__all__ = [
    "DATETIME_COL",
    "FIXTURE",
    "HORIZON",
    "SERIES_COL",
    "TARGET_COL",
    "history_tail",
    "tiled_daily",
    "tiled_years",
    "to_csv_bytes",
]

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "flights_daily.csv"
SERIES_COL, DATETIME_COL, TARGET_COL = "series", "date", "delayed"
HORIZON = 28  # tsengine's default forecast window for daily data: [1, 28]
SEED = 20130101


def tiled_daily(n_series: int, *, days: int = 365, seed: int = SEED) -> pl.DataFrame:
    """``n_series`` daily series of ``days`` rows tiled from the 12 flights series.

    Columns ``series`` (string), ``date`` (``YYYY-MM-DD`` string, as a client
    posts it) and ``delayed`` (float), sorted by series then date.
    """
    base = pl.read_csv(FIXTURE, columns=[SERIES_COL, DATETIME_COL, TARGET_COL]).sort(SERIES_COL, DATETIME_COL)
    names = base.get_column(SERIES_COL).unique(maintain_order=True).to_list()
    per_series = base.height // len(names)
    if days > per_series:
        msg = f"the fixture has {per_series} days per series, {days} asked"
        raise ValueError(msg)
    base = base.filter(pl.int_range(pl.len()).over(SERIES_COL) >= per_series - days)
    copies = -(-n_series // len(names))
    rng = np.random.default_rng(seed)
    factor = np.exp(rng.uniform(np.log(0.2), np.log(5.0), size=copies))
    frames = []
    for k in range(copies):
        frames.append(
            base.with_columns(
                (pl.col(SERIES_COL) + f"#{k:05d}").alias(SERIES_COL),
                (pl.col(TARGET_COL) * factor[k]).alias(TARGET_COL),
            )
        )
    tiled = pl.concat(frames)
    ids = tiled.get_column(SERIES_COL).unique(maintain_order=True).head(n_series)
    tiled = tiled.filter(pl.col(SERIES_COL).is_in(ids.implode()))
    noise = rng.uniform(0.9, 1.1, size=tiled.height)
    return tiled.with_columns((pl.col(TARGET_COL) * noise).round(3)).sort(SERIES_COL, DATETIME_COL)


def tiled_years(n_series: int, *, years: int = 2, seed: int = SEED) -> pl.DataFrame:
    """``n_series`` daily series of ``years`` x 365 days: :func:`tiled_daily` and earlier years before it.

    Year ``-k`` is the fixture's year moved ``365 k`` days back, its level
    scaled by ``0.9^k`` (a mild growth) and fresh ±10 % noise drawn per row, so
    the years are not copies of each other.
    """
    last = tiled_daily(n_series, seed=seed)
    rng = np.random.default_rng(seed + 1)
    years_ = [last]
    dates = pl.col(DATETIME_COL).str.to_date()
    for k in range(1, years):
        noise = rng.uniform(0.9, 1.1, size=last.height)
        years_.append(
            last.with_columns(
                (dates - pl.duration(days=365 * k)).dt.strftime("%Y-%m-%d").alias(DATETIME_COL),
                (pl.col(TARGET_COL) * 0.9**k * noise).round(3).alias(TARGET_COL),
            )
        )
    return pl.concat(years_).sort(SERIES_COL, DATETIME_COL)


def history_tail(frame: pl.DataFrame, rows: int, *, series: int | None = None) -> pl.DataFrame:
    """The last ``rows`` rows of the first ``series`` series (all when None)."""
    if series is not None:
        ids = frame.get_column(SERIES_COL).unique(maintain_order=True).head(series)
        frame = frame.filter(pl.col(SERIES_COL).is_in(ids.implode()))
    return frame.filter(pl.int_range(pl.len()).over(SERIES_COL) >= pl.len().over(SERIES_COL) - rows)


def to_csv_bytes(frame: pl.DataFrame) -> bytes:
    """The CSV body a client would post."""
    return frame.write_csv().encode()
