"""Baselines measured in the same run: mlforecast, a naive pandas feature builder, FastAPI's JSON path.

Each baseline does the same job as a piece of tsengine, the obvious way:

* :func:`fit_mlforecast` — Nixtla's mlforecast with a LightGBM model of the same
  size (trees, leaves) as the deployment's, on the same data, with comparable
  features (14 lags, rolling means/stds over 7/14/56 days, the same calendar parts).
  mlforecast forecasts recursively, tsengine directly: the comparison is of two
  ways to answer the same request, not of identical algorithms.
* :func:`naive_design` — tsengine's feature matrix built one query row at a time
  with pandas/Python, the reference an oracle test would use.  It is also checked
  against :func:`tsengine.features.build_design`, so the timing is of equal work.
* :func:`default_json` — FastAPI's default response path for the same rows:
  ``jsonable_encoder`` and the stdlib ``json`` encoder, against tsengine's orjson renderer.
"""

from __future__ import annotations

import json
import math
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import polars as pl
from _data import DATETIME_COL, SERIES_COL, TARGET_COL
from fastapi.encoders import jsonable_encoder  # FastAPI's default path is the baseline
from mlforecast import MLForecast
from mlforecast.lag_transforms import RollingMean, RollingStd

from tsengine.features import FP, D, FeaturePlan
from tsengine.render import timeseries as render
from tsengine.validate import IDX, SID, Y

__all__ = ["booster_size", "default_json", "fit_mlforecast", "naive_design", "to_mlforecast_frame"]


def booster_size(booster: lgb.Booster) -> tuple[int, int]:
    """Number of trees and the largest number of leaves in one tree."""
    trees = booster.dump_model()["tree_info"]
    return len(trees), max((t["num_leaves"] for t in trees), default=2)


def to_mlforecast_frame(frame: pl.DataFrame) -> pd.DataFrame:
    """``unique_id``, ``ds`` (datetime), ``y``: mlforecast's long format."""
    return frame.select(
        pl.col(SERIES_COL).alias("unique_id"),
        pl.col(DATETIME_COL).str.to_datetime("%Y-%m-%d").alias("ds"),
        pl.col(TARGET_COL).alias("y"),
    ).to_pandas()


def fit_mlforecast(train: pl.DataFrame, *, n_estimators: int, num_leaves: int, seed: int = 0) -> MLForecast:
    """mlforecast with a LightGBM of the given size, fitted on ``train``."""
    model = lgb.LGBMRegressor(
        n_estimators=n_estimators,
        num_leaves=num_leaves,
        learning_rate=0.1,
        max_bin=127,
        random_state=seed,
        verbose=-1,
    )
    windows = (7, 14, 56)
    mlf = MLForecast(
        models={"lightgbm": model},
        freq="D",
        lags=list(range(1, 15)),
        lag_transforms={1: [t(w) for w in windows for t in (RollingMean, RollingStd)]},
        date_features=["dayofweek", "day", "month", "dayofyear"],
    )
    return mlf.fit(to_mlforecast_frame(train))


def naive_design(
    history: pl.DataFrame, query: pl.DataFrame, plan: FeaturePlan, model: Any, step: Any
) -> np.ndarray:
    """tsengine's LightGBM feature matrix, one query row at a time in Python/pandas.

    Supports plans without KIA or other features (the benchmark data has none).
    """
    if plan.known_in_advance or plan.features:
        msg = "the naive builder covers target-only plans"
        raise ValueError(msg)
    a = plan.fdw
    hist = history.select(SID, IDX, Y).to_pandas()
    by_series = {sid: dict(zip(g[IDX], g[Y], strict=True)) for sid, g in hist.groupby(SID, sort=False)}
    codes = model.maps.maps.get(SID, {})
    rows = []
    for sid, fp, d, i in query.select(SID, FP, D, IDX).iter_rows():
        ys = by_series.get(sid, {})
        window = pd.Series([ys.get(fp - k) for k in range(a - 1, -1, -1)], dtype="float64")  # oldest first
        scale = window.abs().mean()
        scale = scale if scale > 1e-9 else 1.0
        x = [float(d)]
        x += [ys.get(fp - j, np.nan) / scale for j in range(plan.lags)]
        for w in plan.windows:
            tail = window.iloc[-w:]
            x += [tail.mean() / scale, (tail.std() if tail.count() >= 2 else np.nan) / scale]
        observed = window.dropna()
        last = observed.iloc[-1] if len(observed) else np.nan
        offset = math.ceil(d / plan.season) * plan.season - d if plan.season > 1 else 0
        seasonal = ys.get(fp - offset, np.nan) if offset < a else np.nan
        x += [last / scale, seasonal / scale]
        if plan.seasonal_mean:  # the same seasonal position in every season of the window
            same = pd.Series([ys.get(fp - j) for j in range(offset, a, plan.season)], dtype="float64")
            x.append(same.mean() / scale)
        x.append(float(len(observed)))
        t = step.timestamp_of(i)
        calendar = {
            "weekday": t.isoweekday(),
            "monthday": t.day,
            "month": t.month,
            "yearday": t.timetuple().tm_yday,
        }
        x += [float(calendar[c]) for c in plan.calendar]
        if plan.with_series:
            x.append(float(codes.get(str(sid), np.nan)))
        rows.append(x)
    return np.asarray(rows, dtype=np.float64)


def default_json(deployment: Any, result: Any) -> bytes:
    """The same JSON rows as tsengine's renderer, through FastAPI's default encoder path."""
    shaped = result.frame.select(render._ts_json_columns(deployment, result, []))
    content = jsonable_encoder({"data": shaped.to_dicts()})
    # starlette.responses.JSONResponse.render
    return json.dumps(
        content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode()
