"""Per-series selection: prequential picks, the per-series model, and its place in training."""

from __future__ import annotations

import numpy as np
import orjson
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tsengine
from tsengine.backtest import ROWS_SCHEMA, Backtest
from tsengine.errors import ParameterError, TrainingDataError
from tsengine.features import FP, D
from tsengine.models import MODELS, PerSeriesModel, SeasonalNaiveModel
from tsengine.models.base import ForecastModel
from tsengine.select import PER_SERIES_MIN_WINDOWS, per_series_choice
from tsengine.spec import TimeSeriesSpec
from tsengine.timestep import TimeStep
from tsengine.validate import IDX, ROW, SID, Y


def backtest(name: str, errors: dict[str, list[float]], distances: int = 2) -> Backtest:
    """Series ``s`` at origins 0, 10, 20, ...: the absolute error of window ``k`` is ``errors[s][k]``."""
    rows = [
        (s, 10 * k, d, 10 * k + d, 0.0, err, 1.0, 1.0)
        for s, errs in errors.items()
        for k, err in enumerate(errs)
        for d in range(1, distances + 1)
    ]
    return Backtest(name, pl.DataFrame(rows, schema=ROWS_SCHEMA, orient="row"))


def window_yhat(result: Backtest, series: str) -> list[float]:
    rows = result.rows.filter((pl.col(SID) == series) & (pl.col(D) == 1)).sort(FP)
    return rows.get_column("yhat").to_list()


def test_a_member_clearly_better_on_one_series_is_picked_for_it_only() -> None:
    base = backtest("ensemble", {"a": [1.0, 1.1, 0.9, 1.0], "b": [1.0, 1.0, 1.0, 1.0]})
    good = backtest("ets", {"a": [0.2, 0.3, 0.25, 0.2], "b": [1.5, 1.6, 1.4, 1.5]})
    choice = per_series_choice(base, [good], name="per_series")
    assert choice.picks == {"a": "ets"}
    assert choice.backtest.model == "per_series"


def test_the_prequential_backtest_uses_only_earlier_windows() -> None:
    base = backtest("ensemble", {"a": [1.0, 1.1, 0.9, 1.0]})
    good = backtest("ets", {"a": [0.2, 0.3, 0.25, 0.2]})
    yhat = window_yhat(per_series_choice(base, [good], name="p").backtest, "a")
    # The first PER_SERIES_MIN_WINDOWS (2) windows have too little earlier evidence.
    assert PER_SERIES_MIN_WINDOWS == 2
    assert yhat == [1.0, 1.1, 0.25, 0.2]


def test_a_noisy_lead_keeps_the_ensemble() -> None:
    base = backtest("ensemble", {"a": [1.0, 1.0, 1.0, 1.0]})
    noisy = backtest("theta", {"a": [0.1, 1.8, 0.2, 1.7]})  # 0.05 better on average, within noise
    choice = per_series_choice(base, [noisy], name="p")
    assert choice.picks == {}
    assert window_yhat(choice.backtest, "a") == [1.0, 1.0, 1.0, 1.0]


def test_the_best_of_several_qualifying_members_wins() -> None:
    base = backtest("ensemble", {"a": [1.0, 1.0, 1.0]})
    fair = backtest("ets", {"a": [0.5, 0.52, 0.49]})
    best = backtest("arima", {"a": [0.2, 0.21, 0.19]})
    assert per_series_choice(base, [fair, best], name="p").picks == {"a": "arima"}


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(0.0, 5.0), min_size=3, max_size=6),
    st.lists(st.floats(0.0, 5.0), min_size=3, max_size=6),
    st.floats(0.0, 50.0),
)
def test_a_window_s_prediction_never_depends_on_its_own_or_later_errors(
    base_errors: list[float], member_errors: list[float], changed: float
) -> None:
    n = min(len(base_errors), len(member_errors))
    base = backtest("ensemble", {"a": base_errors[:n]})
    member = backtest("ets", {"a": member_errors[:n]})
    before = window_yhat(per_series_choice(base, [member], name="p").backtest, "a")
    later = backtest("ets", {"a": [*member_errors[: n - 1], changed]})
    after = window_yhat(per_series_choice(base, [later], name="p").backtest, "a")
    # Only the last window's own prediction may change (it is the member's own value).
    assert before[:-1] == after[:-1]
    assert after[-1] in (base_errors[n - 1], changed)
    assert before[-1] in (base_errors[n - 1], member_errors[n - 1])


class Constant(ForecastModel):
    """A member that always predicts ``value`` (enough to test routing)."""

    kind = "seasonal_naive"

    def __init__(self, value: float) -> None:
        self.value = value

    @classmethod
    def fit(cls, history: pl.DataFrame, spec: TimeSeriesSpec, *, seed: int = 0, **_: object) -> Constant:
        return cls(0.0)

    def predict(self, history: pl.DataFrame, query: pl.DataFrame, spec: TimeSeriesSpec) -> np.ndarray:
        return np.full(query.height, self.value)

    def to_bytes(self) -> bytes:
        return b"{}"

    @classmethod
    def from_bytes(cls, data: bytes) -> Constant:
        return cls(0.0)

    def describe(self) -> dict[str, object]:
        return {"kind": self.kind}


def daily_spec() -> TimeSeriesSpec:
    return TimeSeriesSpec(
        datetime_column="date",
        target="y",
        time_step=TimeStep("day"),
        feature_derivation_window=(-14, 0),
        forecast_window=(1, 3),
        series_id_column="s",
        min_history=7,
    )


def test_the_per_series_model_routes_series_to_their_pick() -> None:
    first, second = Constant(10.0), Constant(20.0)
    second.kind = "ets"
    model = PerSeriesModel([first, second], [1.0, 3.0], {"a": "ets"})
    query = pl.DataFrame({SID: ["a", "b", "new"], FP: [5, 5, 5], D: [1, 1, 1], IDX: [6, 6, 6]})
    yhat = model.predict(pl.DataFrame(), query, daily_spec())
    np.testing.assert_allclose(yhat, [20.0, 17.5, 17.5])  # unseen series get the weighted ensemble
    assert model.describe()["series_picks"] == {"ets": 1}
    assert model.refit_kwargs()["picks"] == {"a": "ets"}
    with pytest.raises(TrainingDataError, match="not members"):
        PerSeriesModel([first, second], None, {"a": "arima"})


def history(n_series: int = 4, days: int = 120) -> pl.DataFrame:
    rng = np.random.default_rng(3)
    t = np.arange(days)
    frames = [
        pl.DataFrame(
            {
                SID: [f"s{k}"] * days,
                IDX: t,
                Y: 50 + 10 * np.sin(2 * np.pi * t / 7) + rng.normal(0, 1 + k, days),
                ROW: t + k * days,
            }
        )
        for k in range(n_series)
    ]
    return pl.concat(frames)


def test_the_per_series_model_roundtrips_through_bytes() -> None:
    data, spec = history(), daily_spec()
    members = [SeasonalNaiveModel.fit(data, spec), MODELS["ets"].fit(data, spec)]
    model = PerSeriesModel(members, [1.0, 1.0], {"s1": "ets", "s2": "seasonal_naive"})
    query = pl.DataFrame(
        {SID: ["s0", "s1", "s2"] * 3, FP: [119] * 9, D: [1, 1, 1, 2, 2, 2, 3, 3, 3], IDX: [120] * 9}
    )
    expected = model.predict(data, query, spec)
    again = PerSeriesModel.from_bytes(model.to_bytes())
    np.testing.assert_allclose(again.predict(data, query, spec), expected)
    assert again.picks == model.picks
    assert orjson.loads(model.to_bytes())["picks"] == {"s1": "ets", "s2": "seasonal_naive"}
    own = members[1].predict(data, query, spec)
    np.testing.assert_allclose(expected[1::3], own[1::3])


def test_training_backtests_the_per_series_candidate(small_flights: pl.DataFrame) -> None:
    dep = tsengine.train(
        small_flights,
        target="delayed",
        datetime_column="date",
        series_id_column="series",
        forecast_window=(1, 7),
        feature_derivation_window=(-28, 0),
        models=["ets", "theta", "seasonal_naive", "ensemble", "per_series"],
    )
    board = {r["model"]: r for r in dep.metadata["leaderboard"]}
    assert {"ensemble", "per_series"} <= set(board)
    assert board["per_series"]["n"] == board["ensemble"]["n"]
    if dep.model.kind == "per_series":
        assert "picks" in dep.metadata["model"]


@pytest.mark.parametrize("models", [["ensemble", "per_series"], ["ets", "per_series"], ["ensemble", "theta"]])
def test_combining_models_without_two_others_is_a_parameter_error(
    small_flights: pl.DataFrame, models: list[str]
) -> None:
    with pytest.raises(ParameterError, match="combine other models"):
        tsengine.train(
            small_flights,
            target="delayed",
            datetime_column="date",
            series_id_column="series",
            models=models,
        )
