"""Tabular wire shapes: DataRobot's JSON rows and CSV columns, passthrough, humility."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import polars as pl
import pytest

from tsengine.errors import BadRequestError, HumilityError, ParameterError
from tsengine.humility import with_rules
from tsengine.humility_cli import build_rule
from tsengine.options import PredictOptions
from tsengine.render import to_csv, to_json
from tsengine.tabular import TabularDeployment, train_tabular

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def credit() -> pl.DataFrame:
    return pl.read_csv(FIXTURES / "tabular_binary.csv")


@pytest.fixture(scope="module")
def binary() -> TabularDeployment:
    return train_tabular(credit().head(2500), target="status", task="binary", deployment_id="credit")


@pytest.fixture(scope="module")
def regression() -> TabularDeployment:
    return train_tabular(credit().head(2500).drop("status"), target="amount", task="regression")


def _json(
    deployment: TabularDeployment, rows: pl.DataFrame, options: PredictOptions
) -> list[dict[str, object]]:
    body = to_json(deployment, deployment.predict_result(rows, options), rows, options)
    data: list[dict[str, object]] = orjson.loads(body)["data"]
    return data


def _with(deployment: TabularDeployment, *rules: object) -> TabularDeployment:
    from dataclasses import replace

    return replace(deployment, metadata=with_rules(deployment.metadata, rules))  # type: ignore[arg-type]


def test_binary_json_rows_are_datarobots(binary: TabularDeployment) -> None:
    rows = credit().slice(3000, 5)
    data = _json(binary, rows, PredictOptions())
    assert [r["rowId"] for r in data] == list(range(5))
    for row in data:
        assert set(row) == {"rowId", "prediction", "predictionValues", "predictionThreshold"}
        values = row["predictionValues"]
        assert isinstance(values, list)
        assert {v["label"] for v in values} == {"good", "bad"}
        assert values[0]["value"] >= values[1]["value"]  # descending probability
        assert row["prediction"] == (
            "good" if next(v["value"] for v in values if v["label"] == "good") > 0.5 else "bad"
        )
        assert row["predictionThreshold"] == 0.5


def test_regression_json_labels_the_value_with_the_target(regression: TabularDeployment) -> None:
    data = _json(regression, credit().slice(3000, 3), PredictOptions())
    assert data[0]["predictionValues"] == [{"value": data[0]["prediction"], "label": "amount"}]


def test_explanations_json_types_feature_values(binary: TabularDeployment) -> None:
    rows = credit().slice(3000, 20)
    data = _json(binary, rows, PredictOptions(max_explanations=3))
    seen: set[type] = set()
    for row in data:
        explanations = row["predictionExplanations"]
        assert isinstance(explanations, list)
        assert 1 <= len(explanations) <= 3
        for item in explanations:
            assert set(item) == {"label", "feature", "featureValue", "strength", "qualitativeStrength"}
            assert item["label"] == "good"
            seen.add(type(item["featureValue"]))
        strengths = [abs(e["strength"]) for e in explanations]
        assert strengths == sorted(strengths, reverse=True)
        assert explanations[0]["qualitativeStrength"] in {"+++", "---"}
    assert {int, str} <= seen  # numbers stay numbers, categories stay strings


def test_rows_outside_the_thresholds_get_an_empty_list(binary: TabularDeployment) -> None:
    data = _json(binary, credit().slice(3000, 40), PredictOptions(max_explanations=2, threshold_low=0.2))
    good = [next(v["value"] for v in r["predictionValues"] if v["label"] == "good") for r in data]  # type: ignore[union-attr]
    assert [bool(r["predictionExplanations"]) for r in data] == [g < 0.2 for g in good]


def test_csv_columns(binary: TabularDeployment, regression: TabularDeployment) -> None:
    rows = credit().slice(3000, 4)
    options = PredictOptions(max_explanations=2)
    table = pl.read_csv(to_csv(binary, binary.predict_result(rows, options), rows, options))
    assert table.columns == [
        "status_bad_PREDICTION",
        "status_good_PREDICTION",
        "status_PREDICTION",
        "THRESHOLD",
        "POSITIVE_CLASS",
        *[
            f"EXPLANATION_{n}_{part}"
            for n in (1, 2)
            for part in ("FEATURE_NAME", "STRENGTH", "QUALITATIVE_STRENGTH", "ACTUAL_VALUE")
        ],
        "DEPLOYMENT_APPROVAL_STATUS",
    ]
    assert table.get_column("POSITIVE_CLASS").unique().to_list() == ["good"]
    plain = pl.read_csv(to_csv(regression, regression.predict_result(rows), rows, PredictOptions()))
    assert plain.columns == ["amount_PREDICTION", "DEPLOYMENT_APPROVAL_STATUS"]


def test_passthrough_columns(binary: TabularDeployment) -> None:
    rows = credit().slice(3000, 3).with_columns(pl.lit("K\u00f6ln").alias("city"))
    options = PredictOptions(passthrough_columns=("city", "age"))
    data = _json(binary, rows, options)
    assert data[0]["passthroughValues"] == {"city": "K\u00f6ln", "age": rows.item(0, "age")}
    everything = PredictOptions(passthrough_all=True)
    table = pl.read_csv(io.BytesIO(to_csv(binary, binary.predict_result(rows), rows, everything)))
    assert table.columns[-rows.width :] == rows.columns
    with pytest.raises(BadRequestError, match="'town' not found") as info:
        to_json(binary, binary.predict_result(rows), rows, PredictOptions(passthrough_columns=("town",)))
    assert info.value.status == 400
    with pytest.raises(ParameterError, match="cannot both be passed"):
        binary.predict_result(rows, PredictOptions(passthrough_columns=("age",), passthrough_all=True))
    with pytest.raises(ParameterError, match="must not be blank"):
        binary.predict_result(rows, PredictOptions(passthrough_columns=(" ",)))


def test_humility_no_op_and_override_on_a_classifier(binary: TabularDeployment) -> None:
    watch = build_rule(
        binary, trigger="low-observation-region", action="no-op", feature="home", rule_id="home"
    )
    assert set(watch.categories) == set(binary.schema.column("home").categories)  # type: ignore[union-attr]
    sure = build_rule(
        binary,
        trigger="uncertain-prediction",
        action="override",
        low=0.3,
        high=0.7,
        value="bad",
        rule_id="unsure",
    )
    deployment = _with(binary, watch, sure)
    rows = (
        credit()
        .slice(3000, 30)
        .with_columns(
            pl.when(pl.int_range(pl.len()) == 0)
            .then(pl.lit("castle"))
            .otherwise(pl.col("home"))
            .alias("home")
        )
    )
    data = _json(deployment, rows, PredictOptions())
    assert data[0]["humility"][0] == {
        "ruleId": "home",
        "triggered": True,
        "ruleName": "Low Observation Region Trigger",
    }  # type: ignore[index]
    assert all(r["humility"][0]["triggered"] is False for r in data[1:])  # type: ignore[index]
    for row in data:
        good = next(v["value"] for v in row["predictionValues"] if v["label"] == "good")  # type: ignore[union-attr]
        unsure = 0.3 <= good <= 0.7
        assert row["humility"][1]["triggered"] is (not unsure)  # type: ignore[index]
        if not unsure:
            assert row["prediction"] == "bad"


def test_humility_outlying_input_throw_error(binary: TabularDeployment) -> None:
    rule = build_rule(binary, trigger="outlying-input", action="throw-error", feature="age")
    age = binary.schema.column("age")
    assert age is not None
    assert (rule.low, rule.high) == (age.low, age.high) == (18.0, 68.0)
    deployment = _with(binary, rule)
    rows = credit().slice(3000, 3)
    assert deployment.predict_result(rows).frame.height == 3
    with pytest.raises(HumilityError, match="Humility ReturnError action triggered.") as info:
        deployment.predict_result(rows.with_columns(pl.lit(150).alias("age")))
    assert info.value.status == 480


def test_humility_override_regression_keeps_prediction_values(regression: TabularDeployment) -> None:
    rule = build_rule(regression, trigger="uncertain-prediction", action="override", high=1.0, value="5220")
    data = _json(_with(regression, rule), credit().slice(3000, 2), PredictOptions())
    assert data[0]["prediction"] == 5220.0
    assert data[0]["predictionValues"][0]["value"] != 5220.0  # type: ignore[index]
    table = pl.read_csv(
        to_csv(
            _with(regression, rule),
            _with(regression, rule).predict_result(credit().slice(3000, 2)),
            credit(),
            PredictOptions(),
        )
    )
    assert table.get_column("amount_PREDICTION").to_list() == [5220.0, 5220.0]
    assert table.get_column(f"HUMILITY_{rule.rule_id}_TRIGGERED").to_list() == [True, True]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"trigger": "outlying-input", "feature": "home"}, "needs a numeric feature"),
        ({"trigger": "low-observation-region", "feature": "age"}, "needs a categorical feature"),
        ({"trigger": "uncertain-prediction", "high": 2.0}, r"probability in \[0, 1\]"),
        (
            {"trigger": "uncertain-prediction", "high": 0.5, "action": "override", "value": "meh"},
            "not a class",
        ),
        ({"trigger": "uncertain-prediction", "high": 0.5, "action": "explode"}, "unknown humility action"),
    ],
)
def test_build_rule_errors_on_a_classifier(
    binary: TabularDeployment, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ParameterError, match=message):
        build_rule(binary, **{"action": "no-op", **kwargs})  # type: ignore[arg-type]
