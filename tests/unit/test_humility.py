"""Humility rules: validation, JSON round trip, triggers, actions, time series wiring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

import tsengine
from tsengine.errors import HumilityError, ParameterError
from tsengine.humility import (
    HUMILITY_ERROR_MESSAGE,
    MODEL_PREDICTION,
    HumilityRule,
    apply_humility,
    evaluate,
    rules_from_metadata,
    with_rules,
)
from tsengine.humility_cli import build_rule, update_rules
from tsengine.options import PredictOptions
from tsengine.render import to_csv, to_json

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def _rule(trigger: str = "uncertain_prediction", action: str = "no_op", **kw: object) -> HumilityRule:
    return HumilityRule(rule_id=kw.pop("rule_id", "r1"), name="rule", trigger=trigger, action=action, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"trigger": "nope"}, "unknown humility trigger"),
        ({"action": "nope", "high": 1.0}, "unknown humility action"),
        ({}, "needs a lower bound, an upper bound or both"),
        ({"low": 2.0, "high": 1.0}, "must not exceed"),
        ({"low": "x"}, "must be a finite number"),
        ({"trigger": "outlying_input", "low": 1.0}, "needs a feature"),
        ({"trigger": "low_observation_region", "feature": "f"}, "categories seen in training"),
        ({"action": "override", "high": 1.0}, "needs the value"),
    ],
)
def test_invalid_rules_name_the_fix(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        _rule(**kwargs)  # type: ignore[arg-type]


def test_rules_round_trip_through_metadata() -> None:
    rules = (
        _rule(high=10.0),
        _rule("outlying_input", "override", rule_id="r2", feature="x", low=0.0, high=1.0, override=5.0),
        _rule("low_observation_region", "throw_error", rule_id="r3", feature="c", categories=("a", "b")),
    )
    metadata = with_rules({"model_id": "m"}, rules)
    assert metadata["model_id"] == "m"
    assert rules_from_metadata(metadata) == rules
    assert rules_from_metadata({}) == ()


def test_every_trigger_fires_only_where_it_should() -> None:
    inputs = pl.DataFrame({"x": [0.5, 5.0, None, -1.0], "c": ["a", "z", None, "b"]})
    rules = [
        _rule(low=0.0, high=10.0),
        _rule("outlying_input", feature="x", low=0.0, high=1.0),
        _rule("low_observation_region", feature="c", categories=("a", "b")),
        _rule("outlying_input", feature="absent", high=1.0),
    ]
    fired = evaluate(rules, score=np.array([5.0, 11.0, np.nan, -0.5]), inputs=inputs)
    assert fired.to_numpy().T.tolist() == [
        [False, True, False, True],
        [False, True, False, True],
        [False, True, False, False],
        [False, False, False, False],
    ]


def _out(values: list[float]) -> pl.DataFrame:
    return pl.DataFrame({"rowId": range(len(values)), "prediction": values})


def test_no_op_reports_every_rule_on_every_row() -> None:
    rules = [_rule(high=10.0, rule_id="5ebad4735f11b33a38ff3e0d"), _rule(low=-100.0, rule_id="r2")]
    out = apply_humility(_out([1.0, 122.8]), rules, score=np.array([1.0, 122.8]), inputs=pl.DataFrame())
    assert out.get_column("prediction").to_list() == [1.0, 122.8]
    assert MODEL_PREDICTION not in out.columns
    assert out.get_column("humility").to_list()[1] == [
        {"ruleId": "5ebad4735f11b33a38ff3e0d", "triggered": True, "ruleName": "rule"},
        {"ruleId": "r2", "triggered": False, "ruleName": "rule"},
    ]


def test_override_replaces_the_prediction_first_rule_wins() -> None:
    rules = [
        _rule(action="override", high=10.0, override=5220.0),
        _rule(action="override", rule_id="r2", high=0.0, override=-1.0),
    ]
    out = apply_humility(_out([1.0, 122.8]), rules, score=np.array([1.0, 122.8]), inputs=pl.DataFrame())
    assert out.get_column("prediction").to_list() == [-1.0, 5220.0]
    assert out.get_column(MODEL_PREDICTION).to_list() == [1.0, 122.8]


def test_throw_error_raises_480_with_datarobots_message() -> None:
    rules = [_rule(action="throw_error", high=10.0)]
    apply_humility(_out([1.0]), rules, score=np.array([1.0]), inputs=pl.DataFrame())  # not triggered
    with pytest.raises(HumilityError) as info:
        apply_humility(_out([1.0, 11.0]), rules, score=np.array([1.0, 11.0]), inputs=pl.DataFrame())
    assert info.value.status == 480
    assert info.value.message == HUMILITY_ERROR_MESSAGE == "Humility ReturnError action triggered."


# ----------------------------------------------------------- time series wiring


@pytest.fixture(scope="module")
def flights() -> pl.DataFrame:
    frame = pl.read_csv(FIXTURES / "flights_daily.csv", schema_overrides={"date": pl.String})
    return frame.filter(pl.col("series").is_in(["EWR-UA", "JFK-B6"]) & (pl.col("date") < "2013-04-01"))


@pytest.fixture(scope="module")
def naive(flights: pl.DataFrame) -> tsengine.Deployment:
    return tsengine.train(
        flights,
        target="delayed",
        datetime_column="date",
        series_id_column="series",
        known_in_advance=["scheduled"],
        models=["seasonal_naive"],
        backtests=1,
        forecast_window=[1, 3],
        feature_derivation_window=[-14, 0],
        deployment_id="flights",
    )


def test_time_series_rules_are_stored_atomically_and_applied(
    tmp_path: Path, naive: tsengine.Deployment, flights: pl.DataFrame
) -> None:
    registry = tsengine.Registry(tmp_path)
    registry.save(naive)
    high = build_rule(
        naive, trigger="uncertain-prediction", action="override", high=0.0, value="-7", rule_id="hi"
    )
    unseen = build_rule(
        naive, trigger="low-observation-region", action="no-op", feature="series", categories=("EWR-UA",)
    )
    update_rules(registry, "flights", lambda _d, rules: (*rules, high, unseen))
    assert registry.versions("flights") == ["v0001", "v0002"]
    loaded = registry.load("flights")
    assert [r.rule_id for r in rules_from_metadata(loaded.metadata)] == ["hi", unseen.rule_id]
    options = PredictOptions(relax_known_in_advance=True)
    result = loaded.predict_result(flights, options)
    frame = result.frame
    assert (frame.get_column("prediction") == -7.0).all()
    reports = frame.get_column("humility").to_list()
    assert {r[1]["triggered"] for r in reports} == {True, False}  # JFK-B6 is unseen, EWR-UA is not
    body = to_json(loaded, result, flights, options)
    assert b'"prediction":-7.0' in body
    assert b'"ruleId":"hi","triggered":true' in body
    assert b'"predictionValues":[{"value":-7.0' not in body  # the model's value stays
    csv = pl.read_csv(to_csv(loaded, result, flights, options))
    assert "HUMILITY_hi_TRIGGERED" in csv.columns
    assert (csv.get_column("delayed (actual)_PREDICTION") == -7.0).all()


def test_time_series_throw_error(naive: tsengine.Deployment, flights: pl.DataFrame) -> None:
    rule = build_rule(naive, trigger="outlying-input", action="throw-error", feature="scheduled", high=1.0)
    deployment = type(naive)(
        **{
            **{f: getattr(naive, f) for f in ("id", "spec", "model", "intervals")},
            "metadata": with_rules(naive.metadata, [rule]),
        }
    )
    with pytest.raises(HumilityError, match="Humility ReturnError action triggered."):
        deployment.predict_result(flights, PredictOptions(relax_known_in_advance=True))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"trigger": "outlying-input", "feature": "series", "high": 1.0}, "known-in-advance feature"),
        ({"trigger": "low-observation-region", "feature": "scheduled"}, "series id column"),
        ({"trigger": "bogus"}, "unknown humility trigger 'bogus'"),
        (
            {"trigger": "uncertain-prediction", "action": "override", "high": 1.0, "value": "x"},
            "must be a number",
        ),
        ({"trigger": "outlying-input", "high": 1.0}, "needs --feature"),
    ],
)
def test_build_rule_rejects_what_the_deployment_cannot_check(
    naive: tsengine.Deployment, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ParameterError, match=message):
        build_rule(naive, **{"action": "no-op", **kwargs})  # type: ignore[arg-type]
