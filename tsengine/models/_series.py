"""Dense per-series arrays for the statistical models.

The statistical models (ETS, Theta, ARIMA) read one window of history per
forecast origin and run a small recursion over it.  This module turns canonical
rows into those arrays once, vectorised with polars, so the models never loop
over rows:

* :func:`training_matrix`: every training series left-aligned on its own grid
  from its first observed target to the last one, gaps as NaN;
* :func:`origin_windows`: for every distinct ``(__sid, __fp)`` of a query, the
  target on ``(fp - a, fp]`` (gaps and points before the series start as NaN),
  which is exactly the history a deployment serves from;
* :func:`interpolate_rows`: linear interpolation of inner gaps, for models whose
  recursion cannot skip a missing value (ARIMA).

Missing values are never shifted: each array column is one grid step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from tsengine.features import FP, D
from tsengine.validate import IDX, SID, Y

__all__ = ["OriginWindows", "TrainingMatrix", "interpolate_rows", "origin_windows", "training_matrix"]


@dataclass(frozen=True, slots=True)
class TrainingMatrix:
    """Training series as rows: ``y[r, t]`` is series ``sids[r]`` at index ``start[r] + t``."""

    sids: list[str]
    start: np.ndarray
    y: np.ndarray
    length: np.ndarray


@dataclass(frozen=True, slots=True)
class OriginWindows:
    """Target windows ending at each origin, and the query rows' place in them.

    ``y[o]`` holds the target on ``(fp_o - a, fp_o]``; ``origin[q]`` is the row of
    ``y`` that query row ``q`` reads and ``distance[q]`` its forecast distance.
    """

    sids: list[str]
    fp: np.ndarray
    y: np.ndarray
    origin: np.ndarray
    distance: np.ndarray
    extra: dict[str, np.ndarray]

    @property
    def horizon(self) -> int:
        """Columns a per-origin forecast matrix needs: the largest queried distance."""
        return int(self.distance.max()) if self.distance.size else 0

    def pick(self, forecasts: np.ndarray) -> np.ndarray:
        """Each query row's value from a (origins x horizon) matrix of forecasts."""
        return np.asarray(forecasts[self.origin, self.distance - 1])


def training_matrix(history: pl.DataFrame, columns: tuple[str, ...] = ()) -> TrainingMatrix:
    """Each series from its first to its last observed target, padded with NaN at the end.

    Args:
        history: canonical rows.
        columns: unused placeholder for symmetry with :func:`origin_windows`.
    """
    del columns
    observed = history.filter(pl.col(Y).is_not_null())
    spans = (
        observed.group_by(SID, maintain_order=True)
        .agg(pl.col(IDX).min().alias("__lo"), pl.col(IDX).max().alias("__hi"))
        .sort(SID)
    )
    sids = spans.get_column(SID).to_list()
    start = spans.get_column("__lo").to_numpy().astype(np.int64)
    length = (spans.get_column("__hi").to_numpy() - start + 1).astype(np.int64)
    width = int(length.max()) if length.size else 0
    y = np.full((len(sids), width), np.nan)
    if sids:
        row = {s: r for r, s in enumerate(sids)}
        codes = observed.get_column(SID).replace_strict(row, return_dtype=pl.Int64).to_numpy()
        offs = observed.get_column(IDX).to_numpy() - start[codes]
        y[codes, offs] = observed.get_column(Y).to_numpy()
    return TrainingMatrix(sids, start, y, length)


def origin_windows(
    history: pl.DataFrame, query: pl.DataFrame, window: int, columns: tuple[str, ...] = ()
) -> OriginWindows:
    """The target (and ``columns``) on ``(fp - window, fp]`` for each distinct origin.

    Only history rows of the origin's own series at or before ``fp`` are read,
    so one call serves historical mode (many origins per series) without leaks.
    """
    origins = query.select(SID, FP).unique(maintain_order=True)
    sids = origins.get_column(SID).to_list()
    fp = origins.get_column(FP).to_numpy().astype(np.int64)
    n = len(sids)
    y = np.full((n, window), np.nan)
    extra = {c: np.full((n, window), np.nan) for c in columns}
    keyed = origins.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("__o"))
    if n:
        # Join each history row to every origin of its series whose window holds it.
        rows = (
            history.filter(pl.col(Y).is_not_null() | pl.lit(bool(columns)))
            .select(SID, IDX, Y, *columns)
            .join(keyed, on=SID, how="inner")
            .filter((pl.col(IDX) <= pl.col(FP)) & (pl.col(IDX) > pl.col(FP) - window))
        )
        o = rows.get_column("__o").to_numpy()
        t = (rows.get_column(IDX).to_numpy() - rows.get_column(FP).to_numpy() + window - 1).astype(np.int64)
        y[o, t] = rows.get_column(Y).fill_null(np.nan).to_numpy().astype(np.float64)
        for c in columns:
            extra[c][o, t] = rows.get_column(c).cast(pl.Float64).fill_null(np.nan).to_numpy()
    origin = (
        query.select(SID, FP)
        .join(keyed, on=[SID, FP], how="left", maintain_order="left")
        .get_column("__o")
        .to_numpy()
        .astype(np.int64)
    )
    distance = query.get_column(D).to_numpy().astype(np.int64)
    return OriginWindows(sids, fp, y, origin, distance, extra)


def interpolate_rows(y: np.ndarray) -> np.ndarray:
    """Fill NaNs of each row linearly between observations, flat at the ends.

    Rows without any observation stay NaN.  Only rows with gaps are visited, so
    complete data costs one ``isnan`` pass.
    """
    out = y.copy()
    gaps = np.flatnonzero(np.isnan(out).any(axis=1))
    positions = np.arange(y.shape[1], dtype=np.float64)
    for r in gaps:
        ok = ~np.isnan(out[r])
        if ok.any():
            out[r] = np.interp(positions, positions[ok], out[r, ok])
    return out
