"""A batch prediction job's specification: DataRobot's ``jobSpec``, parsed and checked.

The wire form is the camelCase JSON body of ``POST /api/v2/batchPredictions/``
(what ``datarobot.BatchPredictionJob.score`` sends); :func:`parse_job_spec` turns
it into frozen values and rejects every malformed field *before* a job exists,
with a :class:`~tsengine.errors.ParameterError` (422) naming the field, e.g.
``intakeSettings.table``.  :meth:`JobSpec.to_api` is the ``jobSpec`` echoed in
every job resource, with the effective defaults filled in: the client omits
booleans at their default and requires ``numConcurrent`` back.
"""

from __future__ import annotations

import codecs
import datetime as dt
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, NoReturn

from tsengine.errors import ParameterError, short_list
from tsengine.options import PredictOptions
from tsengine.timestep import parse_timestamp

__all__ = [
    "CLIENT_RANGE_END",
    "CLIENT_RANGE_START",
    "DEFAULT_CHUNK_BYTES",
    "INTAKE_TYPES",
    "OUTPUT_TYPES",
    "STATEMENT_TYPES",
    "AdapterSettings",
    "CsvSettings",
    "JobSpec",
    "TimeSeriesSettings",
    "parse_job_spec",
]

# DataRobot's "fixed" chunk size: "1MB for explanations, 5MB for regular requests".
DEFAULT_CHUNK_BYTES = 5 * 1024 * 1024
EXPLANATION_CHUNK_BYTES = 1024 * 1024
# The smallest chunk worth scheduling; smaller requests are raised to it.
MIN_CHUNK_BYTES = 1024
# The ``datarobot`` client's defaults for a historical range: the whole dataset.
CLIENT_RANGE_START = dt.datetime(1900, 1, 1)
CLIENT_RANGE_END = dt.datetime(2262, 4, 11, 23, 47, 16, 854775)

INTAKE_TYPES = ("localFile", "s3", "jdbc", "dataset", "filesystem")
OUTPUT_TYPES = ("localFile", "s3", "jdbc", "filesystem")
STATEMENT_TYPES = ("insert", "create_table", "update", "insert_update")
_FORMATS = ("csv", "parquet")
# Adapters DataRobot has that tsengine does not: named in the 422 so the user knows why.
_UNSUPPORTED = ("gcp", "azure", "snowflake", "synapse", "bigquery", "dss", "datasphere", "http")

_TOP_KEYS = frozenset(
    {
        "deploymentId",
        "modelId",
        "numConcurrent",
        "chunkSize",
        "maxExplanations",
        "maxNgramExplanations",
        "explanationAlgorithm",
        "thresholdHigh",
        "thresholdLow",
        "predictionThreshold",
        "explanationNumTopClasses",
        "explanationClassNames",
        "includePredictionStatus",
        "skipDriftTracking",
        "abortOnError",
        "includeProbabilities",
        "includeProbabilitiesClasses",
        "predictionWarningEnabled",
        "passthroughColumns",
        "passthroughColumnsSet",
        "predictionInstance",
        "columnNamesRemapping",
        "timeseriesSettings",
        "intakeSettings",
        "outputSettings",
        "csvSettings",
        "disableRowLevelErrorHandling",
        "secondaryDatasetsConfigId",
        "pinnedModelId",
        "modelPackageId",
        "monitoringBatchPrefix",
        "deploymentVersion",
    }
)
# Per adapter type: the keys it takes ("type" aside); the first group is required.
_INTAKE_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "localFile": ((), ("multipart", "async", "url")),
    "filesystem": (("path",), ("format",)),
    "s3": (("url",), ("credentialId", "endpointUrl", "format")),
    "jdbc": (("dataStoreId",), ("query", "table", "schema", "catalog", "fetchSize", "credentialId")),
    "dataset": (("datasetId",), ("datasetVersionId",)),
}
_OUTPUT_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "localFile": ((), ("url",)),
    "filesystem": (("path",), ("format",)),
    "s3": (("url",), ("credentialId", "endpointUrl", "format")),
    "jdbc": (
        ("dataStoreId", "table", "statementType"),
        (
            "schema",
            "catalog",
            "updateColumns",
            "whereColumns",
            "credentialId",
            "createTableIfNotExists",
            "commitInterval",
        ),
    ),
}


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


@dataclass(frozen=True, slots=True)
class TimeSeriesSettings:
    """``timeseriesSettings``: forecast (optionally at a point) or historical (a range)."""

    type: Literal["forecast", "historical", "training"] = "forecast"
    forecast_point: dt.datetime | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    relax_known_in_advance: bool = False

    @property
    def is_historical(self) -> bool:
        """Historical and training both predict every posted row of a range."""
        return self.type != "forecast"

    def to_api(self) -> dict[str, Any]:
        """The camelCase echo; datetimes as ISO 8601 UTC."""
        out: dict[str, Any] = {"type": self.type}
        if self.forecast_point is not None:
            out["forecastPoint"] = _iso(self.forecast_point)
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


# ---------------------------------------------------------------------------- parsing


def _fail(name: str, problem: str) -> NoReturn:
    """Raise the 422 for one field: ``"<field>: <problem>"``."""
    msg = f"{name}: {problem}"
    raise ParameterError(msg)


def _bool(body: Mapping[str, Any], key: str, default: bool, prefix: str = "") -> bool:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        _fail(prefix + key, f"must be true or false, got {value!r}")
    return value


def _int(body: Mapping[str, Any], key: str, prefix: str = "", *, low: int = 0) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        _fail(prefix + key, f"must be a whole number of at least {low}, got {value!r}")
    return value


def _float(
    body: Mapping[str, Any], key: str, *, low: float = -math.inf, high: float = math.inf
) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        _fail(key, f"must be a finite number, got {value!r}")
    if not low <= value <= high:
        _fail(key, f"must be between {low} and {high}, got {value!r}")
    return float(value)


def _strings(body: Mapping[str, Any], key: str, prefix: str = "") -> tuple[str, ...]:
    value = body.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        _fail(prefix + key, f"must be a list of strings, got {value!r}")
    return tuple(value)


def _text(body: Mapping[str, Any], key: str, prefix: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        _fail(prefix + key, f"must be a non-empty string, got {value!r}")
    return value


def _object(body: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        _fail(key, f"must be an object, got {type(value).__name__}")
    return value


def _adapter(
    body: Mapping[str, Any],
    key: str,
    kinds: dict[str, tuple[tuple[str, ...], tuple[str, ...]]],
    *,
    allow_filesystem: bool,
) -> AdapterSettings:
    settings = _object(body, key)
    kind = settings.get("type", "localFile")
    if kind == "dataset" and isinstance(settings.get("dataset"), Mapping):
        # job definitions from the datarobot client carry the whole dr.Dataset object
        dataset = settings["dataset"]
        settings = {k: v for k, v in settings.items() if k != "dataset"}
        settings.setdefault("datasetId", dataset.get("id") or dataset.get("datasetId"))
        if dataset.get("versionId") and "datasetVersionId" not in settings:
            settings["datasetVersionId"] = dataset["versionId"]
    if kind == "filesystem" and not allow_filesystem:
        msg = (
            f"{key}.type: 'filesystem' reads and writes server paths and is only available to "
            "the tsengine batch command; over HTTP use localFile, s3, jdbc or dataset"
        )
        raise ParameterError(msg)
    if kind not in kinds:
        known = short_list([k for k in kinds if k != "filesystem"], limit=10)
        why = " (not supported by tsengine)" if kind in _UNSUPPORTED else ""
        _fail(f"{key}.type", f"unknown adapter {kind!r}{why}; use one of {known}")
    required, optional = kinds[kind]
    rest = {k: v for k, v in settings.items() if k != "type"}
    unknown = [k for k in rest if k not in required and k not in optional]
    if unknown:
        accepted = short_list([*required, *optional], limit=12) or "no other keys"
        _fail(f"{key}.{unknown[0]}", f"is not a setting of the {kind} adapter; it takes {accepted}")
    for name in required:
        if rest.get(name) in (None, ""):
            _fail(f"{key}.{name}", f"is required by the {kind} adapter")
    prefix = f"{key}."
    for name, value in rest.items():
        if name in {"multipart", "async", "createTableIfNotExists"}:
            _bool(rest, name, False, prefix)
        elif name in {"fetchSize", "commitInterval"}:
            _int(rest, name, prefix, low=1)
        elif name in {"updateColumns", "whereColumns"}:
            _strings(rest, name, prefix)
        elif value is not None:
            _text(rest, name, prefix)
    if "format" in rest and str(rest["format"]).lower() not in _FORMATS:
        _fail(f"{key}.format", f"must be csv or parquet, got {rest['format']!r}")
    if kind == "s3" and not str(rest["url"]).startswith("s3://"):
        _fail(f"{key}.url", f"must be an s3://bucket/key URL, got {rest['url']!r}")
    if key == "outputSettings" and kind == "jdbc":
        _check_statement(rest)
    if key == "intakeSettings" and kind == "jdbc" and not (rest.get("table") or rest.get("query")):
        _fail(f"{key}.table", "the jdbc intake needs a table (or a query)")
    if key == "intakeSettings" and kind == "jdbc" and rest.get("table") and rest.get("query"):
        _fail(f"{key}.query", "give a table or a query, not both")
    return AdapterSettings(kind, {k: v for k, v in rest.items() if v is not None})


def _check_statement(rest: Mapping[str, Any]) -> None:
    statement = rest["statementType"]
    if statement not in STATEMENT_TYPES:
        hint = {"insertUpdate": "insert_update", "createTable": "create_table"}.get(statement)
        extra = f" (did you mean {hint!r}?)" if hint else ""
        _fail(
            "outputSettings.statementType",
            f"must be one of {short_list(STATEMENT_TYPES)}, got {statement!r}{extra}",
        )
    if statement in {"update", "insert_update"} and not rest.get("whereColumns"):
        _fail(
            "outputSettings.whereColumns",
            f"statementType {statement!r} needs whereColumns: the key columns that identify a row",
        )


def _csv(body: Mapping[str, Any]) -> CsvSettings:
    settings = _object(body, "csvSettings")
    unknown = [k for k in settings if k not in {"delimiter", "quotechar", "encoding"}]
    if unknown:
        _fail(f"csvSettings.{unknown[0]}", "is not a CSV setting; use delimiter, quotechar, encoding")
    delimiter = settings.get("delimiter", ",")
    if delimiter == "tab":
        delimiter = "\t"
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\r\n":
        _fail("csvSettings.delimiter", f'must be one character or "tab", got {delimiter!r}')
    quotechar = settings.get("quotechar", '"')
    if not isinstance(quotechar, str) or len(quotechar) != 1 or quotechar in "\r\n" or quotechar == delimiter:
        _fail("csvSettings.quotechar", f"must be one character other than the delimiter, got {quotechar!r}")
    encoding = settings.get("encoding", "utf-8")
    try:
        codecs.lookup(str(encoding))
    except LookupError:
        _fail("csvSettings.encoding", f"unknown encoding {encoding!r}; use e.g. utf-8 or latin-1")
    return CsvSettings(delimiter, quotechar, str(encoding))


def _when(settings: Mapping[str, Any], key: str) -> dt.datetime | None:
    value = settings.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        _fail(f"timeseriesSettings.{key}", f"must be an ISO 8601 datetime string, got {value!r}")
    return parse_timestamp(value, name=f"timeseriesSettings.{key}")


def _timeseries(body: Mapping[str, Any]) -> TimeSeriesSettings:
    settings = _object(body, "timeseriesSettings")
    kind = settings.get("type", "forecast")
    allowed = {
        "forecast": {"type", "forecastPoint", "relaxKnownInAdvanceFeaturesCheck", "forecastPointPolicy"},
        "historical": {
            "type",
            "predictionsStartDate",
            "predictionsEndDate",
            "relaxKnownInAdvanceFeaturesCheck",
        },
        "training": {"type", "relaxKnownInAdvanceFeaturesCheck"},
    }
    if kind not in allowed:
        _fail("timeseriesSettings.type", f"must be forecast, historical or training, got {kind!r}")
    unknown = [k for k in settings if k not in allowed[kind]]
    if unknown:
        _fail(f"timeseriesSettings.{unknown[0]}", f"is not a setting of type {kind!r}")
    if "forecastPointPolicy" in settings:
        _fail(
            "timeseriesSettings.forecastPointPolicy",
            "is not supported; give a forecastPoint or leave it out to use the latest timestamp with a target",
        )
    start, end = _when(settings, "predictionsStartDate"), _when(settings, "predictionsEndDate")
    if start is not None and end is not None and start >= end:
        _fail(
            "timeseriesSettings.predictionsStartDate",
            f"{start.isoformat()} must be before predictionsEndDate {end.isoformat()}",
        )
    return TimeSeriesSettings(
        type=kind,
        forecast_point=_when(settings, "forecastPoint"),
        start=start,
        end=end,
        relax_known_in_advance=_bool(
            settings, "relaxKnownInAdvanceFeaturesCheck", False, "timeseriesSettings."
        ),
    )


def _remapping(body: Mapping[str, Any]) -> tuple[tuple[str, str | None], ...]:
    value = body.get("columnNamesRemapping")
    if value is None:
        return ()
    pairs: list[tuple[Any, Any]]
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, list) and all(isinstance(v, Mapping) for v in value):
        pairs = [(v.get("inputName"), v.get("outputName")) for v in value]
    else:
        _fail(
            "columnNamesRemapping",
            "must be an object {old: new or null} or a list of {inputName, outputName}",
        )
    for old, new in pairs:
        if not isinstance(old, str) or not (new is None or isinstance(new, str)):
            _fail("columnNamesRemapping", f"maps column names to names or null, got {old!r}: {new!r}")
    return tuple(pairs)


def _chunk_size(body: Mapping[str, Any], explained: bool) -> tuple[int, str | int]:
    value = body.get("chunkSize", "auto")
    fixed = EXPLANATION_CHUNK_BYTES if explained else DEFAULT_CHUNK_BYTES
    if value in ("auto", "fixed", "dynamic"):
        return fixed, value
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        _fail("chunkSize", f'must be "auto", "fixed", "dynamic" or a number of bytes, got {value!r}')
    return max(value, MIN_CHUNK_BYTES), value


def parse_job_spec(body: Any, *, allow_filesystem: bool = False) -> JobSpec:
    """Check a ``POST batchPredictions/`` body and build its :class:`JobSpec`.

    Args:
        body: the decoded JSON body (camelCase keys, as the ``datarobot`` client sends).
        allow_filesystem: accept the ``filesystem`` adapter (server paths; CLI only).

    Raises:
        ParameterError: naming the first malformed field and what is accepted.
    """
    if not isinstance(body, Mapping):
        msg = "the job specification must be a JSON object"
        raise ParameterError(msg)
    unknown = sorted(k for k in body if k not in _TOP_KEYS)
    if unknown:
        _fail(unknown[0], "is not a batch prediction setting")
    deployment_id = body.get("deploymentId")
    if body.get("modelId") is not None and deployment_id is None:
        _fail("modelId", "leaderboard models are not served by tsengine; give deploymentId")
    if not isinstance(deployment_id, str) or not deployment_id.strip():
        _fail("deploymentId", f"is required (the deployment to score), got {deployment_id!r}")
    num_concurrent = _int(body, "numConcurrent", low=1) or (os.cpu_count() or 1)
    max_explanations = _int(body, "maxExplanations") or 0
    chunk_size, chunk_wire = _chunk_size(body, max_explanations > 0)
    passthrough_set = body.get("passthroughColumnsSet")
    if passthrough_set not in (None, "all"):
        _fail("passthroughColumnsSet", f"must be 'all', got {passthrough_set!r}")
    passthrough = _strings(body, "passthroughColumns")
    if any(not c.strip() for c in passthrough):
        _fail("passthroughColumns", "must not contain blank names")
    threshold_low = _float(body, "thresholdLow")
    threshold_high = _float(body, "thresholdHigh")
    if threshold_low is not None and threshold_high is not None and threshold_low > threshold_high:
        _fail("thresholdLow", f"{threshold_low} must not exceed thresholdHigh {threshold_high}")
    ngram = body.get("maxNgramExplanations")
    if (
        ngram is not None
        and ngram != "all"
        and (isinstance(ngram, bool) or not isinstance(ngram, int) or ngram < 0)
    ):
        _fail("maxNgramExplanations", f"must be a whole number of at least 0 or 'all', got {ngram!r}")
    extras = {
        k: body[k]
        for k in (
            "maxNgramExplanations",
            "explanationAlgorithm",
            "explanationNumTopClasses",
            "explanationClassNames",
            "predictionWarningEnabled",
            "predictionInstance",
            "disableRowLevelErrorHandling",
        )
        if body.get(k) is not None
    }
    return JobSpec(
        deployment_id=deployment_id,
        deployment_version=_text(body, "deploymentVersion", ""),
        intake=_adapter(body, "intakeSettings", _INTAKE_KEYS, allow_filesystem=allow_filesystem),
        output=_adapter(body, "outputSettings", _OUTPUT_KEYS, allow_filesystem=allow_filesystem),
        csv=_csv(body),
        num_concurrent=num_concurrent,
        chunk_size=chunk_size,
        chunk_size_wire=chunk_wire,
        abort_on_error=_bool(body, "abortOnError", True),
        include_prediction_status=_bool(body, "includePredictionStatus", False),
        include_probabilities=_bool(body, "includeProbabilities", True),
        include_probabilities_classes=_strings(body, "includeProbabilitiesClasses"),
        skip_drift_tracking=_bool(body, "skipDriftTracking", False),
        prediction_threshold=_float(body, "predictionThreshold", low=0.0, high=1.0),
        max_explanations=max_explanations,
        threshold_low=threshold_low,
        threshold_high=threshold_high,
        passthrough_columns=() if passthrough_set == "all" else passthrough,
        passthrough_all=passthrough_set == "all",
        column_names_remapping=_remapping(body),
        timeseries=_timeseries(body),
        extras=extras,
    )
