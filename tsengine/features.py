"""Direct multi-horizon features, one plan for training and prediction.

A *query* row asks for the value of series ``s`` at grid index ``i = fp + d``,
made as of forecast point ``fp``.  Its features come from two places:

* the **origin** ``(s, fp)``: target lags and rolling statistics over the feature
  derivation window ``(fp - a, fp]``, the last value and window mean of each
  non-KIA feature and, when the plan asks (:meth:`FeaturePlan.with_feature_lags`),
  a numeric one's lags and window statistics too; all read from an
  :class:`~tsengine.grid.OriginGrid`, a dense per-series layout, so gaps are
  missing values, never shifts (a lag or seasonal value in a gap reads the
  latest value before it inside the window, see :meth:`OriginGrid.carried`);
* the **target time** ``i``: calendar parts, known-in-advance values, the
  distance ``d``, the seasonal value ``y[i - m·season]`` with ``m`` the
  smallest number of seasons that lands inside the window, and the seasonal
  mean: the mean of ``y[i - m·season]``, ``y[i - (m+1)·season]``, ... over the
  whole window (the same weekday over the window's eight weeks), a steadier
  profile of the target's seasonal position than its one latest value.

No feature looks past ``fp`` or before ``fp - a + 1``: each statistic reads only
that window of its own series, so posting older rows changes nothing.
Training calls :func:`build_design` with every origin of the training data;
prediction calls it with the requested origins — the same code, so predicting a
window of the training data reproduces the training-time features exactly.

Target lags and statistics are divided by a per-origin *scale* (the mean
absolute target over the window) so that one global model serves series of any
magnitude; the model predicts the scaled target and the caller multiplies back.

The season (:mod:`tsengine.season`), the calendar of grid indices
(:mod:`tsengine.grid_calendar`) and the choice of training rows
(:mod:`tsengine.training_query`) live in their own modules; their names are
re-exported here, where callers have always imported them from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import polars as pl

from tsengine.columns import FP as FP
from tsengine.columns import IDX, SID
from tsengine.columns import D as D
from tsengine.grid import OriginGrid
from tsengine.grid_calendar import calendar_parts as calendar_parts
from tsengine.grid_calendar import grid_timestamps as grid_timestamps
from tsengine.grid_calendar import index_values as index_values
from tsengine.layout import Design as Design
from tsengine.layout import Layout as Layout
from tsengine.season import season_length as season_length
from tsengine.season import seasonal_steps as seasonal_steps
from tsengine.spec import TimeSeriesSpec
from tsengine.timestep import TimeStep
from tsengine.training_query import MAX_ORIGINS_PER_SERIES as MAX_ORIGINS_PER_SERIES
from tsengine.training_query import dense_history as dense_history
from tsengine.training_query import targets_at as targets_at
from tsengine.training_query import too_short as too_short
from tsengine.training_query import training_query as training_query

__all__ = [
    "D",
    "FP",
    "CategoryMaps",
    "Design",
    "FeaturePlan",
    "Layout",
    "build_design",
    "calendar_parts",
    "grid_timestamps",
    "dense_history",
    "index_values",
    "relative_to_window",
    "season_length",
    "seasonal_steps",
    "targets_at",
    "too_short",
    "training_query",
]


_CALENDAR_BY_UNIT: dict[str, tuple[str, ...]] = {
    "second": ("second", "minute", "hour"),
    "minute": ("minute", "hour", "weekday"),
    "hour": ("hour", "weekday"),
    "day": ("weekday", "monthday", "month", "yearday"),
    "week": ("week", "month"),
    "month": ("month",),
    "quarter": ("quarter",),
    "year": (),
}

SCALE_FLOOR = 1e-9
# Up to this many rows, per-value Python and numpy beat a polars query, whose
# planning costs tens of microseconds whatever the size (see CategoryMaps.codes).
SMALL_ROWS = 4_096
# Window-relative KIA values beyond this are clipped (a flag that is almost never
# set in the window, a count waking up from zero).
RELATIVE_CLIP = 50.0

# Consecutive target lags at most [ours]: two seasons of daily, weekly, monthly
# and quarterly data fit well inside; sub-hourly cycles use the seasonal features.
MAX_LAGS = 60
# Lags of a numeric non-KIA feature in its richer block [ours]: a week of daily
# data; the block's window statistics carry anything longer.
DEFAULT_FEATURE_LAGS = 7
# A level of a known-in-advance categorical feature gets its own code only when
# training saw it on at least this many distinct timestamps [ours]; see
# CategoryMaps.learn.
MIN_LEVEL_DATES = 3


@dataclass(frozen=True, slots=True)
class FeaturePlan:
    """Which features a model computes; fixed at training, stored with it."""

    fdw: int
    lags: int
    windows: tuple[int, ...]
    season: int
    calendar: tuple[str, ...]
    known_in_advance: tuple[str, ...]
    features: tuple[str, ...]
    categorical: tuple[str, ...]
    with_series: bool = True
    # Numeric KIA values also relative to their window (see :func:`relative_to_window`);
    # False in plans stored before this feature existed, so their columns stay as fitted.
    kia_relative: bool = False
    # Each numeric non-KIA feature's richer block (see :meth:`with_feature_lags`):
    # lags 1..feature_lags and statistics over feature_windows.  Off by default and
    # in plans stored before it existed; a model turns it on when its fit says so.
    feature_lags: int = 0
    feature_windows: tuple[int, ...] = ()
    # The target's mean at its seasonal position over the window's seasons; False in
    # plans stored before it existed [measured: the accuracy benchmark's panels and code,
    # LightGBM alone, mean MASE over three held-out horizons: elecdaily 0.783 -> 0.731,
    # flights_hourly 0.681 -> 0.635, chicago_ridership 0.691 -> 0.681, births_us
    # 0.726 -> 0.723, flights_daily 0.750 -> 0.750; beyond the benchmark elecdemand 0.711 ->
    # 0.563 and txhousing 0.902 -> 0.831, but the two small daily panels pizzaplace 1.122 ->
    # 1.231 and hyndsight 0.803 -> 0.906; docs/status.md, "Forecast quality"].
    seasonal_mean: bool = False

    @classmethod
    def for_spec(cls, spec: TimeSeriesSpec) -> FeaturePlan:
        """The default plan for a spec: lags up to two seasons (at most :data:`MAX_LAGS`), a few windows.

        Long seasons (a day of 15-minute steps is 96) would otherwise give
        hundreds of lag columns; beyond :data:`MAX_LAGS` the seasonal value and
        the seasonal window statistics carry the cycle.
        """
        a = spec.fdw
        season = season_length(spec.time_step, a)
        lags = min(a, max(2 * season, 7), MAX_LAGS)
        windows = tuple(sorted({w for w in (max(season, 3), 2 * max(season, 3), a) if 2 <= w <= a}))
        return cls(
            fdw=a,
            lags=lags,
            windows=windows,
            season=season,
            calendar=_CALENDAR_BY_UNIT[spec.time_step.unit],
            known_in_advance=spec.known_in_advance,
            features=spec.features,
            categorical=spec.categorical,
            with_series=spec.series_id_column is not None,
            kia_relative=True,
            seasonal_mean=season > 1,
        )

    @property
    def numeric_known_in_advance(self) -> tuple[str, ...]:
        """KIA features that get a window-relative column."""
        if not self.kia_relative:
            return ()
        return tuple(k for k in self.known_in_advance if k not in self.categorical)

    @property
    def numeric_features(self) -> tuple[str, ...]:
        """Non-KIA features that are numbers: the ones a richer block can describe."""
        return tuple(f for f in self.features if f not in self.categorical)

    def with_feature_lags(self, lags: int) -> FeaturePlan:
        """This plan with (``lags > 0``) or without (``0``) the numeric non-KIA features' richer block.

        The block adds, per numeric non-KIA feature ``f``, ``f (lag j)`` for
        ``j = 1..lags`` (the value ``j`` steps before the forecast point; ``f
        (last)`` is the latest) and, for each of the target's windows ``w``,
        ``f (mean w)`` (not for the whole FDW: that is ``f (mean)``) and ``f (std
        w)``: the feature's recent path, not only where it stands.  Lags stop
        inside the FDW.  A plan without numeric non-KIA features never has one.
        """
        lags = min(lags, self.fdw - 1) if self.numeric_features else 0
        windows = self.windows if lags > 0 else ()
        return replace(self, feature_lags=max(lags, 0), feature_windows=windows)

    def _feature_block(self, f: str) -> list[str]:
        """Names of feature ``f``'s columns, in column order."""
        if f in self.categorical:
            return [f"{f} (last)"]
        out = [f"{f} (last)", f"{f} (mean)"]
        out += [f"{f} (lag {j})" for j in range(1, self.feature_lags + 1)]
        for w in self.feature_windows:
            out += [f"{f} (mean {w})"] if w != self.fdw else []
            out.append(f"{f} (std {w})")
        return out

    @property
    def names(self) -> list[str]:
        """Model input names, in column order; readable for explanations."""
        out = ["forecast distance"]
        out += [f"target (lag {j})" for j in range(self.lags)]
        for w in self.windows:
            out += [f"target (mean {w})", f"target (std {w})"]
        out += ["target (last)", "target (seasonal)"]
        out += ["target (seasonal mean)"] if self.seasonal_mean else []
        out += ["history rows"]
        out += [f"calendar {c}" for c in self.calendar]
        out += list(self.known_in_advance)
        out += [f"{k} (vs window)" for k in self.numeric_known_in_advance]
        for f in self.features:
            out += self._feature_block(f)
        if self.with_series:
            out.append("series id")
        return out

    @property
    def categorical_names(self) -> list[str]:
        """Names among :attr:`names` that LightGBM treats as categories."""
        cats = [k for k in self.known_in_advance if k in self.categorical]
        cats += [f"{f} (last)" for f in self.features if f in self.categorical]
        if self.with_series:
            cats.append("series id")
        return cats

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "fdw": self.fdw,
            "lags": self.lags,
            "windows": list(self.windows),
            "season": self.season,
            "calendar": list(self.calendar),
            "known_in_advance": list(self.known_in_advance),
            "features": list(self.features),
            "categorical": list(self.categorical),
            "with_series": self.with_series,
            "kia_relative": self.kia_relative,
            "feature_lags": self.feature_lags,
            "feature_windows": list(self.feature_windows),
            "seasonal_mean": self.seasonal_mean,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeaturePlan:
        """Inverse of :meth:`to_dict`."""
        return cls(
            fdw=int(data["fdw"]),
            lags=int(data["lags"]),
            windows=tuple(int(w) for w in data["windows"]),
            season=int(data["season"]),
            calendar=tuple(data["calendar"]),
            known_in_advance=tuple(data["known_in_advance"]),
            features=tuple(data["features"]),
            categorical=tuple(data["categorical"]),
            with_series=bool(data["with_series"]),
            kia_relative=bool(data.get("kia_relative", False)),
            feature_lags=int(data.get("feature_lags", 0)),
            feature_windows=tuple(int(w) for w in data.get("feature_windows", ())),
            seasonal_mean=bool(data.get("seasonal_mean", False)),
        )


@dataclass(frozen=True, slots=True)
class CategoryMaps:
    """String → integer codes for categorical inputs, learnt at training.

    Unseen values map to missing, which LightGBM routes like rare categories:
    a new store or a new promotion type is served, not rejected.
    """

    maps: dict[str, dict[str, int]] = field(default_factory=dict)
    # Each column's keys and codes as Series, built on first use: replace_strict
    # would otherwise turn a thousand-series mapping into Series on every request.
    _series: dict[str, tuple[pl.Series, pl.Series]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def learn(cls, frame: pl.DataFrame, columns: list[str], *, dated: tuple[str, ...] = ()) -> CategoryMaps:
        """Codes in order of first appearance for each column.

        A column of ``dated`` (a known-in-advance category: an event name, a
        promotion type) codes only the levels seen on at least
        :data:`MIN_LEVEL_DATES` distinct timestamps of ``frame`` (its ``__i``);
        rarer levels are unseen, i.e. missing.  Rows do not measure the
        evidence here: one date's level repeats in every series and origin.  A
        public holiday recurs once a year, so one to three years of daily
        history show each name once or twice; the trees learn those days'
        weekday and noise under the name, apply them to the next Independence
        Day on another weekday, and route a name they never coded like an
        ordinary day.  Without the name the row still carries the event count
        and the days to and from it, which every event of the history teaches
        [measured, LightGBM alone, mean MASE over 3 held-out horizons:
        chicago_ridership 0.839 with every name coded, 0.812 with names seen
        on 2+ dates, 0.704 on 3+ (no name of its two years qualifies; its
        4 July 2016 went from a Monday's 75 to 31, actual 23); elecdaily
        0.819 -> 0.783].
        """
        maps: dict[str, dict[str, int]] = {}
        for col in columns:
            if col in dated:
                counts = (
                    frame.select(col, IDX)
                    .drop_nulls(col)
                    .group_by(col, maintain_order=True)
                    .agg(pl.col(IDX).n_unique().alias("dates"))
                )
                values = counts.filter(pl.col("dates") >= MIN_LEVEL_DATES).get_column(col).to_list()
            else:
                values = frame.get_column(col).drop_nulls().unique(maintain_order=True).to_list()
            maps[col] = {str(v): i for i, v in enumerate(values)}
        return cls(maps)

    def _pairs(self, column: str) -> tuple[pl.Series, pl.Series]:
        pairs = self._series.get(column)
        if pairs is None:
            mapping = self.maps.get(column, {})
            pairs = (
                pl.Series(list(mapping), dtype=pl.String),
                pl.Series(list(mapping.values()), dtype=pl.Int64),
            )
            self._series[column] = pairs
        return pairs

    def encode(self, column: str, values: pl.Expr, *, unseen: float | None = None) -> pl.Expr:
        """Float codes of a string expression: unseen → ``unseen``, null → ``unseen`` (None: null)."""
        keys, codes = self._pairs(column)
        return values.cast(pl.String).replace_strict(keys, codes, default=unseen, return_dtype=pl.Float64)

    def codes(self, column: str, values: pl.Series, *, unseen: float | None = None) -> np.ndarray:
        """:meth:`encode` of a Series, as float codes (NaN for null).

        Up to :data:`SMALL_ROWS` values, one dict lookup each: cheaper than
        polars building a hash table of the whole mapping for a few rows.
        """
        if values.len() > SMALL_ROWS:
            return (
                values.to_frame(column)
                .select(self.encode(column, pl.col(column), unseen=unseen))
                .to_series()
                .to_numpy()
                .astype(np.float64)
            )
        mapping = self.maps.get(column, {})
        fill = math.nan if unseen is None else unseen
        text = values if values.dtype == pl.String else values.cast(pl.String)
        return np.array([mapping.get(v, fill) for v in text.to_list()], dtype=np.float64)

    def to_dict(self) -> dict[str, dict[str, int]]:
        """JSON form."""
        return self.maps


def relative_to_window(grid: OriginGrid, name: str, value: np.ndarray) -> np.ndarray:
    """A KIA value at the target time as a change from its window mean, per unit of its mean size.

    "20 % more flights scheduled than lately" means the same for a small and a
    large airport, where the raw count does not, and the same in any unit.  A
    window of zeros makes any other value an unbounded change, clipped like a
    very large one (a promotion after none lately); 0 when the window holds no
    value or nothing changed.
    """
    size = grid.mean(name, absolute=True)
    change = value - grid.mean(name)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.where(change == 0, 0.0, change / np.where(size > SCALE_FLOOR, size, 0.0))
    rel = np.nan_to_num(rel, nan=0.0, posinf=RELATIVE_CLIP, neginf=-RELATIVE_CLIP)
    return np.asarray(np.clip(rel, -RELATIVE_CLIP, RELATIVE_CLIP))


_UNSEEN = -1.0  # a category code no category has; mapped back to NaN after "last"


def build_design(
    history: pl.DataFrame,
    query: pl.DataFrame,
    plan: FeaturePlan,
    step: TimeStep,
    maps: CategoryMaps,
    *,
    with_target: bool = False,
    layout: Layout | None = None,
    scales: np.ndarray | None = None,
) -> Design:
    """Features for every query row, in query order.

    Origin statistics come from an :class:`~tsengine.grid.OriginGrid` (numpy over
    a flat dense layout); calendar parts from one small polars query per
    distinct target index; KIA values and category codes from the query's
    columns.  The matrix is filled column by column in place, so no second
    copy of it is ever alive.

    Args:
        history: canonical history rows (targets after a row's own forecast point
            are never read: every statistic looks backwards from ``fp``).
        query: ``__sid``, ``__fp``, ``__d``, ``__i`` and the KIA values at ``__i``.
        plan: the feature plan.
        step: the time step (for calendar parts).
        maps: category codes.
        with_target: also return the target ``y[__i]`` (training).
        layout: the request's window layout of ``history`` around ``query``
            (same window length), else laid out here.
        scales: per query row, a scale to use instead of the window's mean
            absolute target (NaN: the window's); see
            :class:`~tsengine.models.lgbm.LightGBMSeriesScaleModel`.
    """
    fp = query.get_column(FP).to_numpy().astype(np.int64)
    d = query.get_column(D).to_numpy().astype(np.int64)
    cats = [f for f in plan.features if f in plan.categorical]
    relative = plan.numeric_known_in_advance
    columns = (*plan.features, *relative)
    if layout is not None and layout.fits(history, query, plan.fdw):
        sources = {f: _encoded(history, maps, f) for f in cats}
        grid = layout.grid(columns, sources=sources, tag=id(maps))
    else:
        if cats:
            history = history.with_columns(maps.encode(f, pl.col(f), unseen=_UNSEEN) for f in cats)
        grid = OriginGrid.build(history, query.get_column(SID), fp, plan.fdw, columns)
    level = grid.mean(absolute=True)
    scale = np.where(level > SCALE_FLOOR, level, 1.0)
    if scales is not None:  # a scale fixed per series at training; the window's where there is none
        scale = np.where(np.isfinite(scales) & (scales > SCALE_FLOOR), scales, scale)
    last = grid.last()
    offset = seasonal_steps(d, plan.season)  # steps back to the target's seasonal position
    seasonal = grid.back(offset)
    x = np.empty((query.height, len(plan.names)))
    filled = 0

    def put(column: np.ndarray) -> None:
        nonlocal filled
        x[:, filled] = column
        filled += 1

    put(d)
    # Lags and the seasonal value read a gap as the latest value before it (OriginGrid.carried).
    if query.height <= SMALL_ROWS:  # all lags at once, lag j at [:, j]
        x[:, filled : filled + plan.lags] = grid.carried(np.arange(plan.lags)[None, :]) / scale[:, None]
        filled += plan.lags
    else:  # column by column: no (rows x lags) temporaries
        for j in range(plan.lags):
            put(grid.carried(np.full(query.height, j)) / scale)
    for w in plan.windows:
        put(grid.mean(width=w) / scale)
        put(grid.std(width=w) / scale)
    put(last / scale)
    put(grid.carried(offset) / scale)
    if plan.seasonal_mean:
        put(grid.seasonal_mean(offset, plan.season) / scale)
    put(grid.count())
    if plan.calendar:
        for part in calendar_parts(step, plan.calendar, query.get_column(IDX).to_numpy()):
            put(part)
    for k in plan.known_in_advance:
        values = query.get_column(k)
        put(maps.codes(k, values) if k in plan.categorical else values.cast(pl.Float64).to_numpy())
    if relative:
        for k in relative:
            known = query.get_column(k).cast(pl.Float64).to_numpy()
            put(relative_to_window(grid, k, known))
    for f in plan.features:
        if f in plan.categorical:
            code = grid.last(f)
            put(np.where(code == _UNSEEN, np.nan, code))
        else:
            put(grid.last(f))
            put(grid.mean(f))
            for j in range(1, plan.feature_lags + 1):
                put(grid.lag(j, f))
            for w in plan.feature_windows:
                if w != plan.fdw:
                    put(grid.mean(f, width=w))
                put(grid.std(f, width=w))
    if plan.with_series:
        put(maps.codes(SID, query.get_column(SID)))
    assert filled == x.shape[1], (filled, x.shape)
    target = targets_at(history, query) if with_target else None
    return Design(x=x, scale=scale, last=last, seasonal=seasonal, y=target)


def _encoded(history: pl.DataFrame, maps: CategoryMaps, column: str) -> pl.Series:
    """A categorical history column as float codes, unseen values as :data:`_UNSEEN`."""
    return pl.Series(column, maps.codes(column, history.get_column(column), unseen=_UNSEEN))
