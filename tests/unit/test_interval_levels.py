"""Deployments serving intervals at several percentiles (``interval_percentile=(80, 50, 95)``).

Training fits one conformal table per percentile from the same backtest
residuals; prediction serves the first as the deployment's own interval
(``predictionIntervalLow``/``High``, JSON key ``"80"``, CSV
``PREDICTION_80_PERCENTILE_*``) and the others beside it, nested.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import polars as pl
import pytest

import tsengine
from tsengine.cli_info import interval_line
from tsengine.errors import ParameterError
from tsengine.options import PredictOptions
from tsengine.render import to_csv, to_json

LEVELS = (80, 50, 95)
TRAIN: dict[str, Any] = {
    "target": "delayed",
    "datetime_column": "date",
    "series_id_column": "series",
    "known_in_advance": ["scheduled", "holiday"],
    "models": ["lightgbm", "seasonal_naive"],
    "forecast_window": [1, 7],
    "feature_derivation_window": [-28, 0],
    "backtests": 3,
}


@pytest.fixture(scope="module")
def history(small_flights: pl.DataFrame) -> pl.DataFrame:
    return small_flights.filter(pl.col("date") <= "2013-12-20")


@pytest.fixture(scope="module")
def levels(small_flights: pl.DataFrame) -> tsengine.Deployment:
    return tsengine.train(small_flights, interval_percentile=LEVELS, deployment_id="levels", **TRAIN)


@pytest.fixture(scope="module")
def single(small_flights: pl.DataFrame) -> tsengine.Deployment:
    return tsengine.train(small_flights, interval_percentile=80, deployment_id="single", **TRAIN)


def _predict(deployment: tsengine.Deployment, frame: pl.DataFrame) -> pl.DataFrame:
    return deployment.predict(frame, relax_known_in_advance=True)


def test_one_table_per_percentile_the_first_is_the_deployments_own(levels: tsengine.Deployment) -> None:
    assert levels.intervals is not None
    assert levels.intervals.percentile == 80
    assert [t.percentile for t in levels.more_intervals] == [50, 95]
    info = levels.info()
    assert info["interval_percentile"] == 80
    assert info["interval_percentiles"] == [50, 80, 95]
    assert [d["percentile"] for d in info["more_intervals"]] == [50, 95]
    assert "also served at 50 %" in interval_line(info)


def test_the_model_and_own_table_are_those_of_a_single_percentile_training(
    levels: tsengine.Deployment, single: tsengine.Deployment
) -> None:
    """Extra levels change nothing before the interval stage: same model, same 80 % table."""
    assert levels.model_id == single.model_id
    assert levels.intervals == single.intervals
    assert not single.more_intervals
    assert "interval_percentiles" not in single.info()


def test_every_level_is_served_nested_around_the_prediction(
    levels: tsengine.Deployment, single: tsengine.Deployment, history: pl.DataFrame
) -> None:
    out = _predict(levels, history)
    yhat = out.get_column("prediction").to_numpy()
    low = {p: out.get_column(f"predictionIntervalLow_{p}").to_numpy() for p in (50, 95)}
    high = {p: out.get_column(f"predictionIntervalHigh_{p}").to_numpy() for p in (50, 95)}
    low[80] = out.get_column("predictionIntervalLow").to_numpy()
    high[80] = out.get_column("predictionIntervalHigh").to_numpy()
    nested = np.vstack([low[95], low[80], low[50], yhat, high[50], high[80], high[95]])
    assert (np.diff(nested, axis=0) >= 0).all()
    assert np.all(high[95] - low[95] > high[50] - low[50])  # the levels are not one interval thrice
    # the deployment's own interval is the single-level deployment's wherever nesting did not widen it
    alone = _predict(single, history)
    inside = (low[50] >= alone.get_column("predictionIntervalLow").to_numpy()) & (
        high[50] <= alone.get_column("predictionIntervalHigh").to_numpy()
    )
    assert inside.all()
    assert out.select("predictionIntervalLow", "predictionIntervalHigh").equals(
        alone.select("predictionIntervalLow", "predictionIntervalHigh")
    )


def test_crossing_tables_are_widened_to_nest(levels: tsengine.Deployment, history: pl.DataFrame) -> None:
    """A 50 % table wider than the 80 % one (per-series factors can do that) widens the 80 % and 95 % bounds."""
    own = levels.intervals
    assert own is not None
    wide = dataclasses.replace(
        levels.more_intervals[0],
        low=tuple(3 * v for v in own.low),
        high=tuple(3 * v for v in own.high),
        series=(),
        factors=(),
    )
    crossed = dataclasses.replace(levels, more_intervals=(wide, levels.more_intervals[1]))
    out = _predict(crossed, history)
    assert out.get_column("predictionIntervalLow").equals(
        out.get_column("predictionIntervalLow_50"), check_names=False
    )
    assert out.get_column("predictionIntervalHigh").equals(
        out.get_column("predictionIntervalHigh_50"), check_names=False
    )
    assert (out.get_column("predictionIntervalLow_95") <= out.get_column("predictionIntervalLow_50")).all()
    assert (out.get_column("predictionIntervalHigh_95") >= out.get_column("predictionIntervalHigh_50")).all()
    plain = _predict(levels, history)
    assert (out.get_column("predictionIntervalLow") < plain.get_column("predictionIntervalLow")).any()


@pytest.mark.parametrize("passthrough", [False, True], ids=["plain", "with passthrough"])
def test_json_and_csv_carry_every_level(
    levels: tsengine.Deployment, history: pl.DataFrame, passthrough: bool
) -> None:
    """Both renderer paths (the plain fast path and the polars one that passthrough takes)."""
    opts = PredictOptions(
        relax_known_in_advance=True, passthrough_columns=("scheduled",) if passthrough else ()
    )
    result = levels.predict_result(history, opts)
    frame = result.frame
    rows = orjson.loads(to_json(levels, result, history, opts))["data"]
    for row, low, high in zip(
        rows,
        frame.get_column("predictionIntervalLow_95"),
        frame.get_column("predictionIntervalHigh_95"),
        strict=True,
    ):
        assert list(row["predictionIntervals"]) == ["50", "80", "95"]
        assert row["predictionIntervals"]["95"] == {"low": low, "high": high}
    table = pd.read_csv(io.BytesIO(to_csv(levels, result, history, opts)))
    bounds = [c for c in table.columns if c.startswith("PREDICTION_")]
    assert bounds == [f"PREDICTION_{p}_PERCENTILE_{side}" for p in (50, 80, 95) for side in ("LOW", "HIGH")]
    assert np.allclose(table["PREDICTION_50_PERCENTILE_LOW"], frame.get_column("predictionIntervalLow_50"))
    assert np.allclose(table["PREDICTION_80_PERCENTILE_HIGH"], frame.get_column("predictionIntervalHigh"))


def test_levels_survive_the_registry(
    levels: tsengine.Deployment, history: pl.DataFrame, tmp_path: Path
) -> None:
    registry = tsengine.Registry(tmp_path)
    registry.save(levels)
    loaded = registry.load("levels")
    assert loaded.more_intervals == levels.more_intervals
    assert _predict(loaded, history).equals(_predict(levels, history))


@pytest.mark.parametrize(
    ("percentiles", "needle"),
    [
        ((80, 100), "100"),
        ((0,), "0"),
        ((80, True), "True"),
        (("80",), "'80'"),
        (80.0, "80.0"),
        ("80", "'80'"),
    ],
)
def test_bad_percentiles_are_refused_before_training(
    small_flights: pl.DataFrame, percentiles: tuple[Any, ...], needle: str
) -> None:
    with pytest.raises(ParameterError, match="between 1 and 99") as caught:
        tsengine.train(small_flights, interval_percentile=percentiles, **TRAIN)
    assert needle in str(caught.value)


def test_repeated_percentiles_count_once(small_flights: pl.DataFrame) -> None:
    deployment = tsengine.train(
        small_flights, interval_percentile=[95, np.int64(80), 95], **{**TRAIN, "models": ["seasonal_naive"]}
    )
    assert deployment.intervals is not None
    assert deployment.intervals.percentile == 95
    assert [t.percentile for t in deployment.more_intervals] == [80]
    assert type(deployment.more_intervals[0].percentile) is int
