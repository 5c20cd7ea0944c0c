"""Prediction explanations from per-feature contributions, as pure functions.

LightGBM gives, for every row, one additive contribution per model input plus a
base value (SHAP); they sum to the model's raw output (the prediction for
regression and time series, the log-odds for binary classification).  Every
time series model kind gives the same shape in target units
(:class:`~tsengine.contributions.Contributions`).  This module turns
that matrix into DataRobot's top-N explanations: the N features with the
largest absolute contribution, each with the value it took and a
``qualitativeStrength`` from ``+++`` to ``---``.

The output is a frame of wide columns named as DataRobot's CSV names them
(``EXPLANATION_<n>_FEATURE_NAME``, ``_STRENGTH``, ``_QUALITATIVE_STRENGTH``,
``_ACTUAL_VALUE``), null where a row has fewer than N explanations or was not
explained (outside ``thresholdLow``/``thresholdHigh``); the renderers build the
JSON list from those columns.  Every step is numpy over the whole matrix, with
loops only over the N explanation slots and the model's features.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from tsengine.contributions import display, format_values
from tsengine.models.base import ForecastModel
from tsengine.models.lgbm import LightGBMModel
from tsengine.models.lgbm_explain import feature_names
from tsengine.options import PredictOptions
from tsengine.spec import TimeSeriesSpec

if TYPE_CHECKING:
    from tsengine.features import Layout

__all__ = [
    "LABEL",
    "QUALITATIVE_LEVELS",
    "display",
    "explain_mask",
    "explanation_columns",
    "forecast_contributions",
    "forecast_explanations",
    "forecast_feature_names",
    "qualitative_strength",
    "top_explanations",
]

LABEL = "explanationLabel"
"""Column holding, per row, the label the explanations refer to (JSON ``label``)."""

# [ours] Bands of strength / (the row's largest |strength|).  DataRobot's seed
# example has 0.62 → "+++", 0.35 → "++" and -0.17 → "--" in one row (ratios 1,
# 0.57, -0.28): bands at 0.75 and 0.25 reproduce it.
QUALITATIVE_LEVELS: tuple[float, float] = (0.75, 0.25)


def explanation_columns(n: int) -> tuple[str, str, str, str]:
    """Names of the ``n``-th (1-based) explanation's feature, strength, qualitative, value."""
    prefix = f"EXPLANATION_{n}_"
    return (
        prefix + "FEATURE_NAME",
        prefix + "STRENGTH",
        prefix + "QUALITATIVE_STRENGTH",
        prefix + "ACTUAL_VALUE",
    )


def explain_mask(score: np.ndarray, low: float | None, high: float | None) -> np.ndarray:
    """Rows to explain under ``thresholdLow``/``thresholdHigh``.

    DataRobot explains a row when its prediction is below ``thresholdLow`` or
    above ``thresholdHigh``; with neither given, every row.  A row without a
    finite prediction is never explained.
    """
    score = np.asarray(score, dtype=np.float64)
    finite = np.isfinite(score)
    if low is None and high is None:
        return np.asarray(finite)
    mask = np.zeros(score.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        if low is not None:
            mask |= score < low
        if high is not None:
            mask |= score > high
    return np.asarray(mask & finite)


def qualitative_strength(ratio: np.ndarray) -> np.ndarray:
    """``+++`` … ``---`` from strength relative to the row's largest |strength|.

    Args:
        ratio: ``strength / max |strength|`` of the row, in ``[-1, 1]``.
    """
    strong, medium = QUALITATIVE_LEVELS
    if ratio.size == 0:
        return np.empty(ratio.shape, dtype="<U3")
    size = np.where(np.abs(ratio) > strong, 3, np.where(np.abs(ratio) > medium, 2, 1))
    signs = np.where(ratio < 0, "-", "+")
    return np.asarray(np.char.multiply(signs.astype("<U1"), size))


def _blank(values: np.ndarray, off: np.ndarray) -> np.ndarray:
    """An object column with None where ``off``."""
    out = np.array(values, dtype=object)
    out[off] = None
    return out


def top_explanations(
    strengths: np.ndarray,
    *,
    names: Sequence[str],
    values: np.ndarray,
    max_explanations: int,
    mask: np.ndarray | None = None,
) -> pl.DataFrame:
    """The ``max_explanations`` strongest contributions of every row.

    Features with a zero contribution are not explanations (the model did not
    use them for this row), so a row may have fewer than N; rows outside
    ``mask`` have none.  Ties keep the features' model order.

    Args:
        strengths: ``(rows, features)`` contributions, base value excluded.
        names: the readable feature names, one per column.
        values: ``(rows, features)`` object array of display values (str or None).
        max_explanations: N, at least 1.
        mask: rows to explain (default all).

    Returns:
        The wide columns of :func:`explanation_columns` for ``n = 1..N``.
    """
    rows, p = strengths.shape
    s = np.where(np.isfinite(strengths), strengths, 0.0)
    k = min(max_explanations, p)
    order = np.argsort(-np.abs(s), axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(s, order, axis=1)
    peak = np.abs(s).max(axis=1, initial=0.0)[:, None]
    ratio = np.divide(top, peak, out=np.zeros_like(top), where=peak > 0)
    keep = top != 0
    if mask is not None:
        keep &= np.asarray(mask, dtype=bool)[:, None]
    feature = np.asarray(list(names), dtype=object)[order] if p else np.empty((rows, 0), dtype=object)
    value = np.take_along_axis(values, order, axis=1) if p else feature
    quality = qualitative_strength(ratio).astype(object)
    columns: list[pl.Series] = []
    for j in range(max_explanations):
        f_name, s_name, q_name, v_name = explanation_columns(j + 1)
        if j >= k:
            columns += [
                pl.Series(f_name, [None] * rows, dtype=pl.String),
                pl.Series(s_name, [None] * rows, dtype=pl.Float64),
                pl.Series(q_name, [None] * rows, dtype=pl.String),
                pl.Series(v_name, [None] * rows, dtype=pl.String),
            ]
            continue
        off = ~keep[:, j]
        columns += [
            pl.Series(f_name, _blank(feature[:, j], off).tolist(), dtype=pl.String),
            pl.Series(s_name, np.where(off, np.nan, top[:, j]), dtype=pl.Float64).fill_nan(None),
            pl.Series(q_name, _blank(quality[:, j], off).tolist(), dtype=pl.String),
            pl.Series(v_name, _blank(value[:, j], off).tolist(), dtype=pl.String),
        ]
    return pl.DataFrame(columns)


# --------------------------------------------------------------- time series


def forecast_feature_names(model: LightGBMModel, spec: TimeSeriesSpec) -> list[str]:
    """The LightGBM model's inputs named after the deployment's columns (``sales (lag 7)``)."""
    return feature_names(model.plan, spec)


def forecast_contributions(
    model: ForecastModel,
    history: pl.DataFrame,
    query: pl.DataFrame,
    spec: TimeSeriesSpec,
    *,
    layout: Layout | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contributions in target units, the base value of each row, and the display values (text).

    ``strengths.sum(axis=1) + base`` is the model's prediction (before the
    deployment's non-negative floor), whatever the model kind (see
    :meth:`ForecastModel.explain <tsengine.models.base.ForecastModel.explain>`).

    Raises:
        TypeError: the model has no contributions.
    """
    found = model.explain(history, query, spec, layout=layout)
    if found is None:
        msg = f"model {model.kind!r} has no per-feature contributions"
        raise TypeError(msg)
    return found.strengths, found.base, format_values(found.values)


def forecast_explanations(
    model: object,
    history: pl.DataFrame,
    query: pl.DataFrame,
    spec: TimeSeriesSpec,
    prediction: np.ndarray,
    options: PredictOptions,
    *,
    layout: Layout | None = None,
) -> pl.DataFrame | None:
    """Explanation columns for a time series query, or None when the model has no contributions.

    Every model kind of :mod:`tsengine.models` has them
    (:meth:`ForecastModel.explain <tsengine.models.base.ForecastModel.explain>`):
    LightGBM's SHAP values, the level, trend and season of ETS and Theta, the
    window's weights in an ARIMA or linear forecast, the one value a seasonal
    naive forecast repeats, and their weighted sum in an ensemble.  A model of
    another kind without ``explain`` has none.  ``prediction`` (after the
    deployment's non-negative floor) decides only which rows are explained
    (thresholds, finiteness): what the floor clips is not attributed.
    """
    found = model.explain(history, query, spec, layout=layout) if isinstance(model, ForecastModel) else None
    if found is None:
        return None
    mask = explain_mask(prediction, options.threshold_low, options.threshold_high)
    frame = top_explanations(
        found.strengths,
        names=found.names,
        values=format_values(found.values),
        max_explanations=options.max_explanations,
        mask=mask,
    )
    return frame.with_columns(pl.lit(f"{spec.target} (actual)").alias(LABEL))
