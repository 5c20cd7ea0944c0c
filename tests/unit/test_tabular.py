"""Tabular deployments on real data: training, schema checks, predictions, explanations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

import tsengine
from tsengine.errors import (
    DatetimeParseError,
    MissingColumnError,
    ParameterError,
    TrainingDataError,
    ValidationError,
)
from tsengine.explain import LABEL, explanation_columns
from tsengine.options import PredictOptions
from tsengine.tabular import TabularDeployment, train_tabular
from tsengine.tabular.deployment import probability_column

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def ames() -> pl.DataFrame:
    return pl.read_csv(FIXTURES / "tabular_regression.csv", schema_overrides={"sale_date": pl.String})


def credit() -> pl.DataFrame:
    return pl.read_csv(FIXTURES / "tabular_binary.csv")


@pytest.fixture(scope="module")
def regression() -> TabularDeployment:
    return train_tabular(
        ames(), target="sale_price", task="regression", datetime_column="sale_date", deployment_id="ames"
    )


@pytest.fixture(scope="module")
def binary() -> TabularDeployment:
    return train_tabular(credit(), target="status", task="binary", deployment_id="credit", threshold=0.4)


@pytest.fixture(scope="module")
def multiclass() -> TabularDeployment:
    frame = credit().head(2000).filter(pl.col("home").is_in(["owner", "rent", "parents", "priv"]))
    return train_tabular(frame, target="home", task="multiclass", deployment_id="home")


def test_regression_learns_the_schema_and_holds_out_the_latest_sales(regression: TabularDeployment) -> None:
    date = regression.schema.column("sale_date")
    assert date is not None
    assert date.kind == "date"
    assert "year" in date.date_parts
    assert "month" in date.date_parts
    assert "day" not in date.date_parts  # always the 1st: a constant part is dropped
    assert regression.schema.column("neighborhood").kind == "categorical"  # type: ignore[union-attr]
    assert regression.schema.column("gr_liv_area").kind == "numeric"  # type: ignore[union-attr]
    assert "sale_date (year)" in regression.schema.names
    training = regression.metadata["training"]
    assert training["validation_split"] == "time"
    assert training["validation_rows"] == 586
    assert training["validation"]["rmse"] < 40_000  # prices average ~180,000
    assert regression.input_schema_overrides()["neighborhood"] == pl.String()


def test_regression_rows_keep_input_order(regression: TabularDeployment) -> None:
    rows = ames().slice(100, 50)
    forward = regression.predict(rows)
    backward = regression.predict(rows.reverse())
    assert forward.get_column("rowId").to_list() == list(range(50))
    assert forward.get_column("prediction").to_list() == pytest.approx(
        backward.get_column("prediction").reverse().to_list()
    )
    error = np.abs(forward.get_column("prediction").to_numpy() - rows.get_column("sale_price").to_numpy())
    assert np.median(error) < 20_000


def test_regression_explanations_sum_with_the_base_value_to_the_prediction(
    regression: TabularDeployment,
) -> None:
    rows = ames().slice(0, 40)
    x = regression.schema.matrix(regression.schema.check(rows))
    contrib = regression.contributions(x, np.zeros(len(x), dtype=np.int64))
    prediction = regression.predict(rows).get_column("prediction").to_numpy()
    np.testing.assert_allclose(contrib.sum(axis=1), prediction, rtol=1e-9)
    out = regression.predict_result(rows, PredictOptions(max_explanations=3)).frame
    f1, s1, q1, _ = explanation_columns(1)
    strongest = np.abs(contrib[:, :-1]).max(axis=1)
    np.testing.assert_allclose(np.abs(out.get_column(s1).to_numpy()), strongest)
    assert set(out.get_column(q1).to_list()) <= {"+++", "---"}
    assert set(out.get_column(f1).to_list()) <= set(regression.schema.names)
    assert out.get_column(LABEL).unique().to_list() == ["sale_price"]


def test_binary_explanations_sum_to_the_log_odds_of_the_positive_class(binary: TabularDeployment) -> None:
    rows = credit().slice(0, 60)
    assert binary.classes == ("bad", "good")
    assert binary.positive_class == "good"
    out = binary.predict(rows)
    p = out.get_column(probability_column("status", "good")).to_numpy()
    x = binary.schema.matrix(binary.schema.check(rows))
    contrib = binary.contributions(x, np.ones(len(x), dtype=np.int64))
    np.testing.assert_allclose(contrib.sum(axis=1), np.log(p / (1 - p)), rtol=1e-7, atol=1e-9)
    expected = np.where(p > 0.4, "good", "bad").tolist()
    assert out.get_column("prediction").to_list() == expected
    assert out.get_column("predictionThreshold").unique().to_list() == [0.4]


def test_binary_handles_missing_values_and_unseen_categories(binary: TabularDeployment) -> None:
    rows = credit().filter(pl.col("income").is_null() | pl.col("home").is_null()).head(20)
    assert binary.predict(rows).get_column("prediction").null_count() == 0
    unseen = rows.with_columns(pl.lit("castle").alias("home"))
    missing = rows.with_columns(pl.lit(None, pl.String).alias("home"))
    p = probability_column("status", "good")
    assert binary.predict(unseen).get_column(p).to_list() == binary.predict(missing).get_column(p).to_list()


def test_thresholds_choose_the_rows_to_explain(binary: TabularDeployment) -> None:
    rows = credit().slice(0, 200)
    out = binary.predict_result(rows, PredictOptions(max_explanations=2, threshold_high=0.9)).frame
    p = out.get_column(probability_column("status", "good")).to_numpy()
    explained = out.get_column(explanation_columns(1)[0]).is_not_null().to_numpy()
    assert explained.tolist() == (p > 0.9).tolist()
    assert 0 < explained.sum() < len(p)


def test_multiclass_probabilities_and_explained_class(multiclass: TabularDeployment) -> None:
    rows = credit().slice(3000, 30)
    out = multiclass.predict_result(rows, PredictOptions(max_explanations=1)).frame
    proba = out.select(probability_column("home", c) for c in multiclass.classes).to_numpy()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    top = np.asarray(multiclass.classes)[proba.argmax(axis=1)].tolist()
    assert out.get_column("prediction").to_list() == top
    assert out.get_column(LABEL).to_list() == top
    x = multiclass.schema.matrix(multiclass.schema.check(rows))
    contrib = multiclass.contributions(x, proba.argmax(axis=1))
    raw = np.asarray(multiclass.booster.predict(x, raw_score=True))
    np.testing.assert_allclose(contrib.sum(axis=1), raw[np.arange(len(x)), proba.argmax(axis=1)], rtol=1e-7)


def test_missing_feature_columns_are_named(regression: TabularDeployment) -> None:
    with pytest.raises(MissingColumnError) as info:
        regression.predict(ames().drop("lot_area", "neighborhood"))
    assert info.value.status == 422
    assert "'lot_area'" in info.value.message
    assert "'neighborhood'" in info.value.message


def test_wrong_types_name_column_and_row(binary: TabularDeployment) -> None:
    rows = credit().head(5).with_columns(pl.col("age").cast(pl.String))
    rows = rows.with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("old")).otherwise(pl.col("age")).alias("age")
    )
    with pytest.raises(ValidationError) as info:
        binary.predict(rows)
    assert info.value.status == 422
    assert "column 'age' must hold numbers; rows 3 hold 'old'" in info.value.message
    text_numbers = credit().head(5).with_columns(pl.col("age").cast(pl.String).str.pad_start(4))
    assert binary.predict(text_numbers).height == 5  # " 30" is still a number


def test_bad_dates_name_column_and_row(regression: TabularDeployment) -> None:
    rows = (
        ames()
        .head(4)
        .with_columns(
            pl.when(pl.int_range(pl.len()) == 2)
            .then(pl.lit("someday"))
            .otherwise(pl.col("sale_date"))
            .alias("sale_date")
        )
    )
    with pytest.raises(DatetimeParseError, match=r"column 'sale_date' .* rows 2 hold 'someday'"):
        regression.predict(rows)
    empty = ames().head(4).with_columns(pl.lit(None, pl.String).alias("sale_date"))
    assert regression.predict(empty).get_column("prediction").null_count() == 0


def test_deployment_round_trips_through_the_registry_without_pickle(
    tmp_path: Path, binary: TabularDeployment
) -> None:
    registry = tsengine.Registry(tmp_path)
    folder = registry.save(binary)
    assert sorted(p.name for p in folder.iterdir()) == ["deployment.json", "model.txt"]
    loaded = registry.load("credit")
    assert isinstance(loaded, TabularDeployment)
    assert loaded.kind == "tabular"
    assert loaded.classes == binary.classes
    assert loaded.threshold == 0.4
    assert loaded.model_id == binary.model_id
    rows = credit().slice(10, 20)
    assert loaded.predict(rows).equals(binary.predict(rows))
    info = loaded.info()
    assert info["task"] == "binary"
    assert info["positive_class"] == "good"
    assert info["prediction_threshold"] == 0.4


def test_integer_labels_keep_their_type() -> None:
    frame = credit().head(600).with_columns((pl.col("status") == "good").cast(pl.Int64).alias("status"))
    deployment = train_tabular(frame, target="status", task="binary", positive_class=0)
    assert deployment.classes == (1, 0)
    assert deployment.metadata["training"]["rounds"] >= 10
    assert deployment.predict(frame.head(3)).schema["prediction"] == pl.Int64


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"task": "ranking"}, ParameterError, "unknown task 'ranking'"),
        ({"task": "binary", "threshold": 1.0}, ParameterError, "between 0 and 1"),
        (
            {"task": "binary", "target": "home"},
            TrainingDataError,
            "binary needs exactly 2; use --task multiclass",
        ),
        ({"task": "multiclass"}, TrainingDataError, "use --task binary"),
        ({"task": "regression"}, TrainingDataError, "must be numeric for regression"),
        ({"task": "binary", "target": "nope"}, MissingColumnError, "'nope'"),
        ({"task": "binary", "datetime_column": "status"}, ParameterError, "cannot also be the target"),
        ({"task": "binary", "positive_class": "meh"}, ParameterError, "not a class"),
    ],
)
def test_training_errors_name_the_problem(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    options: dict[str, object] = {"target": "status", **kwargs}
    with pytest.raises(error, match=message):
        train_tabular(credit().head(100), **options)  # type: ignore[arg-type]


def test_too_few_rows_and_no_features() -> None:
    with pytest.raises(TrainingDataError, match="at least 10"):
        train_tabular(credit().head(5), target="status", task="binary")
    ids = pl.DataFrame({"name": [f"n{i}" for i in range(30)], "y": [float(i) for i in range(30)]})
    with pytest.raises(TrainingDataError, match="no usable feature"):
        train_tabular(ids, target="y", task="regression")
