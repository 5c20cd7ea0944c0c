"""A deployment: spec + fitted model + metadata, and the prediction pipeline.

``predict`` orchestrates validate → window → model → intervals → rows; every
step lives in its own module, so this file only wires them together.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import polars as pl

from tsengine.backtest import origin_scale
from tsengine.events import model_spec as event_model_spec
from tsengine.events import with_events
from tsengine.explain import forecast_explanations
from tsengine.features import FP, D, Layout, grid_timestamps
from tsengine.humility import apply_humility, rules_from_metadata
from tsengine.intervals import IntervalTable, interval_columns
from tsengine.io import to_polars
from tsengine.models.base import ForecastModel, predict_on
from tsengine.models.registry import model_class
from tsengine.nowcast import forecast_shift, is_nowcast, model_spec, nowcast_window
from tsengine.options import PredictOptions
from tsengine.spec import TimeSeriesSpec
from tsengine.timestep import parse_timestamp
from tsengine.validate import IDX, ORIG, ROW, SID, canonicalize, locate_on_grid
from tsengine.window import Window, forecast_window, historical_window

__all__ = ["BACKTEST_FILE", "OUTPUT_COLUMNS", "Deployment", "Prediction", "backtest_trace"]

OUTPUT_COLUMNS = (
    "rowId",
    "seriesId",
    "forecastPoint",
    "timestamp",
    "forecastDistance",
    "originalFormatTimestamp",
    "prediction",
)
"""Columns of :meth:`Deployment.predict`, then ``predictionIntervalLow/High`` when on."""

MODEL_FILE = "model.bin"
BACKTEST_FILE = "backtest.parquet"
"""Optional: the chosen model's backtest forecasts, for charts; never read to predict."""
BACKTEST_TRACE_SERIES = 1000
_SERIES_DTYPES: dict[str, pl.DataType] = {
    "int": pl.Int64(),
    "float": pl.Float64(),
    "str": pl.String(),
}


@dataclass(frozen=True, slots=True)
class Prediction:
    """Output rows plus what the transport should tell the caller."""

    frame: pl.DataFrame
    warnings: tuple[str, ...] = ()
    interval_percentile: int | None = None
    # What was predicted from (time series only): the web page charts the history
    # and marks the query's known-in-advance events from it, without validating twice.
    window: Window | None = None


def _as_datetime(value: dt.datetime | dt.date | str | None, name: str) -> dt.datetime | None:
    return None if value is None else parse_timestamp(value, name=name)


@dataclass(frozen=True, slots=True)
class Deployment:
    """A stored forecasting deployment.

    Attributes:
        id: the deployment id (its folder name in the registry and its URL).
        spec: the frozen time series spec.
        model: the fitted model.
        intervals: conformal interval table, or None.
        more_intervals: tables at further percentiles (``--interval-percentile 50,80,95``),
            served beside ``intervals`` as ``predictionIntervalLow_<p>``/``High_<p>``.
        metadata: model id, creation time, training summary, leaderboard.
    """

    id: str
    spec: TimeSeriesSpec
    model: ForecastModel
    intervals: IntervalTable | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    more_intervals: tuple[IntervalTable, ...] = ()
    kind: str = "timeseries"
    # Written beside the model at save time, never loaded with it (see BACKTEST_FILE).
    backtest_trace: pl.DataFrame | None = field(default=None, compare=False, repr=False)

    @property
    def model_id(self) -> str:
        """Id of the fitted model (``X-DataRobot-Model-Id``)."""
        return str(self.metadata.get("model_id", ""))

    @property
    def image_columns(self) -> tuple[str, ...]:
        """Columns read as images: none in a time series deployment."""
        return ()

    def input_schema_overrides(self) -> dict[str, pl.DataType]:
        """CSV dtypes that keep datetimes and ids as written (validation normalises ``3.0`` to ``3``)."""
        out: dict[str, pl.DataType] = {self.spec.datetime_column: pl.String()}
        if self.spec.series_id_column:
            kind = self.spec.series_id_type
            out[self.spec.series_id_column] = pl.String() if kind == "int" else _SERIES_DTYPES[kind]
        for c in self.spec.categorical:
            out[c] = pl.String()
        return out

    def to_files(self) -> tuple[dict[str, Any], dict[str, bytes]]:
        """Metadata and model bytes for the registry (no pickle anywhere)."""
        meta = {
            "model_kind": self.model.kind,
            "spec": self.spec.to_dict(),
            "intervals": self.intervals.to_dict() if self.intervals else None,
            **({"more_intervals": [t.to_dict() for t in self.more_intervals]} if self.more_intervals else {}),
            "metadata": dict(self.metadata),
        }
        files = {MODEL_FILE: self.model.to_bytes()}
        if self.backtest_trace is not None:
            sink = io.BytesIO()
            self.backtest_trace.write_parquet(sink, compression="zstd")
            files[BACKTEST_FILE] = sink.getvalue()
        return meta, files

    @classmethod
    def from_files(cls, meta: dict[str, Any], read: Callable[[str], bytes]) -> Deployment:
        """Inverse of :meth:`to_files`; ``read(name)`` returns a stored file's bytes."""
        return cls(
            id=meta["id"],
            spec=TimeSeriesSpec.from_dict(meta["spec"]),
            model=model_class(meta["model_kind"]).from_bytes(read(MODEL_FILE)),
            intervals=IntervalTable.from_dict(meta["intervals"]) if meta.get("intervals") else None,
            metadata=meta.get("metadata", {}),
            more_intervals=tuple(IntervalTable.from_dict(t) for t in meta.get("more_intervals") or ()),
        )

    def info(self) -> dict[str, Any]:
        """A JSON-able summary for ``tsengine info`` and ``/info`` routes."""
        spec = self.spec
        return {
            "id": self.id,
            "kind": self.kind,
            "model_id": self.model_id,
            "target": spec.target,
            "datetime_column": spec.datetime_column,
            "series_id_column": spec.series_id_column,
            "time_step": spec.time_step.describe(),
            "feature_derivation_window": list(spec.feature_derivation_window),
            "forecast_window": list(spec.forecast_window),
            "known_in_advance": list(spec.known_in_advance),
            **({"known_in_advance_blank": list(spec.kia_blank)} if spec.kia_blank else {}),
            "features": list(spec.features),
            "calendar": spec.calendar.describe() if spec.calendar is not None else None,
            "datetime_format": spec.datetime_format,
            "min_history": spec.min_history,
            "interval_percentile": self.intervals.percentile if self.intervals else None,
            "intervals": self.intervals.describe() if self.intervals else None,
            **(
                {
                    "interval_percentiles": list(self.interval_percentiles),
                    "more_intervals": [t.describe() for t in self.more_intervals],
                }
                if self.more_intervals
                else {}
            ),
            **{k: v for k, v in self.metadata.items() if k not in {"model_id", "drift_baseline"}},
        }

    def predict(
        self,
        frame: Any,
        *,
        forecast_point: dt.datetime | dt.date | str | None = None,
        start: dt.datetime | dt.date | str | None = None,
        end: dt.datetime | dt.date | str | None = None,
        relax_known_in_advance: bool = False,
    ) -> pl.DataFrame:
        """Forecast the posted history.

        Forecast mode (no range): one row per series × distance from the forecast
        point (given, or the latest timestamp with a target), generating missing
        forecast rows.  Historical mode (``start`` and ``end``): every posted row
        in ``[start, end)`` at every distance with enough history.

        Returns:
            Columns :data:`OUTPUT_COLUMNS`, plus ``predictionIntervalLow`` and
            ``predictionIntervalHigh`` when the deployment has intervals.

        Raises:
            ValidationError, ParameterError: naming what is wrong.
        """
        options = PredictOptions(
            forecast_point=_as_datetime(forecast_point, "forecastPoint"),
            start=_as_datetime(start, "predictionsStartDate"),
            end=_as_datetime(end, "predictionsEndDate"),
            relax_known_in_advance=relax_known_in_advance,
        )
        return self.predict_result(frame, options).frame

    def window(self, frame: pl.DataFrame, options: PredictOptions) -> Window:
        """Validate the frame and decide what to predict."""
        spec = self.spec
        canonical = canonicalize(
            frame,
            datetime_column=spec.datetime_column,
            target=spec.target,
            series_id_column=spec.series_id_column,
            numeric_features=tuple(
                c for c in (*spec.known_in_advance, *spec.features) if c not in spec.categorical
            ),
            string_features=spec.categorical,
            preferred_format=spec.datetime_format,
            integer_ids=spec.series_id_type == "int",
        )
        placed = locate_on_grid(
            canonical.frame,
            spec.time_step,
            datetime_column=spec.datetime_column,
            series_label=spec.series_id_column or "",
        )
        canon = placed.frame
        if options.is_historical:
            assert options.start is not None
            assert options.end is not None
            window = historical_window(
                canon,
                model_spec(spec),  # a nowcast's rows are predicted from the step before each FP
                start=options.start,
                end=options.end,
                relax_known_in_advance=options.relax_known_in_advance,
            )
        else:
            window = (nowcast_window if is_nowcast(spec) else forecast_window)(
                canon,
                spec,
                forecast_point=options.forecast_point,
                relax_known_in_advance=options.relax_known_in_advance,
                datetime_format=canonical.datetime_format,
                utc_offset=canonical.utc_offset or spec.utc_offset,
                codes=placed.codes,
            )
        if placed.note is None:
            return window
        return replace(window, warnings=(*window.warnings, placed.note))

    def predict_result(self, frame: Any, options: PredictOptions | None = None) -> Prediction:
        """Like :meth:`predict`, with warnings, from one options object (HTTP, CLI).

        The request's window grid is laid out once (:class:`~tsengine.features.Layout`)
        and shared by the model, the interval scale and the explanations; the
        output columns are assembled from ready Series in one frame, because on
        a one-series request each polars query planned costs about as much as
        the arithmetic it runs.
        """
        options = (options or PredictOptions()).validated()
        window = self.window(to_polars(frame), options)
        query, history = window.query, window.history
        calendar, step = self.spec.calendar, self.spec.time_step
        if calendar is not None:  # event features are derived from the timestamps, never posted
            offset = self.spec.utc_offset
            query, history = (
                with_events(query, calendar, step, offset),
                with_events(history, calendar, step, offset),
            )
        layout = Layout.build(
            history, query, self.spec.fdw, codes=window.codes, keep_designs=options.max_explanations > 0
        )
        # Nowcasting: the window and the model work from the step before each forecast point
        # (tsengine.nowcast); the output shifts the forecast point and distance back.
        mspec, shift = event_model_spec(model_spec(self.spec)), forecast_shift(self.spec)
        yhat = predict_on(self.model, history, query, mspec, layout)
        floor = 0.0 if self.metadata.get("training", {}).get("nonnegative") else None
        if floor is not None:
            yhat = np.maximum(yhat, floor)  # NaN stays NaN
        n = query.height
        fp = query.get_column(FP).to_numpy()
        both = grid_timestamps(
            self.spec.time_step, np.concatenate([fp + shift, query.get_column(IDX).to_numpy()])
        )
        distance = query.get_column(D) - shift if shift else query.get_column(D)
        prediction = pl.Series("prediction", yhat, dtype=pl.Float64)
        if not np.isfinite(yhat).all():
            prediction = prediction.fill_nan(None)
        columns = [
            query.get_column(ROW).alias("rowId"),
            self._series_values(query),
            both.slice(0, n).alias("forecastPoint"),
            both.slice(n, n).alias("timestamp"),
            distance.alias("forecastDistance"),
            query.get_column(ORIG).alias("originalFormatTimestamp"),
            prediction,
        ]
        percentile = None
        if self.intervals is not None:
            sids = query.get_column(SID)
            scale = origin_scale(history, sids, fp, self.spec.fdw, grid=layout.grid())
            columns += self._interval_columns(yhat, scale, distance.to_numpy(), sids, floor)
            percentile = self.intervals.percentile
        out = pl.DataFrame(columns)
        rules = rules_from_metadata(self.metadata)
        if rules:
            out = apply_humility(out, rules, score=yhat, inputs=self._inputs(query))
        warnings = window.warnings
        if options.max_explanations > 0:
            explained = forecast_explanations(self.model, history, query, mspec, yhat, options, layout=layout)
            if explained is None:
                warnings += (f"model {self.model.kind!r} has no per-feature contributions: no explanations",)
            else:
                out = pl.concat([out, explained], how="horizontal")
        return Prediction(out, warnings, percentile, window)

    @property
    def interval_percentiles(self) -> tuple[int, ...]:
        """The percentiles of every interval the deployment serves, increasing (none without intervals)."""
        return tuple(sorted(t.percentile for t in self._tables()))

    def _tables(self) -> tuple[IntervalTable, ...]:
        """Every interval table, the deployment's own first."""
        return (self.intervals, *self.more_intervals) if self.intervals is not None else ()

    def _interval_columns(
        self, yhat: np.ndarray, scale: np.ndarray, distance: np.ndarray, sids: pl.Series, floor: float | None
    ) -> list[pl.Series]:
        """Bounds of every table: ``predictionIntervalLow/High``, then ``..._<p>`` for the others.

        Tables at several percentiles are fitted separately (each its own
        quantiles and per-series check), so a row's 50 % interval could poke out
        of its 80 % one; widening each level to contain the one below keeps them
        nested, as quantiles of one predictive distribution are.
        """
        bounds: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        inner: tuple[np.ndarray, np.ndarray] | None = None
        for table in sorted(self._tables(), key=lambda t: t.percentile):
            low, high = table.apply(yhat, scale, distance, series=sids)
            if floor is not None:
                low = np.maximum(low, floor)
            if inner is not None:
                low, high = np.fmin(low, inner[0]), np.fmax(high, inner[1])
            bounds[table.percentile] = inner = (low, high)
        out: list[pl.Series] = []
        for i, table in enumerate(self._tables()):
            low_name, high_name = interval_columns(table.percentile, own=i == 0)
            low, high = bounds[table.percentile]
            out += [pl.Series(low_name, low, dtype=pl.Float64), pl.Series(high_name, high, dtype=pl.Float64)]
        return out

    def _inputs(self, query: pl.DataFrame) -> pl.DataFrame:
        """Per query row, the inputs humility rules may check: KIA values and series id."""
        cols = [pl.col(k) for k in self.spec.known_in_advance]
        if self.spec.series_id_column:
            cols.append(pl.col(SID).alias(self.spec.series_id_column))
        return query.select(cols)

    def _series_values(self, query: pl.DataFrame) -> pl.Series:
        if not self.spec.series_id_column:
            return pl.Series("seriesId", [None], dtype=pl.String).new_from_index(0, query.height)
        dtype = _SERIES_DTYPES[self.spec.series_id_type]
        return query.get_column(SID).cast(dtype, strict=False).alias("seriesId")


def backtest_trace(
    rows: pl.DataFrame, spec: TimeSeriesSpec, *, max_series: int = BACKTEST_TRACE_SERIES
) -> pl.DataFrame:
    """The chosen model's backtest forecasts in output terms, for the deployment page's chart.

    Keeps the ``max_series`` series with the largest actuals (ties by id), so the
    file stays small for wide panels while covering the series planners look at.
    """
    observed = rows.filter(pl.col("y").is_not_null())
    keep = (
        observed.group_by(SID)
        .agg(pl.col("y").abs().sum().alias("__volume"))
        .sort(["__volume", SID], descending=[True, False])
        .head(max_series)
        .select(SID)
    )
    step = spec.time_step
    return (
        rows.join(keep, on=SID, how="semi")
        .select(
            pl.col(SID).cast(pl.String).alias("seriesId"),
            step.from_index(pl.col(FP)).alias("forecastPoint"),
            step.from_index(pl.col(IDX)).alias("timestamp"),
            pl.col(D).cast(pl.Int32).alias("forecastDistance"),
            pl.col("y").alias("actual"),
            pl.col("yhat").alias("prediction"),
        )
        .sort("seriesId", "forecastPoint", "forecastDistance")
    )
