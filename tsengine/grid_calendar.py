"""Timestamps and calendar parts of grid indices, computed once per index.

Split from :mod:`tsengine.features` because these values depend on the grid
index alone, not on any series: the features read calendar parts of each
target time, and the prediction output writes the timestamps of its rows
(:func:`grid_timestamps`).  A request's rows share few indices, so both are
evaluated per distinct index (:func:`index_values`) or in numpy for fixed steps.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from tsengine.columns import IDX
from tsengine.timestep import TimeStep

__all__ = ["calendar_parts", "grid_timestamps", "index_values"]


def _calendar(step: TimeStep, parts: tuple[str, ...]) -> list[pl.Expr]:
    t = step.from_index(pl.col(IDX))
    table = {
        "second": t.dt.second(),
        "minute": t.dt.minute(),
        "hour": t.dt.hour(),
        "weekday": t.dt.weekday(),
        "monthday": t.dt.day(),
        "month": t.dt.month(),
        "yearday": t.dt.ordinal_day(),
        "week": t.dt.week(),
        "quarter": t.dt.quarter(),
    }
    return [table[p].cast(pl.Float64).alias(f"__cal_{p}") for p in parts]


# Calendar parts numpy computes exactly as polars' ``dt`` accessors do (ISO
# weekday, ordinal day, ...); the ISO week is left to polars.
_NUMPY_PARTS = frozenset({"second", "minute", "hour", "weekday", "monthday", "month", "yearday", "quarter"})
_US_PER_SECOND = 1_000_000


def grid_timestamps(step: TimeStep, idx: np.ndarray, name: str = "timestamp") -> pl.Series:
    """:meth:`TimeStep.from_index <tsengine.timestep.TimeStep.from_index>` of ``idx`` as a Series.

    Fixed steps are ``idx * step + phase`` microseconds, the very arithmetic of
    ``from_index``, and business days numpy's ``busday_offset``, done in numpy
    (:meth:`~tsengine.timestep.TimeStep.index_micros`): no polars query for a request's few
    timestamps.  Calendar steps (months, quarters, years) go through
    ``from_index`` once per index of the span (:func:`index_values`).
    """
    if not step.is_calendar:
        micros = step.index_micros(idx)
        # from integers: polars converts a datetime64 array several times slower
        return pl.Series(name, micros, dtype=pl.Int64).cast(pl.Datetime("us"))
    return index_values(np.asarray(idx, dtype=np.int64), [step.from_index(pl.col(IDX)).alias(name)])[0]


def calendar_parts(step: TimeStep, parts: tuple[str, ...], idx: np.ndarray) -> list[np.ndarray]:
    """The calendar features ``parts`` of each grid index, as floats (see :func:`_calendar`).

    For fixed steps numpy derives them from the timestamps' microseconds,
    equal to polars' ``dt.second()`` … ``dt.quarter()`` (checked over several
    centuries either side of 1970); the ISO week and calendar steps use polars.
    """
    if step.is_calendar or not set(parts) <= _NUMPY_PARTS:
        return [p.to_numpy().astype(np.float64) for p in index_values(idx, _calendar(step, parts))]
    us = step.index_micros(idx)
    t = us.astype("datetime64[us]")
    days = t.astype("datetime64[D]")
    months = t.astype("datetime64[M]")
    month = months.view(np.int64) % 12 + 1
    table: dict[str, Callable[[], np.ndarray]] = {
        "second": lambda: (us // _US_PER_SECOND) % 60,
        "minute": lambda: (us // (60 * _US_PER_SECOND)) % 60,
        "hour": lambda: (us // (3600 * _US_PER_SECOND)) % 24,
        "weekday": lambda: (days.view(np.int64) + 3) % 7 + 1,  # 1970-01-01 was a Thursday (ISO 4)
        "monthday": lambda: (days - months.astype("datetime64[D]")).view(np.int64) + 1,
        "month": lambda: month,
        "yearday": lambda: (days - t.astype("datetime64[Y]").astype("datetime64[D]")).view(np.int64) + 1,
        "quarter": lambda: (month - 1) // 3 + 1,
    }
    return [np.asarray(table[p](), dtype=np.float64) for p in parts]


def index_values(idx: np.ndarray, exprs: list[pl.Expr]) -> list[pl.Series]:
    """``exprs`` of the grid index column ``__i`` for each value of ``idx``.

    Calendar parts and timestamps depend on the grid index alone, and a
    request's rows share few of them (a forecast: one per distance), so they
    are evaluated once per index of ``idx``'s span, in one small query, and
    gathered; a sparse span (or none) evaluates them row by row.
    """
    if idx.size:
        lo, hi = int(idx.min()), int(idx.max())
        if hi - lo < max(idx.size, 64):
            table = pl.DataFrame({IDX: np.arange(lo, hi + 1, dtype=np.int64)}).select(exprs)
            at = idx - lo
            return [table.get_column(c)[at] for c in table.columns]  # indexing: a native take
    table = pl.DataFrame({IDX: np.asarray(idx, dtype=np.int64)}).select(exprs)
    return table.get_columns()
