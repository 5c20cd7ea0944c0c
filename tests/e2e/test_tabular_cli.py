"""End to end: tabular deployments trained and served by the CLI and the real server.

A regression (Ames house prices) and a binary (credit scoring) deployment are
trained with ``tsengine train --task`` into one registry next to a small time
series deployment; the same predApi URL then answers all three, in JSON and CSV,
to httpx and to DataRobot's own ``datarobot-predict``; humility rules are managed
with ``tsengine humility``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import datarobot
import httpx
import orjson
import pandas as pd
import polars as pl
import pytest
from datarobot_predict import deployment as dr_deployment
from typer.testing import CliRunner

import tsengine
from api import Settings
from api.testing import running
from tsengine.cli import app

pytestmark = pytest.mark.filterwarnings(
    "ignore:Using an empty collection for 'allowed_methods':FutureWarning"
)

ROOT = Path(__file__).resolve().parents[2]
AMES = ROOT / "fixtures" / "tabular_regression.csv"
CREDIT = ROOT / "fixtures" / "tabular_binary.csv"
runner = CliRunner()


def cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("registry")
    code, _, err = cli(
        "train",
        str(AMES),
        "--name",
        "ames",
        "--target",
        "sale_price",
        "--task",
        "regression",
        "--datetime",
        "sale_date",
        "--registry",
        str(path),
    )
    assert code == 0, err
    code, _, err = cli(
        "train",
        str(CREDIT),
        "--name",
        "credit",
        "--target",
        "status",
        "--task",
        "binary",
        "--registry",
        str(path),
    )
    assert code == 0, err
    flights = pl.read_csv(ROOT / "fixtures" / "flights_daily.csv", schema_overrides={"date": pl.String})
    flights = flights.filter((pl.col("series") == "JFK-B6") & (pl.col("date") < "2013-03-01"))
    series = tsengine.train(
        flights,
        target="delayed",
        datetime_column="date",
        known_in_advance=["scheduled"],
        models=["seasonal_naive"],
        backtests=1,
        forecast_window=[1, 3],
        feature_derivation_window=[-14, 0],
        deployment_id="flights",
    )
    tsengine.Registry(path).save(series)
    return path


@pytest.fixture(scope="module")
def base_url(registry: Path) -> Iterator[str]:
    with running(Settings(registry=registry)) as url:
        yield url


def sample(path: Path, n: int = 5) -> bytes:
    return pl.read_csv(path, infer_schema_length=0).slice(100, n).write_csv().encode()


def post(
    base_url: str,
    deployment_id: str,
    body: bytes,
    *,
    route: str = "predictions",
    accept: str = "application/json",
    **params: object,
) -> httpx.Response:
    return httpx.post(
        f"{base_url}/predApi/v1.0/deployments/{deployment_id}/{route}",
        params=params,  # type: ignore[arg-type]
        content=body,
        headers={"content-type": "text/csv", "accept": accept},
    )


def test_cli_predict_writes_json_with_explanations(registry: Path, tmp_path: Path) -> None:
    data = tmp_path / "rows.csv"
    data.write_bytes(sample(AMES))
    code, out, err = cli(
        "predict",
        "ames",
        str(data),
        "--format",
        "json",
        "--max-explanations",
        "2",
        "--registry",
        str(registry),
    )
    assert code == 0, err
    rows = orjson.loads(out)["data"]
    assert [r["rowId"] for r in rows] == list(range(5))
    assert all(len(r["predictionExplanations"]) == 2 for r in rows)
    assert rows[0]["predictionValues"][0]["label"] == "sale_price"
    code, out, _ = cli("predict", "credit", str(data), "--registry", str(registry))
    assert code == 2  # the credit deployment needs credit columns


def test_same_url_answers_time_series_regression_and_binary(base_url: str) -> None:
    regression = post(base_url, "ames", sample(AMES))
    binary = post(base_url, "credit", sample(CREDIT))
    history = (
        pl.read_csv(ROOT / "fixtures" / "flights_daily.csv").filter(pl.col("series") == "JFK-B6").head(40)
    )
    series = post(base_url, "flights", history.write_csv().encode(), relaxKnownInAdvanceFeaturesCheck="true")
    for response in (regression, binary, series):
        assert response.status_code == 200, response.text
    assert binary.json()["data"][0]["predictionThreshold"] == 0.5
    assert {v["label"] for v in binary.json()["data"][0]["predictionValues"]} == {"good", "bad"}
    assert "forecastDistance" in series.json()["data"][0]
    csv = post(base_url, "credit", sample(CREDIT), accept="text/csv")
    assert csv.headers["content-type"].startswith("text/csv")
    table = pl.read_csv(io.BytesIO(csv.content))
    assert table.columns[:5] == [
        "status_bad_PREDICTION",
        "status_good_PREDICTION",
        "status_PREDICTION",
        "THRESHOLD",
        "POSITIVE_CLASS",
    ]


def test_deprecated_explanations_route_and_max_codes(base_url: str) -> None:
    default = post(base_url, "credit", sample(CREDIT), route="predictionExplanations")
    assert default.status_code == 200, default.text
    assert all(len(r["predictionExplanations"]) == 3 for r in default.json()["data"])
    one = post(base_url, "credit", sample(CREDIT), route="predictionExplanations", maxCodes=1)
    assert all(len(r["predictionExplanations"]) == 1 for r in one.json()["data"])
    csv = post(base_url, "ames", sample(AMES), accept="text/csv", maxExplanations=2)
    assert "EXPLANATION_2_QUALITATIVE_STRENGTH" in pl.read_csv(io.BytesIO(csv.content)).columns


def test_schema_errors_over_http(base_url: str) -> None:
    missing = post(base_url, "ames", pl.read_csv(AMES).slice(0, 3).drop("lot_area").write_csv().encode())
    assert missing.status_code == 422
    assert "'lot_area'" in missing.json()["message"]
    wrong = pl.read_csv(CREDIT, infer_schema_length=0).slice(0, 3).with_columns(pl.lit("old").alias("age"))
    response = post(base_url, "credit", wrong.write_csv().encode())
    assert response.status_code == 422
    assert "column 'age' must hold numbers; rows 0, 1, 2" in response.json()["message"]
    passthrough = post(base_url, "credit", sample(CREDIT), passthroughColumns="town")
    assert passthrough.status_code == 400
    assert "'town'" in passthrough.json()["message"]


def test_datarobot_predict_client_reads_tabular_predictions(base_url: str) -> None:
    datarobot.client.set_client(datarobot.rest.RESTClientObject(auth="tok", endpoint=f"{base_url}/api/v2"))
    dr_deployment.clear_context()
    try:
        frame = pd.read_csv(CREDIT).iloc[200:210]
        result = dr_deployment.predict(
            "credit", frame, prediction_endpoint=f"{base_url}/predApi/v1.0", passthrough_columns={"age"}
        )
        assert set(result.dataframe["status_PREDICTION"]) <= {"good", "bad"}
        assert result.dataframe["age"].tolist() == frame["age"].tolist()
        ames = pd.read_csv(AMES).iloc[:8]
        prices = dr_deployment.predict("ames", ames, prediction_endpoint=f"{base_url}/predApi/v1.0").dataframe
        assert len(prices) == 8
        assert prices["sale_price_PREDICTION"].between(30_000, 800_000).all()
    finally:
        dr_deployment.clear_context()


def test_humility_rules_through_the_cli_and_http(registry: Path) -> None:
    # Each phase starts a fresh server: the API's model cache keeps the version it loaded.
    reg = ["--registry", str(registry)]
    code, out, err = cli(
        "humility",
        "add",
        "credit",
        "--trigger",
        "uncertain-prediction",
        "--action",
        "throw-error",
        "--low",
        "0.0",
        "--high",
        "0.01",
        "--rule-id",
        "strict",
        *reg,
    )
    assert code == 0, err
    assert out.strip() == "strict"
    code, out, _ = cli("humility", "list", "credit", "--json", *reg)
    assert [r["ruleId"] for r in orjson.loads(out)] == ["strict"]
    with running(Settings(registry=registry)) as base_url:
        refused = post(base_url, "credit", sample(CREDIT))
    assert refused.status_code == 480
    assert refused.json() == {"message": "Humility ReturnError action triggered."}
    code, _, err = cli("humility", "remove", "credit", "strict", *reg)
    assert code == 0, err
    code, _, err = cli(
        "humility",
        "add",
        "credit",
        "--trigger",
        "low-observation-region",
        "--feature",
        "home",
        "--rule-id",
        "homes",
        *reg,
    )
    assert code == 0, err
    body = pl.read_csv(CREDIT).slice(0, 2).with_columns(pl.lit("castle").alias("home")).write_csv().encode()
    with running(Settings(registry=registry)) as base_url:
        seen = post(base_url, "credit", body)
    assert seen.status_code == 200, seen.text
    assert seen.json()["data"][0]["humility"] == [
        {"ruleId": "homes", "triggered": True, "ruleName": "Low Observation Region Trigger"}
    ]
    code, _, err = cli("humility", "remove", "credit", "nope", *reg)
    assert code == 2
    assert "no rule 'nope'" in err
    code, _, err = cli("humility", "add", "credit", "--trigger", "outlying-input", "--feature", "home", *reg)
    assert code == 2
    assert "needs a numeric feature" in err
    code, _, err = cli("humility", "list", "ghost", *reg)
    assert code == 2
    assert "not found" in err


def test_binary_threshold_and_positive_class_flags(tmp_path: Path) -> None:
    code, _, err = cli(
        "train",
        str(CREDIT),
        "--name",
        "credit-strict",
        "--target",
        "status",
        "--task",
        "binary",
        "--threshold",
        "0.3",
        "--positive-class",
        "bad",
        "--registry",
        str(tmp_path),
    )
    assert code == 0, err
    dep = tsengine.Registry(tmp_path).load("credit-strict")
    assert dep.threshold == 0.3
    assert dep.positive_class == "bad"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--task", "binary", "--positive-class", "excellent"], "positive class 'excellent'"),
        (["--task", "binary", "--threshold", "1.5"], "between 0 and 1"),
        (["--task", "regression", "--threshold", "0.3"], "--task binary only"),
        (["--datetime", "date", "--threshold", "0.3"], "--task binary only"),
    ],
)
def test_binary_flags_reject_bad_values(tmp_path: Path, extra: list[str], message: str) -> None:
    target = "sale_price" if "regression" in extra or "--datetime" in extra else "status"
    data = AMES if target == "sale_price" else CREDIT
    code, _, err = cli(
        "train", str(data), "--name", "x", "--target", target, *extra, "--registry", str(tmp_path)
    )
    assert code == 2
    assert message in " ".join(err.split())
    assert not (tmp_path / "x").exists()
