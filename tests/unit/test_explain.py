"""Pure explanation numerics: ranking, qualitative bands, thresholds, display."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from tsengine.explain import (
    display,
    explain_mask,
    explanation_columns,
    qualitative_strength,
    top_explanations,
)
from tsengine.features import CategoryMaps, FeaturePlan
from tsengine.models.lgbm_explain import design_values
from tsengine.spec import TimeSeriesSpec
from tsengine.timestep import TimeStep


def test_qualitative_strength_reproduces_the_seed_example() -> None:
    # DataRobot's example row: 0.619 "+++", 0.350 "++", -0.171 "--"
    strengths = np.array([0.6194461777, 0.3501610895, -0.171075409])
    ratio = strengths / np.abs(strengths).max()
    assert qualitative_strength(ratio).tolist() == ["+++", "++", "--"]


def test_qualitative_strength_bands_are_symmetric() -> None:
    ratio = np.array([1.0, 0.76, 0.75, 0.26, 0.25, 0.01, -0.01, -0.5, -1.0])
    assert qualitative_strength(ratio).tolist() == ["+++", "+++", "++", "++", "+", "+", "-", "--", "---"]


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (None, None, [True, True, True, True, False]),
        (0.3, None, [True, False, False, False, False]),
        (None, 0.7, [False, False, False, True, False]),
        (0.3, 0.7, [True, False, False, True, False]),
    ],
)
def test_explain_mask_explains_below_low_or_above_high(
    low: float | None, high: float | None, expected: list[bool]
) -> None:
    score = np.array([0.1, 0.5, 0.7, 0.9, np.nan])
    assert explain_mask(score, low, high).tolist() == expected


def test_top_explanations_ranks_by_absolute_strength_and_skips_zeros() -> None:
    strengths = np.array([[0.1, -2.0, 0.0, 1.0], [0.0, 0.0, 0.0, 3.0]])
    values = np.array([["a", "1", "x", "2.5"], ["b", "2", None, "7"]], dtype=object)
    out = top_explanations(strengths, names=["f0", "f1", "f2", "f3"], values=values, max_explanations=3)
    f1, s1, q1, v1 = explanation_columns(1)
    f2, s2, q2, v2 = explanation_columns(2)
    f3, s3, q3, _ = explanation_columns(3)
    first = out.row(0, named=True)
    assert (first[f1], first[s1], first[q1], first[v1]) == ("f1", -2.0, "---", "1")
    assert (first[f2], first[s2], first[q2], first[v2]) == ("f3", 1.0, "++", "2.5")
    assert (first[f3], first[q3]) == ("f0", "+")
    second = out.row(1, named=True)
    assert second[f1] == "f3"
    assert second[f2] is None
    assert second[s2] is None


def test_top_explanations_masked_rows_and_more_slots_than_features() -> None:
    strengths = np.array([[1.0, 2.0], [3.0, 4.0]])
    values = np.array([["1", "2"], ["3", "4"]], dtype=object)
    out = top_explanations(
        strengths, names=["a", "b"], values=values, max_explanations=3, mask=np.array([False, True])
    )
    assert out.width == 12
    assert out.row(0) == (None,) * 12
    assert out.get_column(explanation_columns(1)[0]).to_list() == [None, "b"]
    assert out.get_column(explanation_columns(3)[0]).to_list() == [None, None]


def test_top_explanations_of_zero_rows() -> None:
    out = top_explanations(
        np.empty((0, 3)), names=["a", "b", "c"], values=np.empty((0, 3), dtype=object), max_explanations=2
    )
    assert out.shape == (0, 8)


def test_display_writes_integral_numbers_without_decimals() -> None:
    frame = pl.DataFrame({"x": [49.0, 0.25, None, float("nan"), 1e20]})
    assert frame.select(display(pl.col("x"))).to_series().to_list() == ["49", "0.25", None, None, "1e+20"]


# --------------------------------------------------------------- time series

from pathlib import Path  # noqa: E402

import orjson  # noqa: E402

import tsengine  # noqa: E402
from tsengine.explain import forecast_contributions, forecast_feature_names  # noqa: E402
from tsengine.options import PredictOptions  # noqa: E402
from tsengine.render import to_csv, to_json  # noqa: E402

ELEC = Path(__file__).resolve().parents[2] / "fixtures" / "elecdaily.csv"


@pytest.fixture(scope="module")
def elec() -> pl.DataFrame:
    return pl.read_csv(ELEC, schema_overrides={"date": pl.String}).drop("temperature")


@pytest.fixture(scope="module", params=["lightgbm", "lightgbm_diff", "lightgbm_log", "seasonal_naive"])
def forecaster(request: pytest.FixtureRequest, elec: pl.DataFrame) -> tsengine.Deployment:
    return tsengine.train(
        elec.head(300),
        target="demand",
        datetime_column="date",
        known_in_advance=["workday"],
        models=[request.param],
        backtests=1,
        forecast_window=[1, 7],
        feature_derivation_window=[-28, 0],
        interval_percentile=None,
        deployment_id="elec",
    )


def test_forecast_explanations_add_up_and_read_well(
    forecaster: tsengine.Deployment, elec: pl.DataFrame
) -> None:
    posted = elec.head(307).with_columns(
        pl.when(pl.int_range(pl.len()) < 300).then(pl.col("demand")).alias("demand")
    )
    options = PredictOptions(max_explanations=3)
    result = forecaster.predict_result(posted, options)
    data = orjson.loads(to_json(forecaster, result, posted, options))["data"]
    table = pl.read_csv(to_csv(forecaster, result, posted, options))
    assert "EXPLANATION_3_ACTUAL_VALUE" in table.columns
    assert table.height == 7
    assert not any("no per-feature contributions" in w for w in result.warnings)
    window = forecaster.window(posted, options)
    strengths, base, values = forecast_contributions(
        forecaster.model, window.history, window.query, forecaster.spec
    )
    prediction = result.frame.get_column("prediction").to_numpy()
    np.testing.assert_allclose(strengths.sum(axis=1) + base, prediction, rtol=1e-9)
    if not forecaster.model.kind.startswith("lightgbm"):  # the one past value it repeats
        assert all(
            [e["feature"] for e in row["predictionExplanations"]] == ["demand (season, lag 7)"]
            for row in data
        )
        assert [
            float(e["featureValue"]) for row in data for e in row["predictionExplanations"]
        ] == pytest.approx(prediction)
        return
    names = forecast_feature_names(forecaster.model, forecaster.spec)  # type: ignore[arg-type]
    assert "demand (lag 0)" in names
    assert "date (weekday)" in names
    assert "workday" in names
    assert not any(n.startswith("target") or n.startswith("calendar") for n in names)
    lag0 = names.index("demand (lag 0)")
    assert float(values[0, lag0]) == pytest.approx(posted.item(299, "demand"))  # unscaled, as posted
    for row in data:
        explanations = row["predictionExplanations"]
        assert 1 <= len(explanations) <= 3
        assert explanations[0]["label"] == "demand (actual)"
        assert {e["feature"] for e in explanations} <= set(names)
    threshold = float(np.median(prediction))
    some = forecaster.predict_result(
        posted, PredictOptions(max_explanations=1, threshold_high=threshold)
    ).frame
    explained = some.get_column(explanation_columns(1)[0]).is_not_null().to_list()
    assert explained == (prediction > threshold).tolist()


def test_a_known_in_advance_category_shows_the_posted_value_coded_or_not() -> None:
    """An event name the model has no code for (seen on one date) is still shown as posted."""
    spec = TimeSeriesSpec(
        datetime_column="date",
        target="y",
        time_step=TimeStep("day"),
        feature_derivation_window=(-14, 0),
        forecast_window=(1, 7),
        known_in_advance=("event",),
        categorical=("event",),
    )
    plan = FeaturePlan.for_spec(spec)
    col = plan.names.index("event")
    x = np.zeros((3, len(plan.names)))
    x[:, col] = [0.0, np.nan, np.nan]  # "Gala" has no code: the design holds NaN
    query = pl.DataFrame({"event": ["Sale", "Gala", None]})
    shown = design_values(plan, CategoryMaps({"event": {"Sale": 0}}), x, np.ones(3), query)
    assert shown[:, col].tolist() == ["Sale", "Gala", None]
