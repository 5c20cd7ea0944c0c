"""Job specs: DataRobot's defaults, the client's exact bodies, and 422s that name the field."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from dateutil.relativedelta import relativedelta

from tsengine.batch.spec import DEFAULT_CHUNK_BYTES, iso_duration, parse_job_spec, relative_forecast_point
from tsengine.errors import ParameterError
from tsengine.timestep import TimeStep

# The body the datarobot 3.20 client sent in the spec's trace, byte for byte.
CLIENT_BODY: dict[str, Any] = {
    "deploymentId": "dep1",
    "numConcurrent": 2,
    "chunkSize": "auto",
    "includePredictionStatus": True,
    "abortOnError": False,
    "passthroughColumns": ["series"],
    "columnNamesRemapping": {"y_PREDICTION": "yhat", "drop": None},
    "timeseriesSettings": {
        "type": "forecast",
        "forecastPoint": "2020-01-02T00:00:00",
        "relaxKnownInAdvanceFeaturesCheck": True,
    },
    "intakeSettings": {"type": "localFile"},
    "outputSettings": {"type": "localFile"},
    "csvSettings": {"delimiter": ","},
}


def test_the_clients_body_parses_and_echoes_with_defaults() -> None:
    spec = parse_job_spec(CLIENT_BODY)
    assert spec.num_concurrent == 2
    assert spec.chunk_size == DEFAULT_CHUNK_BYTES
    assert spec.abort_on_error is False
    assert spec.include_prediction_status is True
    assert spec.timeseries.forecast_point == dt.datetime(2020, 1, 2)
    assert spec.column_names_remapping == (("y_PREDICTION", "yhat"), ("drop", None))
    echoed = spec.to_api()
    assert echoed["numConcurrent"] == 2
    assert echoed["includeProbabilities"] is True  # omitted by the client at its default
    assert echoed["skipDriftTracking"] is False
    assert parse_job_spec(echoed) == spec  # the stored echo is the job's spec


def test_defaults_when_the_client_omits_everything() -> None:
    spec = parse_job_spec({"deploymentId": "d"})
    assert spec.abort_on_error is True
    assert spec.include_probabilities is True
    assert spec.include_prediction_status is False
    assert spec.skip_drift_tracking is False
    assert spec.intake.type == spec.output.type == "localFile"
    assert spec.num_concurrent >= 1
    assert spec.timeseries.type == "forecast"


def test_tab_delimiter_and_array_remapping() -> None:
    spec = parse_job_spec(
        {
            "deploymentId": "d",
            "csvSettings": {"delimiter": "tab", "encoding": "latin-1"},
            "columnNamesRemapping": [{"inputName": "a", "outputName": None}],
        }
    )
    assert spec.csv.delimiter == "\t"
    assert spec.column_names_remapping == (("a", None),)


def test_dataset_object_from_a_job_definition() -> None:
    spec = parse_job_spec(
        {
            "deploymentId": "d",
            "intakeSettings": {"type": "dataset", "dataset": {"id": "ds1", "versionId": "v1"}},
        }
    )
    assert spec.intake.settings == {"datasetId": "ds1", "datasetVersionId": "v1"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "deploymentId"),
        ({"deploymentId": "d", "intakeSettings": {"type": "gcp", "url": "gs://x"}}, "intakeSettings.type"),
        (
            {"deploymentId": "d", "intakeSettings": {"type": "jdbc", "dataStoreId": "x"}},
            "intakeSettings.table",
        ),
        ({"deploymentId": "d", "intakeSettings": {"type": "s3"}}, "intakeSettings.url"),
        ({"deploymentId": "d", "intakeSettings": {"type": "s3", "url": "http://x"}}, "intakeSettings.url"),
        (
            {
                "deploymentId": "d",
                "outputSettings": {"type": "jdbc", "dataStoreId": "x", "statementType": "insert"},
            },
            "outputSettings.table",
        ),
        (
            {
                "deploymentId": "d",
                "outputSettings": {
                    "type": "jdbc",
                    "dataStoreId": "x",
                    "table": "t",
                    "statementType": "insertUpdate",
                },
            },
            "outputSettings.statementType",
        ),
        (
            {
                "deploymentId": "d",
                "outputSettings": {
                    "type": "jdbc",
                    "dataStoreId": "x",
                    "table": "t",
                    "statementType": "update",
                },
            },
            "outputSettings.whereColumns",
        ),
        ({"deploymentId": "d", "csvSettings": {"delimiter": ";;"}}, "csvSettings.delimiter"),
        ({"deploymentId": "d", "csvSettings": {"encoding": "klingon"}}, "csvSettings.encoding"),
        ({"deploymentId": "d", "chunkSize": -5}, "chunkSize"),
        ({"deploymentId": "d", "numConcurrent": 0}, "numConcurrent"),
        ({"deploymentId": "d", "predictionThreshold": 1.5}, "predictionThreshold"),
        ({"deploymentId": "d", "abortOnError": "no"}, "abortOnError"),
        ({"deploymentId": "d", "abortOnErorr": False}, "abortOnErorr"),
        ({"deploymentId": "d", "passthroughColumnsSet": "some"}, "passthroughColumnsSet"),
        (
            {
                "deploymentId": "d",
                "timeseriesSettings": {
                    "type": "historical",
                    "predictionsStartDate": "2020-02-01",
                    "predictionsEndDate": "2020-01-01",
                },
            },
            "timeseriesSettings.predictionsStartDate",
        ),
        (
            {"deploymentId": "d", "timeseriesSettings": {"type": "forecast", "forecastPoint": "soon"}},
            "timeseriesSettings.forecastPoint",
        ),
        ({"deploymentId": "d", "timeseriesSettings": {"type": "nowcast"}}, "timeseriesSettings.type"),
        (
            {"deploymentId": "d", "timeseriesSettings": {"forecastPointPolicy": {"type": "fixed"}}},
            "timeseriesSettings.forecastPointPolicy.type",
        ),
        (
            {"deploymentId": "d", "timeseriesSettings": {"forecastPointPolicy": {"type": "jobRunTimeBased"}}},
            "timeseriesSettings.forecastPointPolicy.configuration.offset",
        ),
        (
            {
                "deploymentId": "d",
                "timeseriesSettings": {
                    "forecastPointPolicy": {"type": "jobRunTimeBased", "configuration": {"offset": "-2 days"}}
                },
            },
            "timeseriesSettings.forecastPointPolicy.configuration.offset",
        ),
        (
            {
                "deploymentId": "d",
                "timeseriesSettings": {
                    "forecastPoint": "2020-01-01",
                    "forecastPointPolicy": {"type": "jobRunTimeBased", "configuration": {"offset": "-P1D"}},
                },
            },
            "timeseriesSettings.forecastPointPolicy",
        ),
        (
            {"deploymentId": "d", "intakeSettings": {"type": "filesystem", "path": "/etc/passwd"}},
            "intakeSettings.type",
        ),
    ],
)
def test_malformed_fields_are_named(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ParameterError) as info:
        parse_job_spec(body)
    assert info.value.message.startswith(field)
    assert info.value.status == 422


@pytest.mark.parametrize(
    ("offset", "delta"),
    [
        ("-P2DT5H", relativedelta(days=-2, hours=-5)),
        ("P1M", relativedelta(months=1)),
        (
            "-P1Y2M3W4DT5H6M7.5S",
            relativedelta(years=-1, months=-2, days=-25, hours=-5, minutes=-6, seconds=-7.5),
        ),
        ("PT30M", relativedelta(minutes=30)),
    ],
)
def test_forecast_point_policy_offsets_are_iso_durations(offset: str, delta: relativedelta) -> None:
    policy = {"type": "jobRunTimeBased", "configuration": {"offset": offset}}
    spec = parse_job_spec({"deploymentId": "d", "timeseriesSettings": {"forecastPointPolicy": policy}})
    assert spec.timeseries.forecast_point_offset == offset
    assert spec.to_api()["timeseriesSettings"]["forecastPointPolicy"] == policy
    assert iso_duration(offset, name="offset") == delta


@pytest.mark.parametrize(
    "offset", ["P", "PT", "P1DT", "1D", "-P-1D", "P1.5D", "P99999Y", "PT99999999999999999999S"]
)
def test_an_offset_that_is_not_a_duration_is_named(offset: str) -> None:
    with pytest.raises(ParameterError, match=r"^offset: (must be an ISO 8601 duration|'.*' is out of range)"):
        iso_duration(offset, name="offset")


def test_the_forecast_point_is_the_last_grid_point_at_or_before_start_plus_offset() -> None:
    start = dt.datetime(2024, 3, 31, 6, 10)  # a Sunday
    assert relative_forecast_point(TimeStep("day"), start, "-P1D") == dt.datetime(2024, 3, 30)
    assert relative_forecast_point(TimeStep("month"), start, "-P1M") == dt.datetime(2024, 2, 1)  # Feb 29
    weekdays = TimeStep("day", weekmask="1111100")
    assert relative_forecast_point(weekdays, start, "-P1D") == dt.datetime(2024, 3, 29)  # the Friday
    assert relative_forecast_point(TimeStep("hour"), start, "PT0S") == dt.datetime(2024, 3, 31, 6)
