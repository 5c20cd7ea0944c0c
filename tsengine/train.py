"""Data → spec + backtested, selected, fitted model → :class:`Deployment`."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import numbers
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

import tsengine
from tsengine.backtest import (
    Backtest,
    auto_origins,
    backtest_origins,
    window_that_fits,
)
from tsengine.candidates import ENSEMBLE_SIZE as ENSEMBLE_SIZE  # re-exported: its old home
from tsengine.candidates import Progress, fit_candidates
from tsengine.closures import check_mode as check_closures
from tsengine.closures import close_holidays
from tsengine.cluster_train import ClusterTraining
from tsengine.datetimes import utc_offset_minutes
from tsengine.deployment import Deployment, backtest_trace
from tsengine.errors import ParameterError, TrainingDataError, short_list
from tsengine.events import EVENT_COLUMNS, EventCalendar, event_flags, weigh_events, with_events
from tsengine.events import model_spec as event_model_spec
from tsengine.intervals import DEFAULT_PERCENTILE, IntervalTable, fit_intervals, random_walk_intervals
from tsengine.io import to_polars
from tsengine.models import MODELS, EnsembleModel, PerSeriesModel
from tsengine.monitoring.drift import baselines, feature_baseline
from tsengine.nowcast import forecast_shift, model_spec, model_window, to_user_rows
from tsengine.season import season_length
from tsengine.select import choose, rank
from tsengine.spec import TimeSeriesSpec, default_windows, min_history_for
from tsengine.timestep import TimeStep, infer_time_step
from tsengine.validate import (
    IDX,
    SID,
    TIME,
    Canonical,
    Y,
    as_number,
    canonicalize,
    locate_on_grid,
)

__all__ = ["DEFAULT_MODELS", "train"]

DEFAULT_MODELS: tuple[str, ...] = (
    "lightgbm",
    "lightgbm_diff",
    "linear",
    "ets",
    "theta",
    "arima",
    "seasonal_naive",
    "ensemble",
    "per_series",
)


def default_id(target: str) -> str:
    """``<target>-forecast`` with what a registry id cannot hold replaced by ``-`` (``Total Sales``)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", target).strip("-._")[:100]
    return f"{slug or 'target'}-forecast"


def _series_type(column: pl.Series) -> str:
    if column.dtype.is_integer():
        return "int"
    if column.dtype.is_float():
        return "float"
    return "str"


def _split_features(frame: pl.DataFrame, columns: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Numeric and categorical feature names (strings that are not all numbers)."""
    numeric, categorical = [], []
    for c in columns:
        if c not in frame.columns:
            continue
        col = frame.get_column(c)
        if (
            col.dtype.is_numeric()
            or col.dtype == pl.Boolean
            or col.dtype == pl.String
            and as_number(col).null_count() == col.null_count()
        ):
            numeric.append(c)
        else:
            categorical.append(c)
    return tuple(numeric), tuple(categorical)


def _window(value: Sequence[int] | None, default: tuple[int, int], name: str) -> tuple[int, int]:
    if value is None:
        return default
    if len(value) != 2:
        msg = f"{name} takes two integers, got {list(value)!r}"
        raise ParameterError(msg)
    return int(value[0]), int(value[1])


def _kia_fill(
    canon: pl.DataFrame, numeric: tuple[str, ...], categorical: tuple[str, ...], blank: tuple[str, ...]
) -> dict[str, Any]:
    """Training median (numeric) or mode (categorical) of each KIA feature.

    For a categorical feature with blanks (``blank``) the blank counts as a
    level: an event name is blank on most days, and its mode is then "no event".
    """
    fill: dict[str, Any] = {}
    for k in numeric:
        median = canon.get_column(k).median()
        fill[k] = float(median) if median is not None else 0.0  # type: ignore[arg-type]
    observed = canon.filter(pl.col(Y).is_not_null()) if categorical else canon
    for k in categorical:
        values = observed.get_column(k)
        if k not in blank:
            values = values.drop_nulls()
        counts = values.value_counts(name="__n").sort(["__n", k], descending=[True, False])  # ties: first
        fill[k] = counts.item(0, k) if counts.height else None
    return fill


def _kia_blank(canon: pl.DataFrame, categorical: tuple[str, ...]) -> tuple[str, ...]:
    """Categorical KIA features blank on some training rows with a target (see ``TimeSeriesSpec.kia_blank``)."""
    observed = canon.filter(pl.col(Y).is_not_null())
    return tuple(k for k in categorical if observed.get_column(k).null_count() > 0)


@dataclass(frozen=True, slots=True)
class _Prepared:
    """The training data validated and placed on its time grid (the stages after read it)."""

    canonical: Canonical
    canon: pl.DataFrame
    step: TimeStep
    kia_num: tuple[str, ...]
    kia_cat: tuple[str, ...]
    feat_cat: tuple[str, ...]
    dropped: str | None = None  # the rows without a target left out where the grid is closed


def _check_arguments(
    target: str,
    datetime_column: str,
    series_id_column: str | None,
    known_in_advance: Sequence[str],
    features: Sequence[str],
    models: Sequence[str] | None,
    interval_percentile: int | Sequence[int] | None,
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[int, ...]]:
    """Stage 1: the arguments alone (before any data is read): KIA, other features, candidates, percentiles."""
    kia = tuple(known_in_advance)
    other = tuple(f for f in features if f not in kia)
    for name in (*kia, *other):
        if name in (target, datetime_column, series_id_column):
            msg = f"feature {name!r} is also the target, datetime or series id column"
            raise ParameterError(msg)
    candidates = tuple(models) if models else DEFAULT_MODELS
    unknown = [m for m in candidates if m not in MODELS]
    if unknown:
        msg = f"unknown model(s) {unknown}; choose from {sorted(MODELS)}"
        raise ParameterError(msg)
    combining = [m for m in candidates if m in (EnsembleModel.kind, PerSeriesModel.kind)]
    if combining and len(candidates) - len(combining) < 2:
        msg = f"models {combining} combine other models: name at least two others too, got {list(candidates)}"
        raise ParameterError(msg)
    return kia, other, candidates, _percentiles(interval_percentile)


def _percentiles(interval_percentile: int | Sequence[int] | None) -> tuple[int, ...]:
    """The interval percentiles asked for, the deployment's own first, each once (none: no intervals)."""
    if interval_percentile is None:
        return ()
    given: Any = interval_percentile  # checked value by value: callers pass numpy ints, floats, text
    several = isinstance(given, Sequence) and not isinstance(given, str)
    asked: tuple[Any, ...] = tuple(given) if several else (given,)
    for p in asked:
        if isinstance(p, bool) or not isinstance(p, numbers.Integral) or not 1 <= int(p) <= 99:
            msg = f"interval percentile must be an integer between 1 and 99, got {p!r}"
            raise ParameterError(msg)
    return tuple(dict.fromkeys(int(p) for p in asked))


def _prepare(
    frame: pl.DataFrame,
    target: str,
    datetime_column: str,
    series_id_column: str | None,
    kia: tuple[str, ...],
    other: tuple[str, ...],
) -> _Prepared:
    """Stage 2: validate the rows, infer the time step and place them on the grid."""
    kia_num, kia_cat = _split_features(frame, kia)
    feat_num, feat_cat = _split_features(frame, other)
    canonical = canonicalize(
        frame,
        datetime_column=datetime_column,
        target=target,
        series_id_column=series_id_column,
        numeric_features=kia_num + feat_num,
        string_features=kia_cat + feat_cat,
        what="the training data",
    )
    canon = canonical.frame
    if canon.get_column(Y).drop_nulls().len() == 0:
        msg = f"target column {target!r} has no values"
        raise TrainingDataError(msg)
    step = infer_time_step(
        canon,
        ts_col=TIME,
        series_col=SID,
        column=datetime_column,
        utc_offset_minutes=utc_offset_minutes(canonical.utc_offset),
        target_col=Y,
    )
    placed = locate_on_grid(canon, step, datetime_column=datetime_column, series_label=series_id_column or "")
    return _Prepared(canonical, placed.frame, step, kia_num, kia_cat, feat_cat, placed.note)


def _close_holidays(
    data: _Prepared,
    events: EventCalendar | None,
    mode: str,
    datetime_column: str,
    series_id_column: str | None,
) -> tuple[_Prepared, EventCalendar | None]:
    """Stage 2b: the calendar's events the data was closed on come off the grid (:mod:`tsengine.closures`).

    Rows without a target on a closed day are left out and named (see :func:`locate_on_grid`).
    """
    step, events = close_holidays(events, data.step, data.canon, data.canonical.utc_offset, mode)
    if step == data.step:
        return data, events
    placed = locate_on_grid(
        data.canon.drop(IDX), step, datetime_column=datetime_column, series_label=series_id_column or ""
    )
    notes = "; ".join(n for n in (data.dropped, placed.note) if n) or None
    return dataclasses.replace(data, canon=placed.frame, step=step, dropped=notes), events


def _spec(
    data: _Prepared,
    *,
    target: str,
    datetime_column: str,
    series_id_column: str | None,
    kia: tuple[str, ...],
    other: tuple[str, ...],
    feature_derivation_window: Sequence[int] | None,
    forecast_window: Sequence[int] | None,
    allow_partial_history: bool,
    series_type: str,
) -> tuple[TimeSeriesSpec, str | None]:
    """Stage 3: the windows (defaults by time step, shortened to fit short data) and the spec."""
    canon, step = data.canon, data.step
    blank = _kia_blank(canon, data.kia_cat)
    fdw_default, fw_default = default_windows(step)
    fdw = _window(feature_derivation_window, fdw_default, "feature derivation window")
    fw = _window(forecast_window, fw_default, "forecast window")
    if fdw[1] != 0 or fdw[0] >= 0:
        msg = f"feature derivation window must be [-a, 0] with a >= 1, got {list(fdw)}"
        raise ParameterError(msg)
    if not 0 <= fw[0] <= fw[1]:
        msg = f"forecast window must be [b, c] with 0 <= b <= c (b = 0: nowcasting), got {list(fw)}"
        raise ParameterError(msg)
    a = -fdw[0]
    window_note = None
    if feature_derivation_window is None and not allow_partial_history:
        fitted_a = window_that_fits(canon, a, model_window(fw), floor=max(4, season_length(step, a) + 1))
        if fitted_a < a:
            window_note = (
                f"default feature derivation window {a} shortened to {fitted_a} steps: "
                "the training data is too short to backtest the default"
            )
            a, fdw = fitted_a, (-fitted_a, 0)
    spec = TimeSeriesSpec(
        datetime_column=datetime_column,
        target=target,
        series_id_column=series_id_column,
        time_step=step,
        feature_derivation_window=fdw,
        forecast_window=fw,
        known_in_advance=kia,
        features=other,
        datetime_format=data.canonical.datetime_format,
        allow_partial_history=allow_partial_history,
        min_history=min_history_for(a, allow_partial_history=allow_partial_history),
        series_id_type=series_type,
        utc_offset=data.canonical.utc_offset,
        kia_fill=_kia_fill(canon, data.kia_num, data.kia_cat, blank),
        kia_blank=blank,
        categorical=data.kia_cat + data.feat_cat,
    )
    return spec, window_note


def _intervals(
    best_rows: pl.DataFrame | None, spec: TimeSeriesSpec, percentiles: tuple[int, ...]
) -> tuple[tuple[IntervalTable, ...], bool]:
    """Stage 5: conformal intervals at each percentile from the chosen model's backtest residuals.

    Returns the tables (in the order asked) and whether they fell back to a random walk.
    """
    if not percentiles:
        return (), False
    tables = [
        fit_intervals(best_rows, spec.distances, p) if best_rows is not None else None for p in percentiles
    ]
    if any(t is None for t in tables):  # no backtest residual: uncalibrated, but never silently absent
        return tuple(random_walk_intervals(spec.distances, p) for p in percentiles), True
    return tuple(t for t in tables if t is not None), False


def _summary(
    canon: pl.DataFrame,
    step: TimeStep,
    origins: list[int],
    window_note: str | None,
    skipped: dict[str, str],
    fallback_intervals: bool,
    dropped_note: str | None = None,
) -> dict[str, Any]:
    """Stage 6a: what the training data was, for ``tsengine info`` and the pages."""
    first, last = canon.get_column(TIME).min(), canon.get_column(TIME).max()
    summary: dict[str, Any] = {
        "rows": canon.height,
        "series": canon.get_column(SID).n_unique(),
        "start": first.isoformat() if isinstance(first, dt.datetime) else None,
        "end": last.isoformat() if isinstance(last, dt.datetime) else None,
        "time_step": step.describe(),
        "backtest_origins": [step.timestamp_of(o).isoformat() for o in origins],
        "last_index": int(canon.get_column(IDX).max()),  # type: ignore[arg-type]
        # A target never negative in training (counts, sales) is never forecast below 0.
        "nonnegative": bool(canon.get_column(Y).min() >= 0),  # type: ignore[operator]
    }
    if window_note:
        summary["window_note"] = window_note
    if dropped_note:
        summary["closed_rows_note"] = dropped_note
    if skipped:
        summary["skipped_models"] = skipped
    if fallback_intervals:
        summary["intervals_note"] = "random-walk intervals: the backtest left no residuals to calibrate on"
    return summary


def _drift_baseline(
    rows: pl.DataFrame, target: str, features: tuple[str, ...], best_rows: pl.DataFrame | None
) -> dict[str, Any]:
    """Stage 6b: training distributions for data drift (see :mod:`tsengine.monitoring.drift`).

    Over the rows as posted (typed, before the grid adds empty rows).
    """
    return {
        "features": baselines(rows, features),
        "target": feature_baseline(rows.get_column(Y).alias(target)),
        # what target drift compares predictions with: the deployed model's own backtest
        # forecasts, which are smoother than the target itself
        **(
            {"predictions": feature_baseline(best_rows.get_column("yhat").alias("prediction"))}
            if best_rows is not None and "yhat" in best_rows.columns
            else {}
        ),
    }


def train(
    data: Any,
    *,
    target: str,
    datetime_column: str,
    series_id_column: str | None = None,
    known_in_advance: Sequence[str] = (),
    features: Sequence[str] = (),
    forecast_window: Sequence[int] | None = None,
    feature_derivation_window: Sequence[int] | None = None,
    models: Sequence[str] | None = None,
    deployment_id: str | None = None,
    allow_partial_history: bool = False,
    interval_percentile: int | Sequence[int] | None = DEFAULT_PERCENTILE,
    backtests: int | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    dask: Any = None,
    calendar: Any = None,
    holidays: str | None = None,
    closures: str = "auto",
) -> Deployment:
    """Train a time series deployment.

    Infers the time step and the datetime format, backtests every candidate model
    at rolling origins, combines the best few into an ensemble, keeps the
    ensemble unless a single model beats it significantly (see
    :mod:`tsengine.select`) and derives conformal intervals from the chosen
    model's backtest residuals.

    Args:
        data: a polars or pandas frame with the datetime, target, optional series
            id and feature columns.
        target: the target column.
        datetime_column: the datetime column.
        series_id_column: the series id column for multiseries data.
        known_in_advance: features whose future values are known and posted with
            forecast rows (promotions, holidays, prices).
        features: other features, used as of the forecast point only.
        forecast_window: ``(b, c)`` with ``0 <= b <= c``, default by time step (see README);
            ``b = 0`` nowcasts the forecast point's own row (see :mod:`tsengine.nowcast`).
        feature_derivation_window: ``(-a, 0)``, default by time step.
        models: candidate model kinds (default: all of :data:`DEFAULT_MODELS`).
        deployment_id: the id to store it under (default: derived from the target).
        allow_partial_history: serve series with as little as one history row.
        interval_percentile: width of prediction intervals; None disables them.
            Several (``(80, 50, 95)``) give the deployment an interval at each: the
            first is its own (``predictionIntervalLow``/``High``, what monitoring
            scores), the others come as ``predictionIntervalLow_<p>``/``High_<p>``.
        backtests: number of rolling origins (default: enough for about 60
            series windows, 3 to 8; see :func:`tsengine.backtest.auto_origins`).
        seed: LightGBM seed; the same data and seed give the same model.
        progress: called with a short text at each stage (the CLI's progress bar).
        dask: a ``distributed.Client``: fit and backtest the candidates on its
            cluster (per-series models per partition of series, global ones on
            one worker; see :mod:`tsengine.cluster_train`); the result equals a
            single-process training's.
        calendar: dated events (a CSV path or a frame: ``date, event name[,
            series id]``), stored with the deployment; their features are known
            in advance and derived, never posted (see :mod:`tsengine.events`).
        holidays: ``COUNTRY`` or ``COUNTRY-SUBDIV`` (``US``, ``US-CA``, ``DE-BY``),
            or a financial market (``NYSE``): its holidays as calendar events.
            Events of the calendar the training data is closed on come off a
            daily or sub-daily grid (see :mod:`tsengine.closures`).
        closures: which calendar events come off the grid: ``auto`` (those
            the training data is closed on), ``all`` (every event of the
            calendar; training rows on one are refused) or ``none``.

    Raises:
        TrainingDataError, ValidationError, ParameterError: naming the problem.
    """
    say = progress or (lambda _msg: None)
    frame = to_polars(data)
    kia, other, candidates, percentiles = _check_arguments(
        target, datetime_column, series_id_column, known_in_advance, features, models, interval_percentile
    )
    events = EventCalendar.build(calendar, holidays=holidays, series_id_column=series_id_column)
    check_closures(closures)
    clash = [c for c in EVENT_COLUMNS if events is not None and c in (*kia, *other)]
    if clash:
        msg = f"features {clash} are named like the calendar's event features: rename them"
        raise ParameterError(msg)
    say("validating data")
    data_ = _prepare(frame, target, datetime_column, series_id_column, kia, other)
    data_, events = _close_holidays(data_, events, closures, datetime_column, series_id_column)
    spec, window_note = _spec(
        data_,
        target=target,
        datetime_column=datetime_column,
        series_id_column=series_id_column,
        kia=kia,
        other=other,
        feature_derivation_window=feature_derivation_window,
        forecast_window=forecast_window,
        allow_partial_history=allow_partial_history,
        series_type=_series_type(frame.get_column(series_id_column)) if series_id_column else "str",
    )
    spec = dataclasses.replace(spec, calendar=events)
    canon = with_events(data_.canon, events, data_.step, spec.utc_offset)
    # Models fit and backtest in model coordinates (FW [b+1, c+1] from the step before FP when
    # nowcasting, see tsengine.nowcast; calendar events among the KIA features); the backtest
    # rows come back in the deployment's.
    mspec = event_model_spec(model_spec(spec))
    n_origins = auto_origins(canon) if backtests is None else backtests
    origins = backtest_origins(canon, mspec, n_origins)
    cluster = ClusterTraining(dask, canon, mspec, origins, seed, say) if dask is not None else None
    # with a calendar or event flags among the KIA features, event periods count with their
    # long-run share (tsengine.events)
    flags = event_flags(canon, data_.kia_num)
    weigh = (lambda found: weigh_events(found, canon, flags)) if events is not None or flags else None
    fitted, results, skipped = fit_candidates(canon, mspec, candidates, origins, seed, say, cluster, weigh)
    results = [Backtest(r.model, to_user_rows(r.rows, spec)) for r in results]
    say("selecting the model, intervals")
    leaderboard = rank(results)
    choice = choose(results, leaderboard, ensemble=EnsembleModel.kind) if leaderboard else None
    best = choice.model if choice and choice.model in fitted else next(iter(fitted))
    model = fitted[best]
    best_rows = next((r.rows for r in results if r.model == best), None)
    tables, fallback_intervals = _intervals(best_rows, spec, percentiles)
    shown = [o + forecast_shift(spec) for o in origins]  # as forecast points
    summary = _summary(canon, data_.step, shown, window_note, skipped, fallback_intervals, data_.dropped)
    foreign = events.foreign_series(canon.get_column(SID)) if events is not None else {}
    if foreign:
        named = short_list([f"{sid!r} ({n})" for sid, n in foreign.items()], quote=False)
        summary["calendar_note"] = (
            f"calendar events for series the training data does not have: {named}; "
            "they apply only to series posted with that id"
        )
    if flags:
        summary["event_flags"] = list(flags)  # KIA columns that weighted the backtest as events
    metadata = {
        "model_id": hashlib.sha1(model.to_bytes()).hexdigest()[:24],  # noqa: S324 - an id, not security
        "model_kind": model.kind,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "tsengine_version": tsengine.__version__,
        "training": summary,
        "leaderboard": leaderboard,
        "selection": {"model": best, "reason": choice.reason if choice else "only candidate"},
        "model": model.describe(),
        "drift_baseline": _drift_baseline(data_.canonical.frame, target, (*kia, *other), best_rows),
    }
    return Deployment(
        id=deployment_id or default_id(target),
        spec=spec,
        model=model,
        intervals=tables[0] if tables else None,
        more_intervals=tables[1:],
        metadata=metadata,
        backtest_trace=backtest_trace(best_rows, spec)
        if best_rows is not None and best_rows.height
        else None,
    )
