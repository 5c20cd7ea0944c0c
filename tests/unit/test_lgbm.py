"""The LightGBM candidates: scale and diff transforms, determinism, storage."""

from __future__ import annotations

import numpy as np
import orjson
import polars as pl
import pytest

import tsengine
from tsengine.models import LightGBMDiffModel, LightGBMModel


def _train(frame: pl.DataFrame, model: str, seed: int = 0) -> tsengine.Deployment:
    return tsengine.train(
        frame,
        target="delayed",
        datetime_column="date",
        series_id_column="series",
        known_in_advance=["scheduled", "holiday"],
        models=[model],
        forecast_window=[1, 7],
        feature_derivation_window=[-28, 0],
        backtests=2,
        seed=seed,
    )


@pytest.mark.parametrize(
    ("kind", "cls", "transform"),
    [("lightgbm", LightGBMModel, "scale"), ("lightgbm_diff", LightGBMDiffModel, "diff")],
)
def test_each_candidate_trains_with_its_transform_and_round_trips(
    small_flights: pl.DataFrame, tmp_registry: tsengine.Registry, kind: str, cls: type, transform: str
) -> None:
    dep = _train(small_flights, kind)
    assert type(dep.model) is cls
    assert dep.model.describe()["transform"] == transform
    tmp_registry.save(dep)
    loaded = tmp_registry.load(dep.id)
    assert type(loaded.model) is cls
    history = small_flights.filter(pl.col("date") <= "2013-12-20")
    before = dep.predict(history, relax_known_in_advance=True)
    after = loaded.predict(history, relax_known_in_advance=True)
    np.testing.assert_array_equal(before["prediction"].to_numpy(), after["prediction"].to_numpy())


@pytest.mark.parametrize("kind", ["lightgbm", "lightgbm_diff"])
def test_forecasts_scale_with_the_posted_history(small_flights: pl.DataFrame, kind: str) -> None:
    """Target features are divided by each origin's scale: a series 3x larger gets 3x the forecast."""
    dep = _train(small_flights, kind)
    history = small_flights.filter(pl.col("date") <= "2013-12-20")
    base = dep.predict(history, relax_known_in_advance=True)["prediction"].to_numpy()
    tripled = history.with_columns(pl.col("delayed") * 3)
    scaled = dep.predict(tripled, relax_known_in_advance=True)["prediction"].to_numpy()
    np.testing.assert_allclose(scaled, 3 * base, rtol=1e-9)


def test_same_data_and_seed_give_the_same_model(small_flights: pl.DataFrame) -> None:
    first, second = _train(small_flights, "lightgbm_diff"), _train(small_flights, "lightgbm_diff")
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

    def trees(dep: tsengine.Deployment) -> str:  # the booster text minus its recorded parameters
        return str(orjson.loads(dep.model.to_bytes())["booster"]).split("\nparameters:")[0]

    assert trees(single) == trees(parallel)
    history = small_flights.filter(pl.col("date") <= "2013-12-20")
    np.testing.assert_array_equal(
        single.predict(history, relax_known_in_advance=True)["prediction"].to_numpy(),
        parallel.predict(history, relax_known_in_advance=True)["prediction"].to_numpy(),
    )
