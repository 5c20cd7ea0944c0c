"""One backtest origin's pairs, computed directly, equal the full training query's."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
from hypothesis import event, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from tsengine.columns import FP, IDX, ROW, SID, Y
from tsengine.spec import TimeSeriesSpec
from tsengine.timestep import TimeStep
from tsengine.training_query import query_at, training_query

SPEC = TimeSeriesSpec(
    datetime_column="date",
    target="y",
    series_id_column="s",
    time_step=TimeStep("day"),
    feature_derivation_window=(-14, 0),
    forecast_window=(1, 9),
    known_in_advance=("promo",),
    features=(),
    min_history=3,
)


def _history(seed: int, series: int) -> pl.DataFrame:
    """Series with different starts and lengths, absent rows and missing targets."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(series):
        start, n = int(rng.integers(0, 40)), int(rng.integers(1, 80))
        for k in range(n):
            if rng.random() < 0.15:
                continue
            y = None if rng.random() < 0.2 else float(rng.normal())
            rows.append((f"s{s}", 18_000 + start + k, y, float(rng.integers(0, 2))))
    frame = pl.DataFrame(rows, schema=[SID, IDX, Y, "promo"], orient="row")
    return frame.with_row_index(ROW).with_columns(pl.col(ROW).cast(pl.Int64))


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    series=st.integers(1, 6),
    offset=st.integers(-5, 130),
    fdw=st.integers(1, 20),
    min_history=st.integers(1, 5),
    first=st.integers(1, 4),
)
def test_query_at_is_the_full_query_at_one_origin(
    seed: int, series: int, offset: int, fdw: int, min_history: int, first: int
) -> None:
    history = _history(seed, series)
    spec = dataclasses.replace(
        SPEC,
        feature_derivation_window=(-fdw, 0),
        forecast_window=(first, first + 6),
        min_history=min(min_history, fdw),
    )
    origin = 18_000 + offset
    full = training_query(history, spec, origins_upto=origin).filter(pl.col(FP) == origin)
    event("pairs" if full.height else "none")
    assert_frame_equal(query_at(history, spec, origin), full)
