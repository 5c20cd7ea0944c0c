"""Job specs: DataRobot's defaults, the client's exact bodies, and 422s that name the field."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tsengine.batch.spec import DEFAULT_CHUNK_BYTES, parse_job_spec
from tsengine.errors import ParameterError

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
