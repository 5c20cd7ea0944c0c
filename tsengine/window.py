"""Which (series, forecast point, distance) triples a request predicts.

Forecast mode: one forecast point (given, or the latest timestamp with a target),
distances b..c for every series, with missing forecast rows generated
(*autoexpansion*).  Historical mode: every posted row in ``[start, end)`` at every
distance whose forecast point leaves enough history.  Both check the
known-in-advance (KIA) values of the predicted rows and either fail, naming the
feature, series and timestamps, or impute them when the caller relaxes the check.

All of it is integer arithmetic on grid indices (see :mod:`tsengine.timestep`)
and polars joins, so it costs the same for one series or ten thousand.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from tsengine.errors import (
    InsufficientHistoryError,
    KnownInAdvanceError,
    OffGridError,
    ValidationError,
    short_list,
)
from tsengine.features import FP, D
from tsengine.grid import series_codes
from tsengine.spec import TimeSeriesSpec
from tsengine.timestep import format_datetimes
from tsengine.validate import IDX, ORIG, ROW, SID, TIME, Y, format_iso, sid_codes

__all__ = ["Window", "forecast_window", "historical_window", "series_order"]


@dataclass(frozen=True, slots=True)
class Window:
    """What to predict and from what.

    Attributes:
        query: ``__sid``, ``__fp``, ``__d``, ``__i``, ``__row``, ``__orig`` and the
            KIA values at ``__i``, in output order.
        history: the canonical rows models may read (each model reads, per query
            row, only rows at or before that row's forecast point).
        warnings: human-readable notes (e.g. imputed KIA values).
        codes: when known, an integer series code for each history row and each
            query row (one coding for both), so the request's window layout
            (:class:`tsengine.features.Layout`) need not hash the ids again.
    """

    query: pl.DataFrame
    history: pl.DataFrame
    warnings: tuple[str, ...] = ()
    codes: tuple[np.ndarray, np.ndarray] | None = field(default=None, compare=False, repr=False)


def _label(spec: TimeSeriesSpec, sid: str) -> str:
    return f"series {sid!r}" if spec.series_id_column else "the series"


def series_order(canon: pl.DataFrame) -> pl.DataFrame:
    """Series keys with their rank in order of first appearance in the input."""
    first = canon.get_column(SID).unique(maintain_order=True)
    return pl.DataFrame({SID: first, "__rank": np.arange(first.len(), dtype=np.int64)})


def _history_counts(canon: pl.DataFrame, pairs: pl.DataFrame, fdw: int) -> np.ndarray:
    """Observed targets in ``(fp - fdw, fp]`` for each ``(__sid, __fp)`` pair.

    One sorted key array and two binary searches: no per-series Python loop.
    """
    observed = canon.get_column(Y).is_not_null().to_numpy()
    if not observed.any() or pairs.height == 0:
        return np.zeros(pairs.height, dtype=np.int64)
    all_code, pair_code = series_codes(canon.get_column(SID), pairs.get_column(SID))
    obs_code, obs_idx = all_code[observed], canon.get_column(IDX).to_numpy()[observed]
    pair_fp = pairs.get_column(FP).to_numpy()
    lo = min(int(obs_idx.min()), int(pair_fp.min()) - fdw)
    span = max(int(obs_idx.max()), int(pair_fp.max())) - lo + 2
    obs_keys = np.sort(obs_code * span + (obs_idx - lo))
    keys = pair_code * span + (pair_fp - lo)
    upper = np.searchsorted(obs_keys, keys, side="right")
    lower = np.searchsorted(obs_keys, keys - fdw, side="right")
    return np.asarray((upper - lower).astype(np.int64))


def _observed(target: pl.Series) -> np.ndarray:
    """Rows whose target is not null (a NaN target counts as present, as in polars)."""
    if target.null_count() == 0:
        return np.ones(target.len(), dtype=bool)
    return np.asarray(target.is_not_null().to_numpy())


def _fmt_index(spec: TimeSeriesSpec, fmt: str, offset: str | None) -> pl.Expr:
    return format_datetimes(spec.time_step.from_index(pl.col(IDX)), fmt, utc_offset=offset)


def _index_labels(spec: TimeSeriesSpec, idx: np.ndarray, fmt: str, offset: str | None) -> pl.Series:
    """Grid indices written in the client's datetime format (autoexpanded rows' text).

    The common ISO layouts on a fixed step are written by numpy, which gives
    chrono's text for whole days or seconds of years 1000-9999; anything else
    is formatted by :func:`~tsengine.timestep.format_datetimes`.
    """
    if not spec.time_step.is_calendar:
        text = format_iso(spec.time_step.index_micros(idx), fmt)
        if text is not None:
            return pl.Series(ORIG, text.tolist(), dtype=pl.String)
    return pl.DataFrame({IDX: idx}).select(_fmt_index(spec, fmt, offset).alias(ORIG)).get_column(ORIG)


def forecast_point_index(
    spec: TimeSeriesSpec, idx: np.ndarray, observed: np.ndarray, forecast_point: dt.datetime | None
) -> int:
    """The grid index of the given forecast point, else of the latest row with a target.

    Shared by forecast mode and nowcasting (:mod:`tsengine.nowcast`, which
    predicts the step after an inferred one), so both refuse the same inputs
    with the same messages.

    Raises:
        OffGridError: a given forecast point is off the grid.
        InsufficientHistoryError: no row has a target to infer the forecast point from.
    """
    step = spec.time_step
    if forecast_point is None:
        if not observed.any():
            msg = (
                f"cannot infer a forecast point: no row has a value in target column {spec.target!r}; "
                "post history rows with the target filled in, or pass forecastPoint"
            )
            raise InsufficientHistoryError(msg)
        return int(idx[observed].max())
    found = step.index_of(forecast_point)
    if found is None:
        msg = (
            f"forecastPoint {forecast_point.isoformat()} is not on the deployment's "
            f"{step.describe()} grid; use a timestamp such as "
            f"{step.timestamp_of(step.to_index_floor(forecast_point)).isoformat()}"
        )
        raise OffGridError(msg)
    return found


def forecast_window(
    canon: pl.DataFrame,
    spec: TimeSeriesSpec,
    *,
    forecast_point: dt.datetime | None,
    relax_known_in_advance: bool,
    datetime_format: str,
    utc_offset: str | None,
    codes: np.ndarray | None = None,
) -> Window:
    """Forecast mode: one forecast point, distances b..c for every series.

    Integer arithmetic on the series codes (``codes``, from
    :func:`~tsengine.validate.locate_on_grid`; computed when None) and grid
    indices: a one-series request costs a few numpy calls, and autoexpanded
    rows' ``originalFormatTimestamp`` is formatted once per distance, not once
    per row.

    Raises:
        OffGridError: a given forecast point is off the grid.
        InsufficientHistoryError: naming series without enough history.
        KnownInAdvanceError: naming KIA features missing on forecast rows.
    """
    step = spec.time_step
    idx = canon.get_column(IDX).to_numpy()
    observed = _observed(canon.get_column(Y))
    fp = forecast_point_index(spec, idx, observed, forecast_point)
    if codes is None:
        codes = sid_codes(canon.get_column(SID))
    n_rows = canon.height
    n_codes = int(codes.max()) + 1
    # Series in order of first appearance: ``order[k]`` is the code of the k-th.
    first = np.full(n_codes, n_rows, dtype=np.int64)
    np.minimum.at(first, codes, np.arange(n_rows, dtype=np.int64))
    order = np.argsort(first, kind="stable")
    first_rows = first[order]
    inside = observed & (idx <= fp) & (idx > fp - spec.fdw)
    counts = np.bincount(codes[inside], minlength=n_codes)[order]
    if (counts < spec.min_history).any():
        fp_text = step.timestamp_of(fp).isoformat()
        sids = canon.get_column(SID)[first_rows]
        described = [
            f"{_label(spec, s)} has {n}"
            for s, n in zip(sids.to_list(), counts.tolist(), strict=True)
            if n < spec.min_history
        ]
        # A series that ended long before the others (a discontinued product) cannot be
        # forecast from this point at all: say the request may simply leave it out.
        leave_out = (
            " (or leave these series out of the request)" if (counts >= spec.min_history).any() else ""
        )
        msg = (
            f"not enough history before forecast point {fp_text}: {short_list(described, quote=False)} "
            f"target value(s) in the {spec.fdw}-step feature derivation window, the model needs "
            f"{spec.min_history}; post more history rows or choose an earlier forecast point{leave_out}"
        )
        raise InsufficientHistoryError(msg)
    stale = _stale_series(canon.get_column(SID), spec, idx, codes, first, inside, fp)
    b, c = spec.forecast_window
    distances = np.arange(b, c + 1, dtype=np.int64)
    n_series, n_d = order.size, distances.size
    n_query = n_series * n_d
    # series-major, distance-minor: query row k * n_d + j is series k at distance b + j
    slot_of = np.tile(np.arange(n_d), n_series)
    targets = np.tile(distances + fp, n_series)
    # Rows posted for the forecast window keep their row id, text and KIA values.
    posted = np.flatnonzero((idx >= fp + b) & (idx <= fp + c))
    rank = np.empty(n_codes, dtype=np.int64)
    rank[order] = np.arange(n_series, dtype=np.int64)
    slots = rank[codes[posted]] * n_d + (idx[posted] - fp - b)
    row = np.full(n_query, -1, dtype=np.int64)
    row[slots] = canon.get_column(ROW).to_numpy()[posted]
    generated = row < 0
    row[generated] = n_rows + np.arange(int(generated.sum()), dtype=np.int64)
    orig = _index_labels(spec, distances + fp, datetime_format, utc_offset)
    if n_series > 1:
        orig = orig[slot_of]  # indexing with numpy: a native take, no query
    if posted.size:
        orig = orig.scatter(slots, canon.get_column(ORIG)[posted])
    kia = list(spec.known_in_advance)
    kia_columns = []
    for k in kia:
        source = canon.get_column(k)
        column = pl.Series(k, [None], dtype=source.dtype).new_from_index(0, n_query)
        if posted.size:
            column = column.scatter(slots, source[posted])
        kia_columns.append(column)
    sid = canon.get_column(SID)
    if n_series == 1:  # one series: its id repeated, without a gather
        sid = sid.new_from_index(int(first_rows[0]), n_query)
    else:
        sid = sid[np.repeat(first_rows, n_d)]
    query = pl.DataFrame(
        [
            sid.alias(SID),
            pl.Series(FP, np.full(n_query, fp, dtype=np.int64)),
            pl.Series(D, np.tile(distances, n_series)),
            pl.Series(IDX, targets),
            pl.Series(ROW, row),
            orig.alias(ORIG),
            *kia_columns,
        ]
    )
    before = idx <= fp
    if bool(before.all()):
        history, history_codes = canon, codes
    else:
        history, history_codes = canon.filter(pl.Series(before)), codes[before]
    query, warnings = _check_known_in_advance(
        query, canon, spec, relax_known_in_advance, what="forecast rows", generated=generated
    )
    return Window(query, history, (*stale, *warnings), codes=(history_codes, np.repeat(order, n_d)))


# Series a warning names before it counts the rest.
_NAMED = 5


def _stale_series(
    sid: pl.Series,
    spec: TimeSeriesSpec,
    idx: np.ndarray,
    codes: np.ndarray,
    first: np.ndarray,
    inside: np.ndarray,
    fp: int,
) -> tuple[str, ...]:
    """A warning naming series without a target at the forecast origin, or none.

    A panel's forecast point is its latest target; a series that stopped
    earlier (a product no longer recorded, a late export) is forecast from a
    window whose last steps are missing, which its models read as they can
    (LightGBM's lags there are missing, a state-space model's last state is
    older), so its forecasts deserve a second look rather than silence.
    ``first`` is each series code's first row, ``inside`` marks the observed
    rows in the feature derivation window.
    """
    at_origin = np.bincount(codes[inside & (idx == fp)], minlength=first.size)
    stale = np.flatnonzero(at_origin == 0)
    if stale.size == 0:
        return ()
    stale = stale[np.argsort(first[stale], kind="stable")]  # in order of first appearance
    last = np.full(first.size, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last, codes[inside], idx[inside])
    shown = stale[:_NAMED]  # a message names a few; 10,000 stale series must not cost 10,000 strings
    step = spec.time_step
    described = []
    for s, k in zip(sid[first[shown]].to_list(), shown.tolist(), strict=True):
        gap = fp - int(last[k])
        when = step.timestamp_of(int(last[k])).isoformat()
        described.append(f"{_label(spec, s)} (last target {when}, {gap} step{'s' if gap > 1 else ''} before)")
    more = f" and {stale.size - shown.size} more series" if stale.size > shown.size else ""
    return (
        f"no target at the forecast origin {step.timestamp_of(fp).isoformat()} for "
        f"{', '.join(described)}{more}: such series are forecast from a history whose last steps "
        "are missing; post those steps, or forecast them from their own last timestamp",
    )


def historical_window(
    canon: pl.DataFrame,
    spec: TimeSeriesSpec,
    *,
    start: dt.datetime,
    end: dt.datetime,
    relax_known_in_advance: bool,
) -> Window:
    """Historical mode: posted rows in ``[start, end)`` at every usable distance.

    Raises:
        ValidationError: no posted row can be predicted in the range.
        KnownInAdvanceError: naming KIA features missing on predicted rows.
    """
    inside = canon.filter((pl.col(TIME) >= start) & (pl.col(TIME) < end))
    if inside.height == 0:
        msg = (
            f"the dataset has no rows in [{start.isoformat()}, {end.isoformat()}) "
            "(predictionsStartDate inclusive, predictionsEndDate exclusive)"
        )
        raise ValidationError(msg)
    order = series_order(canon)
    distances = pl.DataFrame({D: list(spec.distances)}, schema={D: pl.Int64})
    kia = list(spec.known_in_advance)
    pairs = (
        inside.select(SID, IDX, ROW, ORIG, *kia)
        .join(distances, how="cross")
        .with_columns((pl.col(IDX) - pl.col(D)).alias(FP))
    )
    usable = _history_counts(canon, pairs, spec.fdw) >= spec.min_history
    query = pairs.filter(pl.Series(usable))
    if query.height == 0:
        msg = (
            f"no row in [{start.isoformat()}, {end.isoformat()}) has enough history: every forecast "
            f"point needs {spec.min_history} target value(s) in the {spec.fdw} steps before it; "
            "post older history or move predictionsStartDate later"
        )
        raise InsufficientHistoryError(msg)
    query = query.join(order, on=SID, how="left").sort("__rank", IDX, D)
    query, warnings = _check_known_in_advance(
        query, canon, spec, relax_known_in_advance, what="predicted rows"
    )
    warnings = _unpredicted(pairs, usable, spec) + warnings
    return Window(query.drop("__rank").select(SID, FP, D, IDX, ROW, ORIG, *kia), canon, warnings)


def _unpredicted(pairs: pl.DataFrame, usable: np.ndarray, spec: TimeSeriesSpec) -> tuple[str, ...]:
    """A warning naming posted rows in the range that no distance could predict.

    Historical mode predicts a row at the distances whose forecast point has
    the minimum history; a series that starts inside the range (or stopped long
    before it) has rows with none, and those must not vanish from the answer
    without a word.
    """
    row = pairs.get_column(ROW).to_numpy()
    posted = np.bincount(row)
    predicted = np.bincount(row, weights=usable, minlength=posted.size)
    missed = np.flatnonzero((posted > 0) & (predicted == 0))
    if missed.size == 0:
        return ()
    rows = pairs.filter(pl.col(ROW).is_in(missed) & (pl.col(D) == spec.distances[0]))
    by_series = rows.group_by(SID, maintain_order=True).agg(
        pl.len().alias("n"),
        pl.col(ORIG).sort_by(IDX).first().alias("first"),
        pl.col(ORIG).sort_by(IDX).last().alias("last"),
    )
    described = [
        f"{_label(spec, sid)} ({n} from {first} to {last})" if n > 1 else f"{_label(spec, sid)} ({first})"
        for sid, n, first, last in by_series.iter_rows()
    ]
    return (
        f"{rows.height} posted row(s) in the range have too little history to be predicted at any "
        f"distance (each forecast point needs {spec.min_history} target value(s) in the {spec.fdw} "
        f"steps before it): {short_list(described, limit=3, quote=False)}",
    )


def _check_known_in_advance(
    query: pl.DataFrame,
    canon: pl.DataFrame,
    spec: TimeSeriesSpec,
    relax: bool,
    *,
    what: str,
    generated: np.ndarray | None = None,
) -> tuple[pl.DataFrame, tuple[str, ...]]:
    """Fail on, or impute, missing KIA values of the predicted rows.

    ``generated`` marks the rows the client did not post (autoexpanded); None
    means every row was posted.  A blank of a ``spec.kia_blank`` feature is
    missing only there: on a posted row it is the level training saw.
    """
    kia = list(spec.known_in_advance)
    if not kia:
        return query, ()
    gaps = {k: query.get_column(k).is_null() for k in kia}
    if spec.kia_blank:  # blank is missing only where nothing was posted
        made = pl.Series(np.zeros(query.height, dtype=bool) if generated is None else generated)
        gaps.update({k: gaps[k] & made for k in spec.kia_blank})
    missing = {k: int(gaps[k].sum()) for k in kia}
    absent = [k for k in kia if missing[k]]
    if not absent:
        return query, ()
    if not relax:
        bad = query.filter(pl.any_horizontal(gaps[k] for k in absent))
        by_series = bad.group_by(SID, maintain_order=True).agg(pl.col(ORIG))
        described = [
            f"{_label(spec, s)} at {short_list(times, limit=3)}" for s, times in by_series.head(3).iter_rows()
        ]
        more = f" ({bad.height} rows in {by_series.height} series)" if by_series.height > 3 else ""
        msg = (
            f"known-in-advance feature(s) {short_list(absent)} missing on {what}: "
            f"{'; '.join(described)}{more}. Forecast rows must carry every known-in-advance value: "
            "post the forecast rows with them, or pass relaxKnownInAdvanceFeaturesCheck=true to impute"
        )
        raise KnownInAdvanceError(msg)
    carried = [k for k in absent if k not in spec.kia_blank]  # the series' last value carries forward
    last_known = (
        canon.sort(SID, IDX)
        .group_by(SID)
        .agg(*(pl.col(k).drop_nulls().last().alias(f"__last_{k}") for k in carried))
    )
    # a blank-level feature (an event name) takes its training mode, not the series' last value
    filled = query.join(last_known, on=SID, how="left", maintain_order="left").with_columns(
        *(
            pl.when(gaps[k])
            .then(pl.lit(spec.kia_fill.get(k), dtype=query.schema[k]))
            .otherwise(pl.col(k))
            .alias(k)
            for k in absent
            if k in spec.kia_blank
        ),
        *(
            pl.coalesce(pl.col(k), pl.col(f"__last_{k}"), pl.lit(spec.kia_fill.get(k))).alias(k)
            for k in carried
        ),
    )
    filled = filled.drop([f"__last_{k}" for k in carried])
    counts = ", ".join(f"{k}: {missing[k]}" for k in absent)
    warning = (
        f"imputed missing known-in-advance values ({counts}) with each series' last known value, "
        "else the training median or mode (the mode, blank included, for features blank in training)"
    )
    return filled, (warning,)
