"""The LightGBM candidates: scale, diff and log transforms, determinism, storage."""

from __future__ import annotations

import dataclasses

import numpy as np
import orjson
import polars as pl
import pytest

import tsengine
from tsengine.errors import TrainingDataError
from tsengine.models import LightGBMDiffModel, LightGBMLogModel, LightGBMModel, LightGBMSeriesScaleModel
from tsengine.options import PredictOptions


def _trees(dep: tsengine.Deployment) -> str:
    """The booster text minus its recorded parameters (which name the thread count)."""
    return str(orjson.loads(dep.model.to_bytes())["booster"]).split("\nparameters:")[0]


def _train(frame: pl.DataFrame, model: str | list[str], seed: int = 0) -> tsengine.Deployment:
    return tsengine.train(
        frame,
        target="delayed",
        datetime_column="date",
        series_id_column="series",
        known_in_advance=["scheduled", "holiday"],
        models=[model] if isinstance(model, str) else model,
        forecast_window=[1, 7],
        feature_derivation_window=[-28, 0],
        backtests=2,
        seed=seed,
    )


@pytest.mark.parametrize(
    ("kind", "cls", "transform"),
    [
        ("lightgbm", LightGBMModel, ("scale", "log")),
        ("lightgbm_diff", LightGBMDiffModel, ("diff",)),
        ("lightgbm_log", LightGBMLogModel, ("log",)),
        ("lightgbm_series_scale", LightGBMSeriesScaleModel, ("scale", "log")),
    ],
)
def test_each_candidate_trains_with_its_transform_and_round_trips(
    small_flights: pl.DataFrame,
    tmp_registry: tsengine.Registry,
    kind: str,
    cls: type,
    transform: tuple[str, ...],
) -> None:
    dep = _train(small_flights, kind)
    assert type(dep.model) is cls
    described = dep.model.describe()
    assert described["transform"] in transform
    assert set(described["validation_mae"]) == set(transform)
    tmp_registry.save(dep)
    loaded = tmp_registry.load(dep.id)
    assert type(loaded.model) is cls
    assert loaded.model.describe() == described
    history = small_flights.filter(pl.col("date") <= "2013-12-20")
    before = dep.predict(history, relax_known_in_advance=True)
    after = loaded.predict(history, relax_known_in_advance=True)
    np.testing.assert_array_equal(before["prediction"].to_numpy(), after["prediction"].to_numpy())


@pytest.mark.parametrize("kind", ["lightgbm", "lightgbm_diff", "lightgbm_log"])
def test_forecasts_scale_with_the_posted_history(small_flights: pl.DataFrame, kind: str) -> None:
    """Target features are divided by each origin's scale: a series 3x larger gets 3x the forecast."""
    dep = _train(small_flights, kind)
    history = small_flights.filter(pl.col("date") <= "2013-12-20")
    base = dep.predict(history, relax_known_in_advance=True)["prediction"].to_numpy()
    tripled = history.with_columns(pl.col("delayed") * 3)
    scaled = dep.predict(tripled, relax_known_in_advance=True)["prediction"].to_numpy()
    np.testing.assert_allclose(scaled, 3 * base, rtol=1e-9)


def test_the_series_scale_model_reads_the_level_and_scales_unseen_series_by_their_window(
    small_flights: pl.DataFrame,
) -> None:
    """Each known series keeps its training-time scale, so tripled history is a new level, not 3x;
    a series unseen at training falls back to its window's scale, so its forecast scales with it."""
    dep = _train(small_flights, "lightgbm_series_scale")
    model = dep.model
    assert isinstance(model, LightGBMSeriesScaleModel)
    assert model.series_scale is not None
    training = small_flights.group_by("series").agg(pl.col("delayed").abs().mean())
    for sid, level in training.iter_rows():
        assert model.series_scale[str(sid)] == pytest.approx(level)
    history = small_flights.filter(pl.col("date") <= "2013-12-20")
    base = dep.predict(history, relax_known_in_advance=True)["prediction"].to_numpy()
    tripled = history.with_columns(pl.col("delayed") * 3)
    scaled = dep.predict(tripled, relax_known_in_advance=True)["prediction"].to_numpy()
    assert not np.allclose(scaled, 3 * base, rtol=1e-3)
    first = history["series"][0]
    one = history.filter(pl.col("series") == first).with_columns(pl.lit("NEW-1").alias("series"))
    new = dep.predict(one, relax_known_in_advance=True)["prediction"].to_numpy()
    new3 = dep.predict(one.with_columns(pl.col("delayed") * 3), relax_known_in_advance=True)[
        "prediction"
    ].to_numpy()
    np.testing.assert_allclose(new3, 3 * new, rtol=1e-9)


@pytest.mark.parametrize("kind", ["lightgbm_diff", "lightgbm_series_scale"])
def test_same_data_and_seed_give_the_same_model(small_flights: pl.DataFrame, kind: str) -> None:
    first, second = _train(small_flights, kind), _train(small_flights, kind)
    assert first.model.to_bytes() == second.model.to_bytes()


def test_training_on_every_core_gives_the_same_model(
    small_flights: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large fits switch to all cores; deterministic col-wise histograms keep the model identical."""
    import tsengine.models.lgbm as lgbm

    single = _train(small_flights, "lightgbm_diff")
    monkeypatch.setattr(lgbm, "PARALLEL_ROWS", 0)
    parallel = _train(small_flights, "lightgbm_diff")
    assert lgbm._params(10, 0)["num_threads"] == 0

    assert _trees(single) == _trees(parallel)
    history = small_flights.filter(pl.col("date") <= "2013-12-20")
    np.testing.assert_array_equal(
        single.predict(history, relax_known_in_advance=True)["prediction"].to_numpy(),
        parallel.predict(history, relax_known_in_advance=True)["prediction"].to_numpy(),
    )


def test_the_log_transform_learns_a_multiplicative_effect_across_levels() -> None:
    """Demand doubled on promotion days, for series 100x apart: the log model forecasts the ratio.

    On the log scale a promotion adds log 2 whatever the level, so one tree
    split serves every series; the forecast for a promotion day is about twice
    the forecast for a normal day of the same series.
    """
    rng = np.random.default_rng(3)
    days = 200
    frames = []
    for k, level in enumerate((5.0, 50.0, 500.0)):
        promo = (rng.random(days) < 0.3).astype(np.int64)
        y = level * (1 + promo) * rng.lognormal(0.0, 0.05, days)
        frames.append(
            pl.DataFrame(
                {
                    "store": f"s{k}",
                    "day": pl.date_range(pl.date(2024, 1, 1), pl.date(2024, 7, 18), eager=True),
                    "sales": y,
                    "promo": promo,
                }
            )
        )
    frame = pl.concat(frames)
    dep = tsengine.train(
        frame,
        target="sales",
        datetime_column="day",
        series_id_column="store",
        known_in_advance=["promo"],
        models=["lightgbm_log"],
        forecast_window=[1, 4],
        feature_derivation_window=[-14, 0],
        backtests=2,
        interval_percentile=None,
    )
    assert dep.model.describe()["transform"] == "log"
    history = frame.filter(pl.col("day") <= pl.date(2024, 7, 14))
    future = frame.filter(pl.col("day") > pl.date(2024, 7, 14)).with_columns(
        pl.Series("promo", [0, 1, 0, 1] * 3), pl.lit(None, pl.Float64).alias("sales")
    )
    out = dep.predict(pl.concat([history, future]))
    for store, level in (("s0", 5.0), ("s1", 50.0), ("s2", 500.0)):
        pred = out.filter(pl.col("seriesId") == store).sort("forecastDistance")["prediction"].to_numpy()
        ratio = (pred[1] + pred[3]) / (pred[0] + pred[2])
        assert 1.7 < ratio < 2.3, (store, pred)
        assert 0.8 * level < pred[0] < 1.25 * level, (store, pred)


def test_the_log_transform_keeps_zeros_and_never_forecasts_below_them(small_flights: pl.DataFrame) -> None:
    """log(1 + y / scale) is defined at 0: intermittent counts train, forecasts stay >= 0."""
    sparse = small_flights.with_columns(
        pl.when(pl.int_range(pl.len()) % 3 == 0).then(0).otherwise(pl.col("delayed")).alias("delayed")
    )
    dep = _train(sparse, "lightgbm_log")
    assert dep.metadata["leaderboard"][0]["model"] == "lightgbm_log"
    out = dep.predict(sparse.filter(pl.col("date") <= "2013-12-20"), relax_known_in_advance=True)
    assert out.height > 0
    assert (out["prediction"] >= 0).all()


def test_the_log_candidate_steps_aside_on_negative_targets_and_says_why(small_flights: pl.DataFrame) -> None:
    """A negative target has no log: the candidate is skipped (with the reason stored), never clipped."""
    series = small_flights.get_column("series").unique().sort()[1]
    negative = small_flights.with_columns(
        pl.when((pl.col("series") == series) & (pl.col("date") == "2013-10-02"))
        .then(-4)
        .otherwise(pl.col("delayed"))
        .alias("delayed")
    )
    with pytest.raises(TrainingDataError, match=f"series '{series}' has -4") as err:
        _train(negative, "lightgbm_log")
    assert "lightgbm_log" in str(err.value)
    assert "2013-10-02" in str(err.value)
    dep = _train(negative, ["lightgbm_log", "lightgbm"])
    assert [row["model"] for row in dep.metadata["leaderboard"]] == ["lightgbm"]
    assert "at least 0" in dep.metadata["training"]["skipped_models"]["lightgbm_log"]


def test_the_level_model_keeps_the_transform_with_the_lower_validation_error(
    small_flights: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scale and log are both early-stopped on the last window; the lower MAE wins, and backtests reuse it."""
    import tsengine.models.lgbm_fold as fold

    dep = _train(small_flights, "lightgbm")
    errors = dep.model.describe()["validation_mae"]
    assert dep.model.transform == min(errors, key=errors.__getitem__)
    assert errors["scale"] != errors["log"]
    # Tilt the comparison: the same data, the log's error made worse, so scale must win.
    real = fold.untransform

    def worse_log(transform: str, raw: np.ndarray, last: np.ndarray, scale: np.ndarray) -> np.ndarray:
        out = real(transform, raw, last, scale)
        return out * 3 if transform == "log" else out

    monkeypatch.setattr(fold, "untransform", worse_log)
    assert _train(small_flights, "lightgbm").model.transform == "scale"


def test_the_level_model_tries_only_the_scale_on_negative_targets(small_flights: pl.DataFrame) -> None:
    shifted = small_flights.with_columns(pl.col("delayed") - 10)
    assert shifted.get_column("delayed").min() < 0
    model = _train(shifted, "lightgbm").model
    assert model.transform == "scale"
    assert set(model.describe()["validation_mae"]) == {"scale"}


def test_bagging_on_large_data_keeps_training_deterministic_on_any_core_count(
    small_flights: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large fits subsample rows per round (seeded): the same data and seed still give the same model."""
    import tsengine.models.lgbm as lgbm

    assert "bagging_fraction" not in lgbm._params(lgbm.BAGGING_ROWS - 1, 0)
    monkeypatch.setattr(lgbm, "BAGGING_ROWS", 0)
    assert lgbm._params(10, 0)["bagging_fraction"] == 0.5
    first, second = _train(small_flights, "lightgbm_diff"), _train(small_flights, "lightgbm_diff")
    assert first.model.to_bytes() == second.model.to_bytes()
    monkeypatch.setattr(lgbm, "PARALLEL_ROWS", 0)
    parallel = _train(small_flights, "lightgbm_diff")

    assert _trees(first) == _trees(parallel)
    other_seed = _train(small_flights, "lightgbm_diff", seed=1)
    assert _trees(other_seed) != _trees(first)


@pytest.mark.parametrize("kind", ["lightgbm", "lightgbm_diff"])
def test_unseen_series_are_forecast_by_the_same_model_without_the_series_id(
    small_flights: pl.DataFrame, kind: str
) -> None:
    """A new series is served as by a model trained on the same rows without the series id.

    Without that model LightGBM sends a series it never saw down whichever
    branch holds the other series at each series-id split.
    """
    dep = _train(small_flights, kind)
    assert dep.model.describe()["unseen_series"] is not None
    history = small_flights.filter(pl.col("date") <= "2013-12-20")
    new = history.filter(pl.col("series") == "LGA-DL").with_columns(pl.lit("LGA-NEW").alias("series"))
    got = dep.predict(new, relax_known_in_advance=True)["prediction"].to_numpy()
    # The same training rows and tuning, without the series id feature.
    spec = dataclasses.replace(dep.spec, series_id_column=None)
    canonical = dep.window(small_flights, PredictOptions(relax_known_in_advance=True)).history
    generic = type(dep.model).fit(canonical, spec, transform=dep.model.transform, rounds=dep.model.rounds)
    assert "series id" not in generic.plan.names
    query = dep.window(new, PredictOptions(relax_known_in_advance=True))
    np.testing.assert_allclose(got, generic.predict(query.history, query.query, spec), rtol=1e-12)
    # Seen series still use their series id; backtest refits carry no unseen-series model.
    seen = history.filter(pl.col("series") == "LGA-DL")
    assert not np.allclose(seen_forecast := dep.predict(seen, relax_known_in_advance=True)["prediction"], got)
    assert np.isfinite(seen_forecast.to_numpy()).all()
    refit = type(dep.model).fit(canonical, dep.spec, **dep.model.refit_kwargs())
    assert refit.describe()["unseen_series"] is None
    assert np.isfinite(refit.predict(query.history, query.query, dep.spec)).all()


def test_the_unseen_series_model_round_trips_and_explains(small_flights: pl.DataFrame) -> None:
    """Stored and loaded, it serves the same forecasts; explanations of a new series add up."""
    dep = _train(small_flights, "lightgbm")
    loaded = type(dep.model).from_bytes(dep.model.to_bytes())
    history = small_flights.filter(pl.col("date") <= "2013-12-20")
    new = history.filter(pl.col("series") == "JFK-B6").with_columns(pl.lit("JFK-NEW").alias("series"))
    window = dep.window(new, PredictOptions(relax_known_in_advance=True))
    design = dep.model.design(window.history, window.query, dep.spec)
    expected = dep.model.predict(window.history, window.query, dep.spec)
    np.testing.assert_array_equal(loaded.predict(window.history, window.query, dep.spec), expected)
    parts, base = dep.model.contributions(design)
    np.testing.assert_allclose(parts.sum(axis=1) + base, expected, rtol=1e-9)
    assert np.all(parts[:, dep.model.plan.names.index("series id")] == 0.0)


def test_the_series_id_is_an_input_only_with_rows_enough_per_series() -> None:
    """Wide panels with few training pairs per series drop it; a few series always keep it."""
    from tsengine.models.lgbm import SERIES_ID_FEW_SERIES, SERIES_ID_MIN_PAIRS, keeps_series_id
    from tsengine.validate import SID

    def pairs(n_series: int, per_series: int) -> pl.DataFrame:
        return pl.DataFrame({SID: [f"s{k}" for k in range(n_series) for _ in range(per_series)]})

    wide = SERIES_ID_FEW_SERIES + 1
    assert keeps_series_id(pairs(wide, SERIES_ID_MIN_PAIRS))
    assert not keeps_series_id(pairs(wide, SERIES_ID_MIN_PAIRS - 1))
    assert keeps_series_id(pairs(SERIES_ID_FEW_SERIES, 10))


def test_a_wide_short_panel_is_forecast_without_the_series_id(small_flights: pl.DataFrame) -> None:
    """120 copies of three series over 50 days: ~150 pairs per series, so no series id and no unseen model.

    Without the id a series' forecast depends on its history only: the same
    rows under a new name get the same forecast, and backtest refits keep
    the final model's choice.
    """
    from tsengine.validate import SID

    first = small_flights.get_column("date").unique().sort()[-50]
    recent = small_flights.filter(pl.col("date") >= first)
    copies = pl.concat(
        recent.with_columns(
            pl.col("series") + f"#{k}", pl.col("delayed") * (1.0 + 0.01 * k), pl.col("scheduled") + k
        )
        for k in range(40)
    )
    dep = _train(copies, "lightgbm")
    assert "series id" not in dep.model.plan.names
    assert dep.model.describe()["unseen_series"] is None
    assert SID not in dep.model.maps.maps  # no series codes stored for an input it does not have
    assert dep.model.refit_kwargs()["series_id"] is False
    seen = copies.filter(pl.col("series") == "LGA-DL#3")
    renamed = seen.with_columns(pl.lit("LGA-NEW").alias("series"))
    forecast = dep.predict(seen, relax_known_in_advance=True)["prediction"].to_numpy()
    assert np.isfinite(forecast).all()
    np.testing.assert_array_equal(dep.predict(renamed, relax_known_in_advance=True)["prediction"], forecast)
    # The twelve-series panel of the other tests keeps it (a few levels, many rows each).
    assert "series id" in _train(small_flights, "lightgbm").model.plan.names
