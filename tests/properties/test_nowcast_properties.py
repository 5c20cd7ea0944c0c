"""The forecast-window invariants extended to nowcasting windows ``[0, c]`` (hypothesis).

Each example reuses the random multiseries frames of
``test_forecast_window_properties`` (every step, id type, datetime format and
gap pattern there) with a seasonal naive model built directly, and checks the
nowcasting rules of docs/timeseries.md: the inferred forecast point is the step
after the last target, the posted rows FP + d (d = 0..c) are predicted and
nothing is generated, each prediction equals the ordinary forecast made one
step earlier, targets posted on the predicted rows change nothing, and a
missing row is a 422 naming its series.
"""

from __future__ import annotations

import dataclasses
import random

import polars as pl
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from test_forecast_window_properties import MONTH_END_INTS, OFFSET_HOURS, ONE_ROW, Case, cases

from tsengine.deployment import Deployment
from tsengine.errors import MissingForecastRowsError
from tsengine.models import SeasonalNaiveModel
from tsengine.nowcast import model_spec


def nowcasting(case: Case) -> tuple[Deployment, Deployment, int]:
    """A nowcasting deployment FW [0, w] and the ordinary one FW [1, w + 1] with the same model."""
    b, c = case.spec.forecast_window
    width = c - b
    now_spec = dataclasses.replace(case.spec, forecast_window=(0, width))
    model = SeasonalNaiveModel.fit(pl.DataFrame(), model_spec(now_spec))
    ahead_spec = dataclasses.replace(case.spec, forecast_window=(1, width + 1))
    return (
        Deployment(id="now", spec=now_spec, model=model),
        Deployment(id="ahead", spec=ahead_spec, model=model),
        width,
    )


def rows_to_predict(case: Case, width: int, rng: random.Random, *, targets: bool = False) -> pl.DataFrame:
    """Rows FP + 0..width for every series (FP = the step after the latest history row), negative tags."""
    fp = case.end + 1
    parts = [
        case.rows(
            s,
            list(range(fp, fp + width + 1)),
            [rng.choice([None, 1e9, -3.0]) if targets else None for _ in range(width + 1)],
            [-(1 + n * 100 + d) for d in range(width + 1)],
        )
        for n, s in enumerate(case.observed)
    ]
    return pl.concat(parts)


def _shuffled(frame: pl.DataFrame, rng: random.Random) -> pl.DataFrame:
    return frame.sample(fraction=1.0, shuffle=True, seed=rng.randrange(2**32))


@given(cases(), st.randoms(use_true_random=False))
@example(ONE_ROW, random.Random(0))
@example(MONTH_END_INTS, random.Random(1))
@example(OFFSET_HOURS, random.Random(2))
def test_nowcast_predicts_the_posted_rows_from_the_step_before_the_forecast_point(
    case: Case, rng: random.Random
) -> None:
    now, ahead, width = nowcasting(case)
    posted = _shuffled(pl.concat([case.frame, rows_to_predict(case, width, rng)]), rng)
    out = now.predict(posted)
    n_series = len(case.observed)
    assert out.height == n_series * (width + 1)
    assert (out["forecastPoint"] == case.at(case.end + 1)).all()
    assert out["forecastDistance"].to_list() == list(range(width + 1)) * n_series
    assert out["timestamp"].to_list() == [case.at(case.end + 1 + d) for d in range(width + 1)] * n_series
    tags = posted["tag"].to_list()
    assert all(tags[r] < 0 for r in out["rowId"].to_list())  # posted rows only: nothing generated
    # the same numbers as the ordinary forecast from the last history row, one distance further
    keys = ["seriesId", "timestamp"]
    reference = ahead.predict(case.frame).sort(keys, nulls_last=True)
    mine = out.sort(keys, nulls_last=True)
    assert reference["seriesId"].to_list() == mine["seriesId"].to_list()
    assert reference["timestamp"].to_list() == mine["timestamp"].to_list()
    assert reference["forecastDistance"].to_list() == [d + 1 for d in mine["forecastDistance"].to_list()]
    assert reference["prediction"].to_list() == mine["prediction"].to_list()


@given(cases(), st.randoms(use_true_random=False))
@example(MONTH_END_INTS, random.Random(1))
def test_targets_on_the_predicted_rows_are_ignored_at_a_given_forecast_point(
    case: Case, rng: random.Random
) -> None:
    now, _, width = nowcasting(case)
    fp = case.at(case.end + 1)
    clean = now.predict(pl.concat([case.frame, rows_to_predict(case, width, rng)]), forecast_point=fp)
    junk = _shuffled(pl.concat([case.frame, rows_to_predict(case, width, rng, targets=True)]), rng)
    dirty = now.predict(junk, forecast_point=fp)
    keys = ["seriesId", "forecastDistance"]
    assert (
        dirty.drop("rowId")
        .sort(keys, nulls_last=True)
        .equals(clean.drop("rowId").sort(keys, nulls_last=True))
    )


@given(cases(), st.randoms(use_true_random=False), st.data())
@example(MONTH_END_INTS, random.Random(3), None)
def test_a_missing_row_to_predict_is_a_422_naming_its_series(
    case: Case, rng: random.Random, data: st.DataObject | None
) -> None:
    now, _, width = nowcasting(case)
    rows = rows_to_predict(case, width, rng)
    drop = data.draw(st.integers(0, rows.height - 1)) if data is not None else rows.height - 1
    series = rows[case.series_col][drop] if case.series_col else None
    posted = pl.concat([case.frame, rows.filter(pl.int_range(pl.len()) != drop)])
    with pytest.raises(MissingForecastRowsError) as caught:
        now.predict(posted, forecast_point=case.at(case.end + 1))
    assert caught.value.status == 422
    assert (f"series {str(series)!r}" if case.series_col else "the series") in caught.value.message
