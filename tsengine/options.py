"""Per-request prediction options, shared by the CLI, the HTTP layer and the core.

The HTTP layer turns query parameters into one :class:`PredictOptions`; the CLI
turns flags into the same object.  The core checks the combinations (mutual
exclusions, ranges) in :meth:`PredictOptions.validated`, so both front ends
reject the same inputs with the same messages.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from tsengine.datetimes import parse_timestamp
from tsengine.errors import ParameterError

__all__ = ["PredictOptions"]


@dataclass(frozen=True, slots=True)
class PredictOptions:
    """What a caller may ask of one prediction request.

    Attributes:
        forecast_point: forecast mode with this forecast point (naive UTC).
        start: historical mode, first predicted timestamp (inclusive).
        end: historical mode, end of the range (exclusive).
        relax_known_in_advance: impute missing KIA values instead of failing.
        passthrough_columns: input columns to copy into each output row.
        passthrough_all: copy every input column (``passthroughColumnsSet=all``).
        max_explanations: how many prediction explanations per row (0: none).
        threshold_low: explain only predictions below this (or above ``threshold_high``).
        threshold_high: explain only predictions above this (or below ``threshold_low``).
    """

    forecast_point: dt.datetime | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    relax_known_in_advance: bool = False
    passthrough_columns: tuple[str, ...] = ()
    passthrough_all: bool = False
    max_explanations: int = 0
    threshold_low: float | None = None
    threshold_high: float | None = None

    @property
    def is_historical(self) -> bool:
        """Whether a ``[start, end)`` range was asked for."""
        return self.start is not None

    def validated(self) -> PredictOptions:
        """Check combinations; return self (or a normalised copy).

        Times given as text, dates or aware datetimes (a Python caller's
        ``forecast_point="2024-06-30"``) become the naive UTC datetimes the core
        works in, parsed as the HTTP layer parses them.

        Raises:
            ParameterError: naming the conflicting parameters, or a time that does not parse.
        """
        times = {
            "forecast_point": "forecastPoint",
            "start": "predictionsStartDate",
            "end": "predictionsEndDate",
        }
        odd = {
            field: parse_timestamp(value, name=name)
            for field, name in times.items()
            if (value := getattr(self, field)) is not None
            and not (isinstance(value, dt.datetime) and value.tzinfo is None)
        }
        if odd:
            return replace(
                self,
                forecast_point=odd.get("forecast_point", self.forecast_point),
                start=odd.get("start", self.start),
                end=odd.get("end", self.end),
            ).validated()
        if self.forecast_point is not None and (self.start is not None or self.end is not None):
            msg = (
                "forecastPoint cannot be combined with predictionsStartDate/predictionsEndDate: "
                "send a forecast point (forecast mode) or a range (historical mode), not both"
            )
            raise ParameterError(msg)
        if (self.start is None) != (self.end is None):
            given, missing = (
                ("predictionsStartDate", "predictionsEndDate")
                if self.start is not None
                else ("predictionsEndDate", "predictionsStartDate")
            )
            msg = f"{given} was given without {missing}: historical mode needs both"
            raise ParameterError(msg)
        if self.start is not None and self.end is not None and self.start >= self.end:
            msg = (
                f"predictionsStartDate ({self.start.isoformat()}) must be before "
                f"predictionsEndDate ({self.end.isoformat()}): the range is [start, end)"
            )
            raise ParameterError(msg)
        if self.passthrough_all and self.passthrough_columns:
            msg = "passthroughColumns and passthroughColumnsSet cannot both be passed"
            raise ParameterError(msg)
        if any(not c.strip() for c in self.passthrough_columns):
            msg = "passthroughColumns must not be blank"
            raise ParameterError(msg)
        if self.max_explanations < 0:
            msg = f"maxExplanations must be 0 or more, got {self.max_explanations}"
            raise ParameterError(msg)
        if (
            self.threshold_low is not None
            and self.threshold_high is not None
            and self.threshold_low > self.threshold_high
        ):
            msg = f"thresholdLow ({self.threshold_low}) must not exceed thresholdHigh ({self.threshold_high})"
            raise ParameterError(msg)
        return self

    def with_(self, **changes: object) -> PredictOptions:
        """A copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]
