"""Data drift baselines and PSI, checked against slow obvious references."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import orjson
import polars as pl
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import tsengine
from tsengine.monitoring.drift import (
    DRIFT_THRESHOLDS,
    PSI_EPSILON,
    _time_series_feature,
    baselines,
    drift_status,
    feature_baseline,
    feature_drift,
    model_importance,
    psi,
    target_drift,
)
from tsengine.tabular import TabularDeployment, train_tabular
from tsengine.tabular.schema import DATE

# --- slow obvious references -------------------------------------------------


def _reference_edges(values: list[float], bins: int = 10) -> list[float]:
    """Interior quantiles as observed values: the ceil(q * n)-th smallest value."""
    ordered = sorted(values)
    n = len(ordered)
    cuts = [ordered[math.ceil(k / bins * n) - 1] for k in range(1, bins)]
    return sorted(set(cuts))


def _reference_numeric_counts(edges: list[float], values: list[float]) -> list[int]:
    counts = [0] * (len(edges) + 1)
    for v in values:
        b = 0
        while b < len(edges) and v > edges[b]:
            b += 1
        counts[b] += 1
    return counts


def _reference_category_counts(categories: list[str], values: list[str]) -> list[int]:
    counts = [0] * (len(categories) + 1)
    for v in values:
        counts[categories.index(v) if v in categories else len(categories)] += 1
    return counts


def _reference_psi(expected: list[float], actual_counts: list[int]) -> float:
    total = sum(actual_counts)
    actual = [c / total for c in actual_counts]
    e = [p if p > 0 else PSI_EPSILON for p in expected]
    a = [p if p > 0 else PSI_EPSILON for p in actual]
    e = [p / sum(e) for p in e]
    a = [p / sum(a) for p in a]
    return sum((ai - ei) * math.log(ai / ei) for ai, ei in zip(a, e, strict=True))


# --- baselines ---------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_numeric_baseline_matches_reference_quantiles_and_counts(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = np.round(rng.lognormal(3, 1, 1_000), 1).tolist()
    base = feature_baseline(pl.Series("x", [*values, None, None]))
    assert base["type"] == "numeric"
    assert base["count"] == 1_002
    assert base["missing"] == pytest.approx(2 / 1_002, abs=1e-6)
    assert base["edges"] == _reference_edges(values)
    counts = _reference_numeric_counts(base["edges"], values)
    assert base["proportions"] == pytest.approx([c / len(values) for c in counts], abs=1e-6)
    assert sum(base["proportions"]) == pytest.approx(1.0, abs=1e-5)


def test_many_ties_give_deduplicated_increasing_edges() -> None:
    values = pl.Series("x", [0] * 900 + list(range(1, 101)))
    base = feature_baseline(values)
    edges = base["edges"]
    assert edges[0] == 0
    assert len(edges) < 9
    assert all(a < b for a, b in zip(edges, edges[1:], strict=False))
    assert len(base["proportions"]) == len(edges) + 1
    assert base["proportions"][0] == pytest.approx(0.9)


def test_booleans_are_numeric_zero_one() -> None:
    base = feature_baseline(pl.Series("flag", [True] * 30 + [False] * 70))
    assert base["type"] == "numeric"
    # the top edge is the training maximum: values above it would land in an empty bin
    assert base["edges"] == [0.0, 1.0]
    assert base["proportions"] == pytest.approx([0.7, 0.3, 0.0])


def test_categorical_baseline_keeps_top_categories_and_other() -> None:
    values = pl.Series("c", ["a"] * 5 + ["b"] * 3 + ["c"] * 2 + ["d"] * 2 + [None])
    base = feature_baseline(values, top=3)
    # ties (c, d) broken by value, so the baseline does not depend on row order
    assert base == {
        "type": "categorical",
        "categories": ["a", "b", "c"],
        "proportions": pytest.approx([5 / 12, 3 / 12, 2 / 12, 2 / 12], abs=1e-6),
        "missing": pytest.approx(1 / 13, abs=1e-6),
        "count": 13,
    }


def test_labels_can_be_forced_categorical() -> None:
    base = feature_baseline(pl.Series("y", [0, 1, 1, 1]), categorical=True)
    assert base["type"] == "categorical"
    assert base["categories"] == ["1", "0"]


@pytest.mark.parametrize(
    "values",
    [
        pl.Series("x", [], dtype=pl.Float64),
        pl.Series("x", [None, None], dtype=pl.Float64),
        pl.Series("s", [None], dtype=pl.String),
    ],
)
def test_column_without_values_has_empty_baseline(values: pl.Series) -> None:
    assert feature_baseline(values) == {"type": "empty", "count": values.len()}


def test_baselines_skip_absent_columns_and_are_json() -> None:
    frame = pl.DataFrame({"x": [1.0, 2.0, float("inf")], "c": ["a", "b", None]})
    out = baselines(frame, ["x", "c", "absent"])
    assert set(out) == {"x", "c"}
    assert orjson.loads(orjson.dumps(out)) == out


# --- PSI ---------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "shift"), [(0, 0.0), (1, 0.3), (2, 1.0), (3, -2.0)])
def test_numeric_psi_matches_slow_reference(seed: int, shift: float) -> None:
    rng = np.random.default_rng(seed)
    train = rng.normal(0, 1, 2_000).tolist()
    sample = rng.normal(shift, 1.5, 300).tolist()
    base = feature_baseline(pl.Series("x", train))
    expected = _reference_psi(base["proportions"], _reference_numeric_counts(base["edges"], sample))
    assert psi(base, pl.Series("x", [*sample, None])) == pytest.approx(expected, rel=1e-9)


def test_categorical_psi_matches_slow_reference() -> None:
    rng = np.random.default_rng(7)
    train = rng.choice(list("abcdefg"), 1_000, p=[0.3, 0.2, 0.2, 0.1, 0.1, 0.05, 0.05]).tolist()
    sample = rng.choice(list("abcxyz"), 200).tolist()
    base = feature_baseline(pl.Series("c", train), top=4)
    counts = _reference_category_counts(base["categories"], sample)
    assert psi(base, pl.Series("c", sample)) == pytest.approx(_reference_psi(base["proportions"], counts))


def test_new_categories_count_as_other() -> None:
    base = feature_baseline(pl.Series("c", ["a", "b"] * 50))
    assert base["proportions"] == [0.5, 0.5, 0.0]
    unseen = psi(base, pl.Series("c", ["x", "y", "z", "a"]))
    # three of four in "other", which training never saw
    assert unseen == pytest.approx(_reference_psi([0.5, 0.5, 0.0], [1, 0, 3]))
    assert drift_status(unseen) == "red"


def test_identical_distributions_have_psi_near_zero() -> None:
    rng = np.random.default_rng(3)
    base = feature_baseline(pl.Series("x", rng.normal(10, 2, 50_000)))
    assert psi(base, pl.Series("x", rng.normal(10, 2, 50_000))) < 0.01
    values = pl.Series("x", rng.gamma(2, 3, 5_000))
    assert psi(feature_baseline(values), values) == pytest.approx(0.0, abs=1e-6)


def test_shifted_normal_is_red() -> None:
    rng = np.random.default_rng(4)
    base = feature_baseline(pl.Series("x", rng.normal(0, 1, 10_000)))
    score = psi(base, pl.Series("x", rng.normal(1.0, 1, 1_000)))
    assert score is not None
    assert score > DRIFT_THRESHOLDS[1]
    assert drift_status(score) == "red"


def test_numbers_posted_as_text_are_parsed() -> None:
    base = feature_baseline(pl.Series("x", [1.0, 2.0, 3.0, 4.0] * 25))
    assert psi(base, pl.Series("x", [" 1", "2", "3", "4", ""])) == pytest.approx(0.0, abs=1e-9)


def test_float_labels_match_integer_categories() -> None:
    base = feature_baseline(pl.Series("y", [0, 1] * 10), categorical=True)
    assert psi(base, pl.Series("y", [0.0, 1.0] * 5)) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(
    "sample",
    [
        pl.Series("x", [], dtype=pl.Float64),
        pl.Series("x", [None, None], dtype=pl.Float64),
        pl.Series("x", ["n/a"]),
    ],
)
def test_sample_without_values_has_no_psi(sample: pl.Series) -> None:
    base = feature_baseline(pl.Series("x", [1.0, 2.0, 3.0]))
    assert psi(base, sample) is None


def test_empty_baseline_has_no_psi() -> None:
    base = feature_baseline(pl.Series("x", [None], dtype=pl.Float64))
    assert psi(base, pl.Series("x", [1.0])) is None


@given(
    train=st.lists(st.integers(-5, 5), min_size=1, max_size=200),
    sample=st.lists(st.integers(-8, 8), min_size=1, max_size=200),
)
@example(train=[0], sample=[0])
@example(train=[0], sample=[1])
def test_psi_is_non_negative_and_matches_reference(train: list[int], sample: list[int]) -> None:
    base = feature_baseline(pl.Series("x", train))
    score = psi(base, pl.Series("x", sample))
    assert score is not None
    assert score >= 0
    expected = _reference_psi(base["proportions"], _reference_numeric_counts(base["edges"], sample))
    assert score == pytest.approx(expected, rel=1e-9, abs=1e-12)


# --- status and reports ------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "status"),
    [
        (0.0, "green"),
        (0.0999, "green"),
        (0.1, "amber"),
        (0.2499, "amber"),
        (0.25, "red"),
        (3.0, "red"),
        (None, "unknown"),
        (float("nan"), "unknown"),
    ],
)
def test_status_thresholds(score: float | None, status: str) -> None:
    assert drift_status(score) == status


def test_feature_drift_sorts_by_normalised_impact_then_name() -> None:
    frame = pl.DataFrame({"a": [1.0, 2.0, 3.0] * 10, "b": ["x", "y", "z"] * 10, "c": [5, 6, 7] * 10})
    base = baselines(frame, ["a", "b", "c"])
    sample = frame.head(6).drop("c").with_columns(pl.lit(None, dtype=pl.String).alias("b"))
    items = feature_drift(base, sample, importance={"a": 2.0, "b": 8.0})
    assert [i["name"] for i in items] == ["b", "a"]  # c is not in the sample
    assert items[0] == {
        "name": "b",
        "driftScore": None,
        "sampleSize": 6,
        "baselineSampleSize": 30,
        "featureImpact": 1.0,
        "status": "unknown",
    }
    assert items[1]["featureImpact"] == pytest.approx(0.25)
    assert items[1]["status"] == "green"
    plain = feature_drift(base, frame)
    assert [i["name"] for i in plain] == ["a", "b", "c"]
    assert all(i["featureImpact"] is None for i in plain)
    zeros = feature_drift(base, frame, importance={"a": 0.0})
    assert [i["featureImpact"] for i in zeros] == [0.0, 0.0, 0.0]


def test_target_drift_reports_score_sizes_and_status() -> None:
    base = feature_baseline(pl.Series("y", ["yes", "no"] * 50))
    report = target_drift(base, pl.Series("y", ["yes"] * 40))
    assert report["sampleSize"] == 40
    assert report["baselineSampleSize"] == 100
    assert report["driftScore"] == pytest.approx(_reference_psi([0.5, 0.5, 0.0], [40, 0, 0]))
    assert report["status"] == "red"


# --- baselines stored at training --------------------------------------------


def test_time_series_training_stores_feature_and_target_baselines(flights_csv: Path, tmp_path: Path) -> None:
    deployment = tsengine.train(
        pl.read_csv(flights_csv),
        target="delayed",
        datetime_column="date",
        series_id_column="series",
        known_in_advance=["scheduled", "holiday"],
        models=["seasonal_naive"],
        backtests=1,
        forecast_window=[1, 7],
        feature_derivation_window=[-14, 0],
    )
    stored = deployment.metadata["drift_baseline"]
    assert set(stored["features"]) == {"scheduled", "holiday"}
    assert stored["features"]["scheduled"]["type"] == "numeric"
    assert stored["target"]["type"] == "numeric"
    assert stored["target"]["count"] == pl.read_csv(flights_csv).height
    assert all(len(orjson.dumps(b)) <= 2_048 for b in stored["features"].values())
    assert model_importance(deployment) is None  # seasonal naive has no importance

    registry = tsengine.Registry(tmp_path / "registry")
    registry.save(deployment)
    assert registry.load(deployment.id).metadata["drift_baseline"] == orjson.loads(orjson.dumps(stored))
    # deployments trained before drift monitoring still load
    old = dataclasses.replace(
        deployment,
        id="old",
        metadata={k: v for k, v in deployment.metadata.items() if k != "drift_baseline"},
    )
    registry.save(old)
    assert "drift_baseline" not in registry.load("old").metadata


def test_time_series_lightgbm_importance_is_by_posted_feature(small_deployment: tsengine.Deployment) -> None:
    importance = model_importance(small_deployment)
    assert importance is not None
    assert set(importance) == {"scheduled", "holiday"}
    assert all(g >= 0 for g in importance.values())


@pytest.fixture(scope="module")
def tabular(fixtures_dir: Path) -> TabularDeployment:
    return train_tabular(pl.read_csv(fixtures_dir / "tabular_binary.csv"), target="status", task="binary")


def test_tabular_training_stores_baselines_for_its_features(
    tabular: TabularDeployment, tmp_path: Path
) -> None:
    stored = tabular.metadata["drift_baseline"]
    features = {c.name for c in tabular.schema.columns if c.kind != DATE}
    assert set(stored["features"]) == features
    assert stored["features"]["home"]["type"] == "categorical"
    assert stored["features"]["income"]["type"] == "numeric"
    assert stored["target"]["type"] == "categorical"
    assert set(stored["target"]["categories"]) == {"good", "bad"}
    registry = tsengine.Registry(tmp_path / "registry")
    registry.save(tabular)
    assert registry.load(tabular.id).metadata["drift_baseline"] == orjson.loads(orjson.dumps(stored))


def test_tabular_importance_is_gain_by_feature_name(tabular: TabularDeployment) -> None:
    importance = model_importance(tabular)
    assert importance is not None
    assert set(importance) == {c.name for c in tabular.schema.columns}
    total = float(tabular.booster.feature_importance("gain").sum())
    assert sum(importance.values()) == pytest.approx(total)
    items = feature_drift(
        tabular.metadata["drift_baseline"]["features"], pl.DataFrame(), importance=importance
    )
    assert items == []


def test_time_series_keep_their_backtest_predictions_as_the_target_drift_baseline() -> None:
    from http_flights import train_flights

    baseline = train_flights().metadata["drift_baseline"]
    assert baseline["predictions"]["type"] == "numeric"
    assert baseline["predictions"]["count"] > 0


@pytest.mark.parametrize(
    ("model_input", "column"),
    [
        ("temperature", "temperature"),
        ("temperature (lag 3)", "temperature"),
        ("temperature (std 14)", "temperature"),
        ("price (usd) (last)", "price (usd)"),
        ("price (vs window)", "price"),
        ("delayed (lag 1)", None),
    ],
)
def test_time_series_inputs_map_to_their_posted_column(model_input: str, column: str | None) -> None:
    assert _time_series_feature(model_input, ["temperature", "price", "price (usd)"]) == column
