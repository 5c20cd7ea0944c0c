"""Model selection: leaderboard order by backtest MASE."""

from __future__ import annotations

import math

import polars as pl

from tsengine.backtest import Backtest
from tsengine.features import FP, D
from tsengine.select import rank
from tsengine.validate import IDX, SID


def backtest(name: str, yhat: list[float]) -> Backtest:
    n = len(yhat)
    return Backtest(
        name,
        pl.DataFrame(
            {
                SID: ["a"] * n,
                FP: [0] * n,
                D: list(range(1, n + 1)),
                IDX: list(range(1, n + 1)),
                "y": [10.0] * n,
                "yhat": yhat,
                "scale": [1.0] * n,
                "mase_scale": [1.0] * n,
            }
        ),
    )


def test_lower_mase_ranks_first_and_unusable_models_last() -> None:
    board = rank(
        [backtest("bad", [15.0, 15.0]), backtest("nan", [math.nan, math.nan]), backtest("good", [11.0, 9.0])]
    )
    assert [r["model"] for r in board] == ["good", "bad", "nan"]
    assert board[0]["mase"] == 1.0
    assert board[2]["n"] == 0
    assert [r["distance"] for r in board[0]["by_distance"]] == [1, 2]


def test_rank_of_nothing_is_empty() -> None:
    assert rank([]) == []
