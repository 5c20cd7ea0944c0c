"""A batch prediction job's specification: DataRobot's ``jobSpec``, parsed and checked.

The wire form is the camelCase JSON body of ``POST /api/v2/batchPredictions/``
(what ``datarobot.BatchPredictionJob.score`` sends); :func:`parse_job_spec` turns
it into frozen values and rejects every malformed field *before* a job exists,
with a :class:`~tsengine.errors.ParameterError` (422) naming the field, e.g.
``intakeSettings.table``.  :meth:`JobSpec.to_api` is the ``jobSpec`` echoed in
every job resource, with the effective defaults filled in: the client omits
booleans at their default and requires ``numConcurrent`` back.  The values
themselves live in :mod:`~tsengine.batch.spec_types`; this module holds the
wire's rules.
"""

from __future__ import annotations

import codecs
import datetime as dt
import math
import os
import re
from collections.abc import Mapping
from typing import Any, NoReturn

from dateutil.relativedelta import relativedelta

from tsengine.batch.spec_types import (
    CLIENT_RANGE_END,
    CLIENT_RANGE_START,
    DEFAULT_CHUNK_BYTES,
    EXPLANATION_CHUNK_BYTES,
    JOB_RUN_TIME_BASED,
    MIN_CHUNK_BYTES,
    AdapterSettings,
    CsvSettings,
    JobSpec,
    TimeSeriesSettings,
)
from tsengine.datetimes import parse_timestamp
from tsengine.errors import ParameterError, short_list
from tsengine.timestep import TimeStep

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
    "iso_duration",
    "parse_job_spec",
    "relative_forecast_point",
]

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
    offset = _forecast_point_policy(settings)
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
        forecast_point_offset=offset,
    )


def _forecast_point_policy(settings: Mapping[str, Any]) -> str | None:
    """The offset of ``forecastPointPolicy`` ``{"type": "jobRunTimeBased", "configuration": {"offset": ...}}``."""
    policy = settings.get("forecastPointPolicy")
    if policy is None:
        return None
    where = "timeseriesSettings.forecastPointPolicy"
    if not isinstance(policy, Mapping) or policy.get("type") != JOB_RUN_TIME_BASED:
        _fail(f"{where}.type", f'must be "{JOB_RUN_TIME_BASED}", got {policy!r}')
    if "forecastPoint" in settings:
        _fail(where, "and forecastPoint exclude each other: give a fixed forecast point or a policy")
    configuration = policy.get("configuration")
    offset = configuration.get("offset") if isinstance(configuration, Mapping) else None
    if not isinstance(offset, str):
        _fail(
            f"{where}.configuration.offset", f'must be an ISO 8601 duration such as "-P2DT5H", got {offset!r}'
        )
    iso_duration(offset, name=f"{where}.configuration.offset")
    return offset


# ISO 8601 durations as DataRobot's offsets are written ("-P2DT5H", "P1M"): an optional sign,
# then years, months, weeks, days and, after T, hours, minutes and seconds.
_DURATION = re.compile(
    r"^(?P<sign>[+-])?P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def iso_duration(text: str, *, name: str) -> relativedelta:
    """An ISO 8601 duration as a calendar-aware offset (``P1M`` is a month, not 30 days).

    None of the project's dependencies parses ISO durations with months and
    years (pydantic's timedelta cannot hold a month), so the grammar is this
    one pattern and dateutil's ``relativedelta`` does the calendar arithmetic.

    Raises:
        ParameterError: not such a duration, naming ``name``.
    """
    match = _DURATION.match(text.strip())
    units = ("years", "months", "weeks", "days", "hours", "minutes", "seconds")
    if match is None or not any(match[u] for u in units) or text.strip().endswith("T"):
        _fail(name, f'must be an ISO 8601 duration such as "-P2DT5H" or "P1M", got {text!r}')
    parts = match.groupdict()
    sign = -1 if parts["sign"] == "-" else 1
    whole = {k: sign * int(parts[k] or 0) for k in ("years", "months", "weeks", "days", "hours", "minutes")}
    try:
        delta = relativedelta(**whole, seconds=sign * float(parts["seconds"] or 0))  # type: ignore[arg-type]
        dt.datetime(2000, 1, 1) + delta  # an offset no run time can take is refused now, not at the run
    except (OverflowError, ValueError):
        _fail(name, f"{text!r} is out of range for a forecast point offset")
    return delta


def relative_forecast_point(step: TimeStep, run_start: dt.datetime, offset: str) -> dt.datetime:
    """A run's forecast point under a ``jobRunTimeBased`` policy: start plus offset, floored to the grid.

    A job scheduled at 06:10 with offset ``-P1D`` forecasts a daily deployment
    from yesterday (00:00): the forecast point must be a grid point, and the
    latest one at or before the moment asked for is what the data can have.
    """
    moment = run_start + iso_duration(offset, name="forecastPointPolicy.configuration.offset")
    return step.timestamp_of(step.to_index_floor(moment))


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
