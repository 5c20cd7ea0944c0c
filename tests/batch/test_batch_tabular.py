"""Batch jobs on tabular deployments: row chunks, probabilities, thresholds, explanations, row errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

import tsengine
from tsengine.batch import BatchEngine, parse_job_spec
from tsengine.tabular import TabularDeployment, train_tabular
from tsengine.tabular.deployment import probability_column

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.fixture(scope="module")
def credit() -> pl.DataFrame:
    return pl.read_csv(FIXTURES / "tabular_binary.csv")


@pytest.fixture(scope="module")
def deployment(credit: pl.DataFrame) -> TabularDeployment:
    return train_tabular(credit, target="status", task="binary", deployment_id="credit", threshold=0.4)


@pytest.fixture
def engine(tmp_path: Path, deployment: TabularDeployment) -> BatchEngine:
    registry = tsengine.Registry(tmp_path / "registry")
    registry.save(deployment)
    return BatchEngine(registry)


def run(engine: BatchEngine, source: Path, out: Path, **extra: Any) -> dict[str, Any]:
    body = {
        "deploymentId": "credit",
        "intakeSettings": {"type": "filesystem", "path": str(source)},
        "outputSettings": {"type": "filesystem", "path": str(out)},
        **extra,
    }
    job = engine.create_job(parse_job_spec(body, allow_filesystem=True))
    return engine.run_now(job["id"])


def test_rows_in_order_equal_one_predict(
    engine: BatchEngine, tmp_path: Path, credit: pl.DataFrame, deployment: TabularDeployment
) -> None:
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    credit.write_csv(source)
    done = run(engine, source, out, chunkSize=4096, numConcurrent=2, passthroughColumns=["age"])
    assert done["status"] == "COMPLETED", done["statusDetails"]
    got = pl.read_csv(out)
    expected = deployment.predict(credit)
    assert got.height == credit.height == done["scoredRows"]
    assert got["age"].to_list() == credit["age"].to_list()  # input order kept across chunks
    column = probability_column("status", deployment.positive_class)
    np.testing.assert_allclose(got[column].to_numpy(), expected[column].to_numpy(), rtol=0, atol=1e-12)
    assert set(got["THRESHOLD"]) == {0.4}


def test_threshold_override_and_probability_columns(
    engine: BatchEngine, tmp_path: Path, credit: pl.DataFrame, deployment: TabularDeployment
) -> None:
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    credit.write_csv(source)
    done = run(engine, source, out, predictionThreshold=0.9, includeProbabilities=False)
    assert done["status"] == "COMPLETED"
    got = pl.read_csv(out)
    assert not any(c.endswith("_PREDICTION") and c != "status_PREDICTION" for c in got.columns)
    assert set(got["THRESHOLD"]) == {0.9}
    positive = (
        deployment.predict(credit).get_column(probability_column("status", deployment.positive_class)) > 0.9
    )
    assert (got["status_PREDICTION"] == str(deployment.positive_class)).to_list() == positive.to_list()


def test_explanations_and_status(engine: BatchEngine, tmp_path: Path, credit: pl.DataFrame) -> None:
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    credit.head(50).write_csv(source)
    done = run(engine, source, out, maxExplanations=2, includePredictionStatus=True)
    assert done["status"] == "COMPLETED", done["statusDetails"]
    got = pl.read_csv(out)
    assert "EXPLANATION_1_FEATURE_NAME" in got.columns
    assert set(got["prediction_status"]) == {"OK"}


def test_a_bad_row_is_reported_and_the_rest_scored(
    engine: BatchEngine, tmp_path: Path, credit: pl.DataFrame
) -> None:
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    credit.head(40).drop("income").write_csv(source)
    failed = run(engine, source, out)
    assert failed["status"] == "FAILED"
    assert "income" in failed["statusDetails"]
    assert not out.exists()


def test_rows_that_fail_carry_their_error_with_abort_off(
    engine: BatchEngine, tmp_path: Path, credit: pl.DataFrame
) -> None:
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    frame = credit.head(200).with_columns(pl.col("income").cast(pl.String))
    frame = frame.with_columns(
        pl.when(pl.int_range(pl.len()).is_in([7, 150]))
        .then(pl.lit("lots"))
        .otherwise(pl.col("income"))
        .alias("income")
    )
    frame.write_csv(source)
    done = run(
        engine, source, out, abortOnError=False, includePredictionStatus=True, passthroughColumns=["age"]
    )
    assert done["status"] == "COMPLETED", done["statusDetails"]
    assert done["failedRows"] == 2
    got = pl.read_csv(out)
    assert got.height == 200
    assert got["age"].to_list() == frame["age"].to_list()
    bad = got.filter(pl.col("prediction_status") != "OK")
    assert bad.height == 2
    assert bad["prediction_status"].str.contains("input row (8|151)").all()
    assert bad["prediction_status"].str.contains("income").all()
