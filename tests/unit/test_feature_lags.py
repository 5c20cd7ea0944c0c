"""Lags and window statistics of numeric non-KIA features: a polars oracle, no look-ahead, the fit's choice."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import tsengine
from tsengine.backtest import refitter
from tsengine.explain import forecast_contributions, forecast_feature_names
from tsengine.features import FP, CategoryMaps, D, FeaturePlan, build_design, training_query
from tsengine.models.lgbm import LightGBMModel
from tsengine.options import PredictOptions
from tsengine.spec import TimeSeriesSpec
from tsengine.timestep import TimeStep
from tsengine.validate import IDX, ROW, SID, Y

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
DAY = TimeStep("day")
SPEC = TimeSeriesSpec(
    datetime_column="date",
    target="delayed",
    series_id_column="series",
    time_step=DAY,
    feature_derivation_window=(-28, 0),
    forecast_window=(1, 7),
    features=("scheduled",),
    min_history=3,
)
LAGS = 7
# elecdaily rows to train on: with these, two backtest origins and FW 1-14 LightGBM
# beats seasonal naive and is served, so its explanations are the deployment's.
TRAIN_ROWS = 340


@pytest.fixture(scope="module")
def flights() -> pl.DataFrame:
    """Three flight series, the last 120 days of 2013, as canonical rows; ``scheduled`` is a non-KIA feature."""
    frame = pl.read_csv(FIXTURES / "flights_daily.csv", try_parse_dates=True)
    keep = frame.get_column("series").unique(maintain_order=True).head(3).to_list()
    frame = frame.filter(pl.col("series").is_in(keep) & (pl.col("date") >= dt.date(2013, 9, 2)))
    return frame.select(
        pl.col("series").alias(SID),
        pl.col("date").cast(pl.Datetime).dt.epoch("d").alias(IDX),
        pl.col("delayed").cast(pl.Float64).alias(Y),
        pl.col("scheduled").cast(pl.Float64),
    ).with_row_index(ROW)


def _with_gaps(frame: pl.DataFrame) -> pl.DataFrame:
    """Absent rows (every 9th day) and missing feature values (every 5th day)."""
    return frame.filter(pl.col(IDX) % 9 != 0).with_columns(
        pl.when(pl.col(IDX) % 5 == 0).then(None).otherwise(pl.col("scheduled")).alias("scheduled")
    )


def _plan() -> FeaturePlan:
    plan = FeaturePlan.for_spec(SPEC).with_feature_lags(LAGS)
    assert plan.windows == (7, 14, 28)
    assert plan.feature_lags == LAGS
    return plan


def _oracle(history: pl.DataFrame, query: pl.DataFrame, plan: FeaturePlan) -> pl.DataFrame:
    """The feature's block by polars: a dense daily grid per series, then shift and rolling windows.

    Absent rows become null rows of the grid, so a shift is a step back in time
    and a window of ``w`` rows is ``w`` steps.
    """
    f = "scheduled"
    span = history.group_by(SID).agg(pl.col(IDX).min().alias("lo"), pl.col(IDX).max().alias("hi"))
    grid = span.select(SID, pl.int_ranges("lo", pl.col("hi") + 1).alias(IDX)).explode(IDX)
    dense = grid.join(history.select(SID, IDX, f), on=[SID, IDX], how="left").sort(SID, IDX)
    columns = [pl.col(f).shift(j).over(SID).alias(f"{f} (lag {j})") for j in range(1, plan.feature_lags + 1)]
    for w in plan.windows:
        if w != plan.fdw:
            columns.append(pl.col(f).rolling_mean(w, min_samples=1).over(SID).alias(f"{f} (mean {w})"))
        columns.append(pl.col(f).rolling_std(w, min_samples=2).over(SID).alias(f"{f} (std {w})"))
    features = dense.with_columns(columns)
    return query.select(SID, pl.col(FP).alias(IDX)).join(
        features, on=[SID, IDX], how="left", maintain_order="left"
    )


@pytest.mark.parametrize("gaps", [False, True], ids=["complete", "with-gaps"])
def test_feature_lags_and_windows_match_polars_shift_and_rolling(flights: pl.DataFrame, gaps: bool) -> None:
    history = _with_gaps(flights) if gaps else flights
    plan = _plan()
    query = training_query(history, SPEC).select(SID, FP, D, IDX)
    design = build_design(history, query, plan, DAY, CategoryMaps.learn(history, [SID]))
    expected = _oracle(history, query, plan)
    extra = [
        n
        for n in plan.names
        if n.startswith("scheduled (") and n not in ("scheduled (last)", "scheduled (mean)")
    ]
    assert extra == list(expected.columns[3:])  # lags 1..7, then mean/std per window (no mean over the FDW)
    assert "scheduled (lag 7)" in extra
    assert "scheduled (std 28)" in extra
    assert "scheduled (mean 28)" not in extra  # that is "scheduled (mean)"
    for name in extra:
        got = design.x[:, plan.names.index(name)]
        want = expected.get_column(name).cast(pl.Float64).fill_null(np.nan).to_numpy()
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=name)
        assert np.isfinite(got).any(), name
    if gaps:  # the lags see the gaps as missing values, not as shifted rows
        assert np.isnan(design.x[:, plan.names.index("scheduled (lag 1)")]).any()


def test_no_feature_column_reads_past_the_forecast_point(flights: pl.DataFrame) -> None:
    history = _with_gaps(flights)
    fp = int(history.get_column(IDX).max()) - 20
    query = training_query(history, SPEC).filter(pl.col(FP) == fp).select(SID, FP, D, IDX)
    assert query.height > 0
    plan = _plan()
    maps = CategoryMaps.learn(history, [SID])
    before = build_design(history, query, plan, DAY, maps)
    future = pl.col(IDX) > fp
    changed = history.with_columns(
        pl.when(future).then(pl.lit(1e6)).otherwise(pl.col("scheduled")).alias("scheduled"),
        pl.when(future).then(pl.lit(-5.0)).otherwise(pl.col(Y)).alias(Y),
    )
    np.testing.assert_array_equal(before.x, build_design(changed, query, plan, DAY, maps).x)
    at_fp = history.with_columns(
        pl.when(pl.col(IDX) == fp).then(pl.lit(1e6)).otherwise(pl.col("scheduled")).alias("scheduled")
    )
    moved = build_design(at_fp, query, plan, DAY, maps).x
    assert not np.array_equal(before.x, moved)  # the forecast point itself is read (a control)
    np.testing.assert_array_equal(
        moved[:, plan.names.index("scheduled (lag 1)")], before.x[:, plan.names.index("scheduled (lag 1)")]
    )


def test_a_plan_stored_before_feature_lags_keeps_its_columns(flights: pl.DataFrame) -> None:
    plan = FeaturePlan.for_spec(SPEC)
    stored = plan.to_dict()
    del stored["feature_lags"], stored["feature_windows"]
    old = FeaturePlan.from_dict(stored)
    assert old == plan
    assert old.feature_lags == 0
    assert [n for n in old.names if n.startswith("scheduled")] == ["scheduled (last)", "scheduled (mean)"]
    assert old.with_feature_lags(0) == old
    rich = _plan()
    assert FeaturePlan.from_dict(rich.to_dict()) == rich
    # the plain plan's columns are exactly the richer design's columns of the same name
    query = training_query(flights, SPEC).select(SID, FP, D, IDX)
    maps = CategoryMaps.learn(flights, [SID])
    plain = build_design(flights, query, old, DAY, maps).x
    full = build_design(flights, query, rich, DAY, maps).x
    np.testing.assert_array_equal(plain, full[:, [rich.names.index(n) for n in old.names]])


def test_categorical_and_absent_features_get_no_lags() -> None:
    categorical = FeaturePlan.for_spec(dataclasses.replace(SPEC, categorical=("scheduled",)))
    assert categorical.with_feature_lags(LAGS).feature_lags == 0
    assert [n for n in categorical.with_feature_lags(LAGS).names if n.startswith("scheduled")] == [
        "scheduled (last)"
    ]
    none = FeaturePlan.for_spec(dataclasses.replace(SPEC, features=()))
    assert none.with_feature_lags(LAGS) == none


@pytest.fixture(scope="module")
def elec() -> pl.DataFrame:
    return pl.read_csv(FIXTURES / "elecdaily.csv", schema_overrides={"date": pl.String})


def _train(frame: pl.DataFrame, models: list[str]) -> tsengine.Deployment:
    return tsengine.train(
        frame.head(TRAIN_ROWS),
        target="demand",
        datetime_column="date",
        known_in_advance=["workday"],
        features=["temperature"],
        models=models,
        backtests=2,
        forecast_window=[1, 14],  # a fold of the last 14 days holds enough rows to compare on
        feature_derivation_window=[-28, 0],
        interval_percentile=None,
        deployment_id="elec-feature-lags",
    )


def _posted(elec: pl.DataFrame) -> pl.DataFrame:
    """The training rows and the next 14 days without their demand: a forecast request."""
    return elec.head(TRAIN_ROWS + 14).with_columns(
        pl.when(pl.int_range(pl.len()) < TRAIN_ROWS).then(pl.col("demand")).alias("demand")
    )


def _explained_names(frame: pl.DataFrame) -> set[str]:
    """Every feature named by an explanation of a prediction frame."""
    columns = [c for c in frame.columns if c.startswith("EXPLANATION_") and c.endswith("_FEATURE_NAME")]
    return {n for c in columns for n in frame.get_column(c).drop_nulls().to_list()}


def _explained(deployment: tsengine.Deployment, elec: pl.DataFrame) -> tuple[list[str], np.ndarray]:
    """Checks that the served forecast's contributions add up; the model's input names and strengths."""
    posted = _posted(elec)
    options = PredictOptions(max_explanations=3)
    result = deployment.predict_result(posted, options)
    assert result.frame.height == 14
    window = deployment.window(posted, options)
    strengths, base, _ = forecast_contributions(
        deployment.model, window.history, window.query, deployment.spec
    )
    prediction = result.frame.get_column("prediction").to_numpy()
    np.testing.assert_allclose(strengths.sum(axis=1) + base, prediction, rtol=1e-9)
    names = forecast_feature_names(deployment.model, deployment.spec)  # type: ignore[arg-type]
    explained = _explained_names(result.frame)
    assert explained
    assert explained <= set(names)
    return names, strengths


def test_training_stores_the_fold_choice_of_feature_block(elec: pl.DataFrame) -> None:
    deployment = _train(elec, ["lightgbm", "seasonal_naive"])
    assert {r["model"] for r in deployment.metadata["leaderboard"]} == {"lightgbm", "seasonal_naive"}
    model = deployment.model
    assert isinstance(model, LightGBMModel), model.kind  # LightGBM beats seasonal naive on this data
    errors = model.validation
    assert set(errors) == {"scale", "log", "scale (feature lags 7)", "log (feature lags 7)"}
    best = min(errors, key=errors.__getitem__)
    assert model.plan.feature_lags == (LAGS if "feature lags" in best else 0)
    assert LightGBMModel.from_bytes(model.to_bytes()).plan == model.plan
    # backtest refits keep the stored block (and probe nothing)
    history = deployment.window(_posted(elec), PredictOptions()).history
    refit = refitter(LightGBMModel, model, deployment.spec, 0)(history)
    assert isinstance(refit, LightGBMModel)
    assert refit.plan == model.plan
    assert refit.validation == {}
    names, _ = _explained(deployment, elec)
    lagged = {"temperature (lag 1)"} if model.plan.feature_lags else set()
    assert {"temperature (last)", "temperature (mean)"} | lagged <= set(names)


def test_data_without_numeric_non_kia_features_probes_one_plan(elec: pl.DataFrame) -> None:
    deployment = _train(elec, ["seasonal_naive"])
    history = deployment.window(_posted(elec), PredictOptions()).history
    model = LightGBMModel.fit(history, dataclasses.replace(deployment.spec, features=()))
    assert set(model.validation) == {"scale", "log"}
    assert model.plan.feature_lags == 0
    assert not any(n.startswith("temperature") for n in model.plan.names)


def test_a_chosen_lag_block_predicts_and_explains_with_readable_names(
    elec: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(LightGBMModel, "feature_lag_choices", (LAGS,))  # the richer block only
    deployment = _train(elec, ["lightgbm"])
    model = deployment.model
    assert isinstance(model, LightGBMModel)
    assert model.plan.feature_lags == LAGS
    names, strengths = _explained(deployment, elec)
    lags = [f"temperature (lag {j})" for j in range(1, LAGS + 1)]
    assert set(lags) <= set(names)
    assert {"temperature (mean 7)", "temperature (std 7)", "temperature (std 28)"} <= set(names)
    assert not any(n.startswith(("target", "calendar", "__")) for n in names)
    assert np.abs(strengths[:, [names.index(n) for n in lags]]).sum() > 0  # the trees split on its lags
    # with every input explained, a lag column is among the named explanations
    everything = deployment.predict_result(_posted(elec), PredictOptions(max_explanations=len(names)))
    assert _explained_names(everything.frame) & set(lags)
