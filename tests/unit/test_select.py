"""Model selection: leaderboard order by backtest MASE, and the ensemble-first choice."""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from tsengine.backtest import Backtest
from tsengine.candidates import ENSEMBLE_SIZE, ensemble_board
from tsengine.features import FP, D
from tsengine.select import choose, paired_advantage, rank
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


def windows(name: str, errors: list[float]) -> Backtest:
    """One window per error: series ``s<k>`` at origin 0, a single distance."""
    n = len(errors)
    return Backtest(
        name,
        pl.DataFrame(
            {
                SID: [f"s{k}" for k in range(n)],
                FP: [0] * n,
                D: [1] * n,
                IDX: [1] * n,
                "y": [0.0] * n,
                "yhat": errors,
                "scale": [1.0] * n,
                "mase_scale": [1.0] * n,
            }
        ),
    )


def test_paired_advantage_is_positive_when_the_first_model_is_better() -> None:
    gain, se, n = paired_advantage(windows("a", [1.0, 1.0, 1.0]), windows("b", [2.0, 3.0, 4.0]))
    assert gain == 2.0
    assert se == 1.0 / math.sqrt(3)
    assert n == 3


def test_ensemble_is_kept_when_a_single_model_leads_within_noise() -> None:
    ens = np.random.default_rng(0).uniform(1.0, 2.0, 40)
    single = ens + np.tile([-0.55, 0.45], 20)  # 0.05 better on average, 0.5 either way
    results = [windows("single", list(single)), windows("ensemble", list(ens))]
    board = rank(results)
    assert board[0]["model"] == "single"
    choice = choose(results, board, ensemble="ensemble")
    assert choice.model == "ensemble"
    assert "kept" in choice.reason


def test_a_single_model_that_wins_clearly_replaces_the_ensemble() -> None:
    rng = np.random.default_rng(1)
    ens = rng.uniform(0.5, 1.5, 40)
    results = [windows("single", list(ens * 0.7)), windows("ensemble", list(ens))]
    choice = choose(results, rank(results), ensemble="ensemble")
    assert choice.model == "single"
    assert "beats the ensemble" in choice.reason


def test_without_an_ensemble_the_lowest_mase_wins() -> None:
    results = [windows("a", [2.0, 2.0]), windows("b", [1.0, 1.5])]
    assert choose(results, rank(results), ensemble="ensemble").model == "b"


def test_without_any_backtest_ets_is_preferred_over_the_global_learners() -> None:
    """Too little history for one origin: the leaderboard has no evidence, so ETS is the default."""
    results = [
        backtest(k, []) for k in ("lightgbm", "lightgbm_diff", "linear", "ets", "theta", "seasonal_naive")
    ]
    choice = choose(results, rank(results), ensemble="ensemble")
    assert choice.model == "ets"
    assert "no candidate could be backtested" in choice.reason
    only_global = [backtest(k, []) for k in ("lightgbm", "linear")]
    assert choose(only_global, rank(only_global), ensemble="ensemble").model == "linear"


def test_the_ensemble_leaves_out_members_the_best_one_clearly_beats() -> None:
    """A member 12 % behind on every one of 60 windows is out; one a hair behind with noise is not."""
    rng = np.random.default_rng(2)
    best = rng.uniform(0.5, 1.5, 60)
    near = best + 0.01 + np.tile([0.2, -0.2], 30)  # a hair behind on average, noisy per window
    behind = best * 1.12 + rng.normal(0.0, 0.02, 60)
    results = [windows("best", list(best)), windows("near", list(near)), windows("behind", list(behind))]
    board = [row["model"] for row in ensemble_board(results)]
    assert board[0] == "best"
    assert "near" in board
    assert "behind" not in board


def test_the_ensemble_takes_the_best_few() -> None:
    """ENSEMBLE_SIZE of the near-equal six; the one with twice their error ranks last and is not among them."""
    rng = np.random.default_rng(3)
    base = rng.uniform(0.5, 1.5, 8)
    results = [windows(f"m{k}", list(base * (1 + 0.01 * k) + rng.normal(0, 0.3, 8))) for k in range(6)]
    results.append(windows("far", list(base * 2.0)))
    board = [row["model"] for row in ensemble_board(results)]
    assert len(board) == ENSEMBLE_SIZE
    assert "far" not in board
    assert ensemble_board([]) == []


def test_a_member_far_behind_on_few_noisy_windows_keeps_its_vote() -> None:
    """1.5x the best one's mean MASE over 3 windows that disagree is not evidence enough to leave."""
    results = [windows("best", [1.0, 1.0, 1.0]), windows("noisy", [0.5, 2.5, 1.5])]
    assert [row["model"] for row in ensemble_board(results)] == ["best", "noisy"]
