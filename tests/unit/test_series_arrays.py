"""Dense per-series arrays of the statistical models (``tsengine.models._series``)."""

from __future__ import annotations

import numpy as np
import polars as pl

from tsengine.features import FP, D
from tsengine.models._series import origin_windows, stable_seasonality, training_matrix, window_matrix
from tsengine.validate import IDX, SID, Y


def test_window_matrix_lays_windows_out_as_training_series() -> None:
    """A window read as a training matrix equals the training matrix of that window's rows."""
    history = pl.DataFrame(
        {
            SID: ["a"] * 6 + ["b"] * 2,
            IDX: [10, 11, 12, 14, 15, 16, 15, 16],
            Y: [1.0, 2.0, 3.0, 5.0, None, 7.0, 8.0, 9.0],
        }
    )
    query = pl.DataFrame({SID: ["a", "b", "c"], FP: [15, 16, 16], D: [1, 1, 1], IDX: [16, 17, 17]})
    win = origin_windows(history, query, 5)
    mat = window_matrix(win, np.arange(3))
    assert mat.sids == ["a", "b", "c"]
    # a: (10, 15] holds 11, 12, 14 (13 missing, 15 null): from 11 to 14
    assert mat.start[0] == 11
    assert mat.length[0] == 4
    np.testing.assert_array_equal(mat.y[0, :4], [2.0, 3.0, np.nan, 5.0])
    assert np.isnan(mat.y[0, 4:]).all()
    # b starts inside its window; c has no row at all
    assert (mat.start[1], mat.length[1]) == (15, 2)
    assert mat.length[2] == 0
    assert np.isnan(mat.y[2]).all()
    alone = training_matrix(history.filter((pl.col(SID) == "a") & pl.col(IDX).is_between(11, 15)))
    np.testing.assert_array_equal(alone.y[0], mat.y[0, : alone.y.shape[1]])
    assert alone.start[0] == mat.start[0]


def test_stable_seasonality_finds_a_season_in_three_cycles_and_not_in_a_random_walk() -> None:
    rng = np.random.default_rng(2)
    t = np.arange(36)
    walk = 100 + np.cumsum(rng.normal(0, 1, t.size))
    assert not stable_seasonality(walk, 12)
    assert stable_seasonality(walk + 3 * np.sin(2 * np.pi * t / 12), 12)
    gappy = walk + 3 * np.sin(2 * np.pi * t / 12)
    gappy[[5, 17]] = np.nan
    assert stable_seasonality(gappy, 12)
    assert not stable_seasonality((walk + 3 * np.sin(2 * np.pi * t / 12))[:23], 12)  # under two seasons
    assert not stable_seasonality(walk, 1)
