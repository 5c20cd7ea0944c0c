"""What the pages compute, without HTTP: chart data, list rows, session tokens, the backtest trace."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tsengine
from api.web import session, views
from api.web.pages import _local, _number
from tsengine.deployment import BACKTEST_FILE, backtest_trace
from tsengine.humility import HumilityRule, with_rules
from tsengine.options import PredictOptions


@pytest.fixture(scope="module")
def forecast(small_deployment: tsengine.Deployment, small_flights: pl.DataFrame) -> tuple[object, object]:
    day = pl.col("date").cast(pl.String)
    history = small_flights.filter(day <= "2013-12-27").with_columns(
        pl.when(day <= "2013-12-20").then(pl.col("delayed")).alias("delayed")
    )
    return small_deployment, small_deployment.predict_result(history, PredictOptions())


def test_forecast_chart_carries_the_predictions_rows(forecast: tuple[object, object]) -> None:
    deployment, prediction = forecast
    chart = views.forecast_chart(deployment, prediction)
    frame = prediction.frame  # type: ignore[attr-defined]
    assert [s["id"] for s in chart["series"]] == frame.get_column("seriesId").unique(
        maintain_order=True
    ).to_list()
    assert chart["intervals"] is True
    assert chart["percentile"] == 80
    assert chart["historical"] is False
    for series in chart["series"]:
        rows = frame.filter(pl.col("seriesId") == series["id"])
        assert series["d"] == rows.get_column("forecastDistance").to_list()
        assert series["ts"] == rows.get_column("originalFormatTimestamp").to_list()
        np.testing.assert_allclose(series["p"], rows.get_column("prediction").to_numpy(), rtol=1e-5)
        assert all(lo <= p <= hi for lo, p, hi in zip(series["lo"], series["p"], series["hi"], strict=True))
        # history ends at the forecast point, and is what was posted
        assert max(series["hx"]) < min(series["x"])
        assert series["hl"][-1] == "2013-12-20"


def test_known_in_advance_flags_are_events_and_levels_are_not() -> None:
    frame = pl.DataFrame(
        {
            "holiday": [0, 1, 0, 0],
            "promo": [True, False, None, False],
            "price": [9.5, 9.0, 8.5, 9.5],
            "never": [0, 0, 0, 0],
            "maybe": [0.0, float("nan"), 1.0, None],
        }
    )
    assert views._event_columns(frame, ("holiday", "promo", "price", "never", "maybe", "absent")) == [
        "holiday",
        "promo",
        "maybe",
    ]


def test_backtest_chart_has_one_line_per_origin(small_deployment: tsengine.Deployment) -> None:
    trace = small_deployment.backtest_trace
    assert trace is not None
    chart = views.backtest_chart(trace, small_deployment.spec.datetime_format)
    origins = trace.get_column("forecastPoint").n_unique()
    assert len(chart["origins"]) == origins == 2
    for series in chart["series"]:
        assert set(series["o"]) == set(range(origins))
        assert len(series["ax"]) == len(set(series["ax"]))  # one actual per timestamp
    assert views.backtest_chart(trace.head(0), None) == {"series": [], "origins": []}


def test_backtest_trace_keeps_the_largest_series(small_deployment: tsengine.Deployment) -> None:
    rows = pl.DataFrame(
        {
            "__sid": ["a", "a", "b", "b", "c", "c"],
            "__fp": [16000] * 6,
            "__d": [1, 2] * 3,
            "__i": [16001, 16002] * 3,
            "y": [1.0, 1.0, 50.0, 50.0, -10.0, None],
            "yhat": [1.5, 2.0, 40.0, 45.0, 9.0, 8.0],
        }
    )
    capped = backtest_trace(rows, small_deployment.spec, max_series=2)
    assert capped.columns == [
        "seriesId",
        "forecastPoint",
        "timestamp",
        "forecastDistance",
        "actual",
        "prediction",
    ]
    assert capped.get_column("seriesId").to_list() == ["b", "b", "c", "c"]
    assert capped.get_column("timestamp").dt.strftime("%Y-%m-%d").to_list()[:2] == [
        "2013-10-23",
        "2013-10-24",
    ]


def test_registry_keeps_the_trace_for_the_same_model_only(
    tmp_registry: tsengine.Registry, small_deployment: tsengine.Deployment
) -> None:
    tmp_registry.save(small_deployment)
    stored = tmp_registry.read_file(small_deployment.id, BACKTEST_FILE)
    assert stored is not None
    loaded = tmp_registry.load(small_deployment.id)
    assert loaded.backtest_trace is None  # never read to predict
    rule = HumilityRule("r1", "cap", "uncertain_prediction", "override", high=1e9, override=0)
    tmp_registry.save(dataclasses.replace(loaded, metadata=with_rules(loaded.metadata, [rule])))
    assert tmp_registry.read_file(small_deployment.id, BACKTEST_FILE) == stored
    retrained = dataclasses.replace(loaded, metadata={**loaded.metadata, "model_id": "another"})
    tmp_registry.save(retrained)
    assert tmp_registry.read_file(small_deployment.id, BACKTEST_FILE) is None
    assert tmp_registry.read_file(small_deployment.id, "../deployment.json") is None
    assert tmp_registry.read_meta(small_deployment.id)["metadata"]["model_id"] == "another"


def test_deployment_rows_of_both_kinds() -> None:
    ts = {
        "kind": "timeseries",
        "spec": {"target": "sales", "feature_derivation_window": [-28, 0], "forecast_window": [1, 7]},
        "metadata": {
            "model_kind": "ensemble",
            "created_at": "2026-01-02T03:04:05+00:00",
            "training": {"series": 1200, "time_step": "1 day"},
        },
    }
    row = views.deployment_row("a", ts, None)
    assert (row.kind, row.model, row.target, row.series, row.windows, row.step) == (
        "timeseries",
        "ensemble",
        "sales",
        1200,
        "FDW [-28, 0] · FW [1, 7]",
        "1 day",
    )
    assert row.created == "2026-01-02 03:04:05 UTC"
    assert row.last_prediction == "never"
    tab = {"kind": "tabular", "target": "status", "task": "binary", "metadata": {}}
    row = views.deployment_row("b", tab, None)
    assert (row.kind, row.target, row.series, row.windows) == ("tabular", "status (binary)", None, "")


def test_numbers_for_people() -> None:
    assert _number(1234567) == "1,234,567"
    assert _number(0.72836) == "0.7284"
    assert _number(12345.678) == "12,346"
    assert _number(math.nan) == "–"
    assert _number(None) == "–"
    assert _number(0.0) == "0"


def test_local_redirects_only() -> None:
    assert _local("/ui/batch?deployment=x") == "/ui/batch?deployment=x"
    for bad in ("//evil", "https://evil", "/\\evil", "evil"):
        assert _local(bad) == "/"


# ------------------------------------------------------------------- session


@given(key=st.text(min_size=1, max_size=40), drk=st.none() | st.text(max_size=20))
def test_a_session_token_opens_only_for_its_key(key: str, drk: str | None) -> None:
    token = session.issue(key, drk, now=1_000_000)
    assert session.valid(token, [key], drk, now=1_000_010)
    assert not session.valid(token, [key + "x"], drk, now=1_000_010)
    assert not session.valid(token, [key], (drk or "") + "y", now=1_000_010)
    assert not session.valid(token, [key], drk, now=1_000_000 + session.SESSION_SECONDS + 1)
    assert not session.valid(token, [key], drk, now=999_000)  # issued in the future
    issued, _, signature = token.partition(".")
    assert not session.valid(f"{int(issued) + 1}.{signature}", [key], drk, now=1_000_010)
    assert key not in signature or len(key) < 4


def test_malformed_tokens_are_refused() -> None:
    for token in (None, "", "abc", "x.y", ".", "12.", "-5.abc"):
        assert not session.valid(token, ["k"], None)
