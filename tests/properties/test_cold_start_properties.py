"""Series unseen at training are fitted on whatever window they post: odd windows still get an answer."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsengine.features import FP, D
from tsengine.models import ARIMAModel, ThetaModel
from tsengine.models.base import ForecastModel
from tsengine.spec import TimeSeriesSpec
from tsengine.timestep import TimeStep
from tsengine.validate import IDX, ROW, SID, Y

SPEC = TimeSeriesSpec(
    datetime_column="q",
    target="y",
    time_step=TimeStep("quarter"),
    feature_derivation_window=(-16, 0),
    forecast_window=(1, 4),
    series_id_column="s",
    min_history=1,
)


def _panel() -> pl.DataFrame:
    """Three seasonal quarterly series to train on."""
    t = np.arange(40)
    rows = [
        (s, int(i), float(100 * (k + 1) + i + 10 * np.sin(np.pi * i / 2)))
        for k, s in enumerate("abc")
        for i in t
    ]
    frame = pl.DataFrame(rows, schema={SID: pl.String, IDX: pl.Int64, Y: pl.Float64}, orient="row")
    return frame.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias(ROW))


MODELS = {cls: cls.fit(_panel(), SPEC) for cls in (ThetaModel, ARIMAModel)}

values = st.one_of(
    st.none(),
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, 1.0, -1.0]),
)


@pytest.mark.parametrize("cls", list(MODELS))
@settings(max_examples=40, deadline=None)
@given(window=st.lists(values, min_size=1, max_size=24), origins=st.integers(1, 3))
def test_any_posted_window_of_an_unseen_series_gets_finite_forecasts(
    cls: type[ForecastModel], window: list[float | None], origins: int
) -> None:
    """Constant, zero, negative, gappy or tiny windows: no exception, and finite forecasts
    wherever the origin's window holds a target."""
    model = MODELS[cls]
    n = len(window)
    history = pl.DataFrame(
        {SID: ["new"] * n, IDX: np.arange(n, dtype=np.int64) + 500, Y: window, ROW: np.arange(n)},
        schema={SID: pl.String, IDX: pl.Int64, Y: pl.Float64, ROW: pl.Int64},
    )
    last = 500 + n - 1
    fps = [last - k for k in range(origins) if last - k >= 500]
    query = pl.DataFrame(
        [("new", fp, d, fp + d) for fp in fps for d in SPEC.distances],
        schema={SID: pl.String, FP: pl.Int64, D: pl.Int64, IDX: pl.Int64},
        orient="row",
    )
    yhat = model.predict(history, query, SPEC)
    assert yhat.shape == (query.height,)
    for fp, forecast in zip(fps, yhat.reshape(len(fps), -1), strict=True):
        posted = [v for i, v in enumerate(window) if 500 + i <= fp and 500 + i > fp - SPEC.fdw]
        if any(v is not None for v in posted):
            assert np.isfinite(forecast).all(), (fp, posted, forecast)
