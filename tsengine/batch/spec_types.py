"""The values a batch job specification is made of: frozen, checked, echoed back.

:func:`~tsengine.batch.spec.parse_job_spec` builds these from DataRobot's
camelCase ``jobSpec`` and rejects every malformed field first, so the rest of
the engine (adapters, chunking, scoring) reads typed, valid settings and never
the raw JSON.  Each value's ``to_api`` is its part of the ``jobSpec`` echoed in
every job resource, with the effective defaults filled in.  What a job does
is here; the wire's rules (accepted keys, types, the 422 messages) are in
:mod:`~tsengine.batch.spec`, which re-exports these, so importers keep using it.
"""

from __future__ import annotations

import codecs
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from tsengine.options import PredictOptions

__all__ = [
    "CLIENT_RANGE_END",
    "CLIENT_RANGE_START",
    "DEFAULT_CHUNK_BYTES",
    "EXPLANATION_CHUNK_BYTES",
    "MIN_CHUNK_BYTES",
    "AdapterSettings",
    "CsvSettings",
    "JobSpec",
    "TimeSeriesSettings",
]

# DataRobot's "fixed" chunk size: "1MB for explanations, 5MB for regular requests".
DEFAULT_CHUNK_BYTES = 5 * 1024 * 1024
EXPLANATION_CHUNK_BYTES = 1024 * 1024
# The smallest chunk worth scheduling; smaller requests are raised to it.
MIN_CHUNK_BYTES = 1024
# The ``datarobot`` client's defaults for a historical range: the whole dataset.
CLIENT_RANGE_START = dt.datetime(1900, 1, 1)
CLIENT_RANGE_END = dt.datetime(2262, 4, 11, 23, 47, 16, 854775)


@dataclass(frozen=True, slots=True)
class CsvSettings:
    r"""How the intake CSV is written (and the output CSV too, as DataRobot does).

    Attributes:
        delimiter: one character; ``"tab"`` on the wire means ``"\\t"``.
        quotechar: one character.
        encoding: a Python codec name; the intake is transcoded to UTF-8.
    """

    delimiter: str = ","
    quotechar: str = '"'
    encoding: str = "utf-8"

    @property
    def is_default(self) -> bool:
        """Whether the bytes can be read as they are (comma, double quote, UTF-8)."""
        return (self.delimiter, self.quotechar, codecs.lookup(self.encoding).name) == (",", '"', "utf-8")


@dataclass(frozen=True, slots=True)
class AdapterSettings:
    """One intake or output adapter: its type and its (camelCase) settings.

    The settings stay a mapping: each adapter reads the keys it owns, and the
    parser has already checked names, presence and types.
    """

    type: str
    settings: Mapping[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        """One setting, or ``default``."""
        return self.settings.get(key, default)

    @property
    def format(self) -> Literal["csv", "parquet"]:
        """File format for file and S3 adapters (CSV unless asked)."""
        value = str(self.settings.get("format", "csv")).lower()
        return "parquet" if value == "parquet" else "csv"

    def to_api(self) -> dict[str, Any]:
        """The camelCase object echoed in ``jobSpec`` (no secrets live here)."""
        return {"type": self.type, **self.settings}


JOB_RUN_TIME_BASED = "jobRunTimeBased"
"""The one ``forecastPointPolicy`` type: the forecast point is the run's start time plus an offset."""


@dataclass(frozen=True, slots=True)
class TimeSeriesSettings:
    """``timeseriesSettings``: forecast (optionally at a point) or historical (a range)."""

    type: Literal["forecast", "historical", "training"] = "forecast"
    forecast_point: dt.datetime | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    relax_known_in_advance: bool = False
    # ``forecastPointPolicy`` (jobRunTimeBased): an ISO 8601 duration added to each run's start
    # time, the sum floored to the deployment's grid (tsengine.batch.spec.relative_forecast_point)
    forecast_point_offset: str | None = None

    @property
    def is_historical(self) -> bool:
        """Historical and training both predict every posted row of a range."""
        return self.type != "forecast"

    def to_api(self) -> dict[str, Any]:
        """The camelCase echo; datetimes as ISO 8601 UTC."""
        out: dict[str, Any] = {"type": self.type}
        if self.forecast_point is not None:
            out["forecastPoint"] = _iso(self.forecast_point)
        if self.forecast_point_offset is not None:
            out["forecastPointPolicy"] = {
                "type": JOB_RUN_TIME_BASED,
                "configuration": {"offset": self.forecast_point_offset},
            }
        if self.start is not None:
            out["predictionsStartDate"] = _iso(self.start)
        if self.end is not None:
            out["predictionsEndDate"] = _iso(self.end)
        out["relaxKnownInAdvanceFeaturesCheck"] = self.relax_known_in_advance
        return out


def _iso(value: dt.datetime) -> str:
    return value.isoformat() + "Z"


@dataclass(frozen=True, slots=True)
class JobSpec:
    """Everything a batch job does, fixed when the job is created.

    Attributes:
        deployment_id: the deployment scored.
        deployment_version: the registry version pinned at creation (model snapshot).
        intake: where the rows come from.
        output: where the predictions go.
        csv: the intake (and CSV output) dialect.
        num_concurrent: chunks scored at once.
        chunk_size: target chunk size in bytes of input CSV.
        chunk_size_wire: ``chunkSize`` as sent (``"auto"``, ``"fixed"``, ``"dynamic"`` or bytes).
        abort_on_error: fail the job on the first bad series/row (else report per row).
        include_prediction_status: add a ``prediction_status`` column.
        include_probabilities: keep per-class probability columns (classification).
        include_probabilities_classes: only these classes' probability columns.
        skip_drift_tracking: leave the job out of monitoring.
        prediction_threshold: binary classification threshold override.
        max_explanations: explanations per row.
        threshold_low: explain only predictions below this...
        threshold_high: ...or above this.
        passthrough_columns: input columns copied to the output.
        passthrough_all: copy every input column.
        column_names_remapping: ``(old, new or None)`` pairs applied to the output.
        timeseries: forecast point or range for time series deployments.
        extras: accepted fields tsengine echoes but does not act on.
    """

    deployment_id: str
    intake: AdapterSettings
    output: AdapterSettings
    deployment_version: str | None = None
    csv: CsvSettings = CsvSettings()
    num_concurrent: int = 1
    chunk_size: int = DEFAULT_CHUNK_BYTES
    chunk_size_wire: str | int = "auto"
    abort_on_error: bool = True
    include_prediction_status: bool = False
    include_probabilities: bool = True
    include_probabilities_classes: tuple[str, ...] = ()
    skip_drift_tracking: bool = False
    prediction_threshold: float | None = None
    max_explanations: int = 0
    threshold_low: float | None = None
    threshold_high: float | None = None
    passthrough_columns: tuple[str, ...] = ()
    passthrough_all: bool = False
    column_names_remapping: tuple[tuple[str, str | None], ...] = ()
    timeseries: TimeSeriesSettings = TimeSeriesSettings()
    extras: Mapping[str, Any] = field(default_factory=dict)

    def with_version(self, version: str | None) -> JobSpec:
        """The spec pinned to a deployment version."""
        return replace(self, deployment_version=version)

    def predict_options(self, *, forecast_point: dt.datetime | None = None) -> PredictOptions:
        """The per-chunk prediction options (the forecast point decided for the whole job)."""
        ts = self.timeseries
        start = end = None
        if ts.is_historical:
            start = ts.start or CLIENT_RANGE_START
            end = ts.end or CLIENT_RANGE_END
        return PredictOptions(
            forecast_point=None if ts.is_historical else (forecast_point or ts.forecast_point),
            start=start,
            end=end,
            relax_known_in_advance=ts.relax_known_in_advance,
            passthrough_columns=self.passthrough_columns,
            passthrough_all=self.passthrough_all,
            max_explanations=self.max_explanations,
            threshold_low=self.threshold_low,
            threshold_high=self.threshold_high,
        ).validated()

    def to_api(self) -> dict[str, Any]:
        """The ``jobSpec`` object of the job resource (camelCase, defaults explicit)."""
        out: dict[str, Any] = {
            "deploymentId": self.deployment_id,
            "numConcurrent": self.num_concurrent,
            "chunkSize": self.chunk_size_wire,
            "abortOnError": self.abort_on_error,
            "includePredictionStatus": self.include_prediction_status,
            "includeProbabilities": self.include_probabilities,
            "skipDriftTracking": self.skip_drift_tracking,
            "maxExplanations": self.max_explanations,
            "intakeSettings": self.intake.to_api(),
            "outputSettings": self.output.to_api(),
            "csvSettings": {
                "delimiter": self.csv.delimiter,
                "quotechar": self.csv.quotechar,
                "encoding": self.csv.encoding,
            },
        }
        if self.deployment_version is not None:
            out["deploymentVersion"] = self.deployment_version
        if self.include_probabilities_classes:
            out["includeProbabilitiesClasses"] = list(self.include_probabilities_classes)
        if self.prediction_threshold is not None:
            out["predictionThreshold"] = self.prediction_threshold
        if self.threshold_low is not None:
            out["thresholdLow"] = self.threshold_low
        if self.threshold_high is not None:
            out["thresholdHigh"] = self.threshold_high
        if self.passthrough_all:
            out["passthroughColumnsSet"] = "all"
        elif self.passthrough_columns:
            out["passthroughColumns"] = list(self.passthrough_columns)
        if self.column_names_remapping:
            out["columnNamesRemapping"] = dict(self.column_names_remapping)
        out["timeseriesSettings"] = self.timeseries.to_api()
        out.update(self.extras)
        return out
