"""The frozen description of a time series deployment.

A :class:`TimeSeriesSpec` is fixed at training and travels with the model: it is
everything prediction needs to know about the data's shape (columns, time step,
windows, formats) and nothing about the model's internals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tsengine.events import EventCalendar
from tsengine.timestep import TimeStep

__all__ = ["SPEC_FORMAT_VERSION", "TimeSeriesSpec", "default_windows", "min_history_for"]

SPEC_FORMAT_VERSION = 1

# Default windows per step unit [ours]: (feature derivation window a, forecast
# window c) with b = 1.  Each covers at least two seasonal cycles of history where
# a season exists (a week of days, a year of months, ...) and a horizon planners
# use (four weeks of days, a year of months, two years of quarters).  Weeks see
# two years: the yearly season (52 weeks) needs two cycles for the statistical
# models and year-over-year features (measured: statsmodels' weekly co2 and
# fpp2's melsyd, held-out MASE 0.163 -> 0.134 and 0.339 -> 0.237 against 52).
# Quarters and years see eight and twenty years: the statistical models re-filter
# only this window, and 16 quarters / 10 years left their states to a handful of
# points.  Measured (mean held-out MASE over the last three horizons, default
# deployment): benchmarks/collection.py's 8 quarterly series, geometric mean
# 0.919 of the 16-quarter result (24 quarters: 0.930), its 5 yearly 0.972;
# fpp2 visnights (20 regions) 1.021 -> 1.014, R's incidents panel (60 yearly
# series) 8.30 -> 7.76; but tourism_quarterly 1.320 -> 1.352.  Months stay at
# 36: 72 was neutral (13 monthly series 1.000, US employment 0.427 -> 0.425).
_DEFAULT_WINDOWS: dict[str, tuple[int, int]] = {
    "second": (120, 60),
    "minute": (120, 60),
    "hour": (168, 24),
    "day": (56, 28),
    "week": (104, 13),
    "month": (36, 12),
    "quarter": (32, 8),
    "year": (20, 5),
}


# Steps from 5 minutes up to an hour see two days of history by default [ours]:
# two hours of 15-minute data (8 steps) would hide the daily cycle that drives
# most such data (load, traffic, calls), and 192 steps are cheap.
_SUBHOURLY_SECONDS = (300, 3600)


def min_history_for(a: int, *, allow_partial_history: bool = False) -> int:
    """Observed rows a series needs inside a window of ``a`` steps [ours].

    Half the window, so gaps are tolerated but a forecast is never built from a
    handful of points; one row when the deployment allows partial history.
    """
    return 1 if allow_partial_history else max(1, math.ceil(a / 2))


def default_windows(step: TimeStep) -> tuple[tuple[int, int], tuple[int, int]]:
    """Default ``(feature_derivation_window, forecast_window)`` for a step."""
    a, c = _DEFAULT_WINDOWS[step.unit]
    if step.count > 1:  # 2-day or 15-minute steps: keep the span in time, at least a few steps
        a, c = max(8, a // step.count), max(1, c // step.count)
    seconds = step.seconds_approx
    if _SUBHOURLY_SECONDS[0] <= seconds < _SUBHOURLY_SECONDS[1]:
        a = max(a, round(2 * step.steps_per_day))
    return (-a, 0), (1, c)


@dataclass(frozen=True, slots=True)
class TimeSeriesSpec:
    """What a time series deployment expects and promises.

    Attributes:
        datetime_column: the datetime column's name.
        target: the target column's name.
        series_id_column: the series id column, or None for a single series.
        time_step: the regular step inferred at training.
        feature_derivation_window: ``(-a, 0)``: history rows in ``(FP - a, FP]``
            may feed features.
        forecast_window: ``(b, c)``: forecast distances b..c, both inclusive.
        known_in_advance: features whose future values are posted with the
            forecast rows and used at the predicted time.
        features: other features, used only as of the forecast point.
        datetime_format: strftime pattern of the training datetime column.
        allow_partial_history: serve series with less history than the FDW wants.
        min_history: non-empty target rows a series needs inside the FDW.
        series_id_type: ``int``, ``float`` or ``str``: the JSON type of ``seriesId``.
        utc_offset: the UTC offset the training data was written in, if any.
        kia_fill: imputation values per KIA feature for the relaxed check.
        kia_blank: categorical KIA features that were blank on some training
            rows (an event name on ordinary days): there a blank is a level the
            model learned, so a posted forecast row's blank is a value, not a
            missing one.  Only rows the client did not post miss it.
        categorical: names of string features, encoded as categories.
        calendar: dated events and holidays whose features models read as
            known in advance (:mod:`tsengine.events`); derived, never posted.
    """

    datetime_column: str
    target: str
    time_step: TimeStep
    feature_derivation_window: tuple[int, int]
    forecast_window: tuple[int, int]
    series_id_column: str | None = None
    known_in_advance: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    datetime_format: str = "%Y-%m-%d"
    allow_partial_history: bool = False
    min_history: int = 1
    series_id_type: str = "str"
    utc_offset: str | None = None
    kia_fill: dict[str, Any] = field(default_factory=dict, hash=False)
    kia_blank: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    calendar: EventCalendar | None = None

    @property
    def fdw(self) -> int:
        """``a``: how many steps back from the forecast point features may look."""
        return -self.feature_derivation_window[0]

    @property
    def distances(self) -> range:
        """Forecast distances b..c."""
        return range(self.forecast_window[0], self.forecast_window[1] + 1)

    @property
    def required_columns(self) -> tuple[str, ...]:
        """Columns every prediction dataset must have."""
        ids = (self.series_id_column,) if self.series_id_column else ()
        return (self.datetime_column, *ids, self.target, *self.known_in_advance, *self.features)

    def to_dict(self) -> dict[str, Any]:
        """JSON form stored in ``deployment.json``."""
        return {
            "format_version": SPEC_FORMAT_VERSION,
            "datetime_column": self.datetime_column,
            "target": self.target,
            "series_id_column": self.series_id_column,
            "time_step": self.time_step.to_dict(),
            "feature_derivation_window": list(self.feature_derivation_window),
            "forecast_window": list(self.forecast_window),
            "known_in_advance": list(self.known_in_advance),
            "features": list(self.features),
            "datetime_format": self.datetime_format,
            "allow_partial_history": self.allow_partial_history,
            "min_history": self.min_history,
            "series_id_type": self.series_id_type,
            "utc_offset": self.utc_offset,
            "kia_fill": self.kia_fill,
            "kia_blank": list(self.kia_blank),
            "categorical": list(self.categorical),
            **({"calendar": self.calendar.to_dict()} if self.calendar is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TimeSeriesSpec:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: the dict was written by a newer format version.
        """
        version = int(data.get("format_version", 0))
        if version > SPEC_FORMAT_VERSION:
            msg = f"spec format version {version} is newer than this tsengine ({SPEC_FORMAT_VERSION})"
            raise ValueError(msg)
        fdw, fw = data["feature_derivation_window"], data["forecast_window"]
        return cls(
            datetime_column=data["datetime_column"],
            target=data["target"],
            series_id_column=data.get("series_id_column"),
            time_step=TimeStep.from_dict(data["time_step"]),
            feature_derivation_window=(int(fdw[0]), int(fdw[1])),
            forecast_window=(int(fw[0]), int(fw[1])),
            known_in_advance=tuple(data.get("known_in_advance", ())),
            features=tuple(data.get("features", ())),
            datetime_format=data.get("datetime_format", "%Y-%m-%d"),
            allow_partial_history=bool(data.get("allow_partial_history", False)),
            min_history=int(data.get("min_history", 1)),
            series_id_type=data.get("series_id_type", "str"),
            utc_offset=data.get("utc_offset"),
            kia_fill=dict(data.get("kia_fill", {})),
            kia_blank=tuple(data.get("kia_blank", ())),
            categorical=tuple(data.get("categorical", ())),
            calendar=EventCalendar.from_dict(data["calendar"]) if data.get("calendar") else None,
        )
