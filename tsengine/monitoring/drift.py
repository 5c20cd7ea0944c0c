"""Data drift: training baselines and the Population Stability Index (PSI).

At training a deployment stores, per feature and for the target, a compact
histogram of the training values (:func:`feature_baseline`): quantile bins for
numbers, the most frequent categories plus "other" for text.  At monitoring
time a sample of the posted rows is binned the same way and compared with
:func:`psi`.  Baselines are plain JSON-able dicts because they live in the
deployment's ``metadata``, which the registry writes as JSON.

Numbers are binned by training quantiles rather than equal widths so every bin
holds about the same share of training rows: a shift anywhere in the bulk of
the distribution moves mass between bins, while equal-width bins would put
almost everything in one or two bins for skewed features (amounts, counts).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
import polars as pl

from tsengine.explain import display
from tsengine.models.lgbm import LightGBMModel

if TYPE_CHECKING:  # tsengine.tabular imports its trainer, which imports this module
    from tsengine.deployment import Deployment
    from tsengine.tabular.deployment import TabularDeployment

__all__ = [
    "DEFAULT_BINS",
    "DEFAULT_TOP",
    "DRIFT_THRESHOLDS",
    "PSI_EPSILON",
    "DriftStatus",
    "baselines",
    "drift_status",
    "feature_baseline",
    "feature_drift",
    "model_importance",
    "psi",
    "target_drift",
]

DriftStatus = Literal["green", "amber", "red", "unknown"]

# Deciles: the customary PSI binning (as in Siddiqi, "Credit Risk Scorecards", 2006).
DEFAULT_BINS = 10
# [ours] enough categories to name the usual levels; the rest share one "other"
# bin, which keeps a stored baseline small (about 2 KB at most with short labels).
DEFAULT_TOP = 20
# Added to a bin that is empty on one side, so ln(a / e) stays finite.
PSI_EPSILON = 1e-4
# The usual PSI rule of thumb (Siddiqi 2006; Yurdakul 2018, "Statistical
# properties of the population stability index"): PSI < 0.1 no significant
# change, 0.1-0.25 moderate change, > 0.25 significant change.
DRIFT_THRESHOLDS = (0.1, 0.25)
# Proportions are rounded in the stored baseline to keep metadata small; PSI
# renormalises both sides anyway.
_DIGITS = 6

_NUMERIC, _CATEGORICAL, _EMPTY = "numeric", "categorical", "empty"


def _is_numeric(values: pl.Series) -> bool:
    return values.dtype.is_numeric() or values.dtype == pl.Boolean


def _numbers(values: pl.Series) -> np.ndarray:
    """Non-missing values as floats; NaN and text that is not a number count as missing."""
    if values.dtype == pl.String:
        text = values.str.strip_chars()
        values = text.set(text == "", None)
    numbers = values.cast(pl.Float64, strict=False)
    return numbers.fill_nan(None).drop_nulls().to_numpy()


def _texts(values: pl.Series) -> pl.Series:
    """Non-missing values as text; integral floats (JSON ``1.0``) as ``1``, as the tabular schema reads them."""
    if values.dtype.is_float():
        values = values.to_frame("v").select(display(pl.col("v"))).to_series()
    elif values.dtype != pl.String:
        values = values.cast(pl.String, strict=False)
    return values.drop_nulls()


def _missing_share(values: pl.Series, present: int) -> float:
    return round(1.0 - present / values.len(), _DIGITS)


def _proportions(counts: np.ndarray) -> list[float]:
    return [round(p, _DIGITS) for p in (counts / counts.sum()).tolist()]


def _numeric_bins(edges: Sequence[float] | np.ndarray, numbers: np.ndarray) -> np.ndarray:
    """Counts per bin ``(-inf, e1], (e1, e2], ..., (ek, inf)``."""
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), numbers, side="left")
    return np.bincount(index, minlength=len(edges) + 1).astype(np.float64)


def _category_bins(categories: Sequence[str], texts: pl.Series) -> np.ndarray:
    """Counts per listed category, then one count for everything else."""
    other = len(categories)
    index = texts.replace_strict(list(categories), list(range(other)), default=other, return_dtype=pl.Int64)
    return np.bincount(index.to_numpy(), minlength=other + 1).astype(np.float64)


def feature_baseline(
    values: pl.Series, *, bins: int = DEFAULT_BINS, top: int = DEFAULT_TOP, categorical: bool = False
) -> dict[str, Any]:
    """The training distribution of one column, as a JSON-able histogram.

    Numbers (and booleans, as 0/1) are cut at the interior training quantiles
    (observed values, deduplicated: a column that is 90 % zeros gets one
    edge at 0 instead of eight); text keeps its ``top`` most frequent values
    (ties broken by value, so the baseline is deterministic) and lumps the
    rest into a final "other" share.  Proportions are over non-missing values;
    the missing share is kept apart because PSI ignores missing values.

    Args:
        values: the training column.
        bins: numbers: how many quantile bins to aim for (fewer with ties).
        top: text: how many categories to keep by name.
        categorical: treat numbers as labels (a classifier's ``0``/``1`` target).

    Returns:
        ``{"type": "numeric", "edges", "proportions", "missing", "count"}``,
        ``{"type": "categorical", "categories", "proportions", "missing", "count"}``
        (one proportion more than categories: "other"), or
        ``{"type": "empty", "count"}`` when no value is present.
    """
    count = values.len()
    if _is_numeric(values) and not categorical:
        numbers = _numbers(values)
        if numbers.size == 0:
            return {"type": _EMPTY, "count": count}
        finite = numbers[np.isfinite(numbers)]
        levels = np.arange(1, bins) / bins
        # inverted_cdf: edges are observed values, so integer columns get integer edges.
        cuts = np.quantile(finite, levels, method="inverted_cdf") if finite.size else np.empty(0)
        edges = np.unique(cuts)
        return {
            "type": _NUMERIC,
            "edges": edges.tolist(),
            "proportions": _proportions(_numeric_bins(edges, numbers)),
            "missing": _missing_share(values, numbers.size),
            "count": count,
        }
    texts = _texts(values)
    if texts.len() == 0:
        return {"type": _EMPTY, "count": count}
    counts = texts.alias("value").value_counts(name="n")
    categories = counts.sort(["n", "value"], descending=[True, False]).head(top).get_column("value").to_list()
    return {
        "type": _CATEGORICAL,
        "categories": categories,
        "proportions": _proportions(_category_bins(categories, texts)),
        "missing": _missing_share(values, texts.len()),
        "count": count,
    }


def baselines(frame: pl.DataFrame, columns: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Baselines of the named columns that ``frame`` holds (absent names are skipped).

    Args:
        frame: the training frame.
        columns: the feature columns to describe.

    Returns:
        Column name to :func:`feature_baseline`.
    """
    return {c: feature_baseline(frame.get_column(c)) for c in dict.fromkeys(columns) if c in frame.columns}


def _sample_counts(baseline: Mapping[str, Any], values: pl.Series) -> np.ndarray | None:
    """The sample's counts over the baseline's bins; None when nothing is comparable."""
    kind = baseline.get("type")
    if kind == _NUMERIC:
        numbers = _numbers(values)
        return _numeric_bins(baseline["edges"], numbers) if numbers.size else None
    if kind == _CATEGORICAL:
        texts = _texts(values)
        return _category_bins(baseline["categories"], texts) if texts.len() else None
    return None


def _smoothed(shares: np.ndarray) -> np.ndarray:
    shares = np.where(shares > 0, shares, PSI_EPSILON)
    return np.asarray(shares / shares.sum())


def psi(baseline: Mapping[str, Any], values: pl.Series) -> float | None:
    """Population Stability Index of a sample against a training baseline.

    ``PSI = sum((a - e) * ln(a / e))`` over the baseline's bins, with ``e`` the
    training and ``a`` the sample proportions.  Empty bins get
    :data:`PSI_EPSILON` on either side (then both sides are renormalised), so a
    value range or category never seen in training scores as drift instead of
    an infinity.  Categories outside the baseline's list count as "other".
    Missing values are ignored: a feature that is suddenly often missing shows
    in its missing share, not in its PSI.

    Args:
        baseline: a :func:`feature_baseline`.
        values: the sample of the same column (text that should be a number
            counts as missing).

    Returns:
        The PSI (0 for identical distributions), or None when the baseline is
        empty or the sample has no non-missing value.
    """
    counts = _sample_counts(baseline, values)
    if counts is None:
        return None
    expected = _smoothed(np.asarray(baseline["proportions"], dtype=np.float64))
    actual = _smoothed(counts / counts.sum())
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def drift_status(score: float | None) -> DriftStatus:
    """Traffic light for a PSI by :data:`DRIFT_THRESHOLDS`.

    PSI < 0.1: no significant change (green); 0.1 to 0.25: moderate (amber);
    0.25 or more: significant (red); no score: unknown.
    """
    if score is None or math.isnan(score):
        return "unknown"
    low, high = DRIFT_THRESHOLDS
    if score < low:
        return "green"
    return "amber" if score < high else "red"


def _impacts(names: Sequence[str], importance: Mapping[str, float] | None) -> dict[str, float | None]:
    """Importance scaled so the most important feature is 1.0 (DataRobot's normalised impact)."""
    if importance is None:
        return dict.fromkeys(names)
    largest = max((float(v) for v in importance.values()), default=0.0)
    return {n: (float(importance.get(n, 0.0)) / largest if largest > 0 else 0.0) for n in names}


def feature_drift(
    baseline: Mapping[str, Mapping[str, Any]],
    sample: pl.DataFrame,
    *,
    importance: Mapping[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Per-feature drift of a prediction sample, most important features first.

    Args:
        baseline: column name to :func:`feature_baseline` (the ``features`` of a
            deployment's ``drift_baseline``).
        sample: logged prediction rows; features absent from it are left out.
        importance: model importance by feature (e.g. :func:`model_importance`);
            features it does not name get impact 0.

    Returns:
        One ``{"name", "driftScore", "sampleSize", "baselineSampleSize",
        "featureImpact", "status"}`` per feature, sorted by impact (highest
        first, None last) then name.  Sample sizes count rows.
    """
    names = [n for n in baseline if n in sample.columns]
    impacts = _impacts(names, importance)
    items: list[dict[str, Any]] = []
    for name in names:
        score = psi(baseline[name], sample.get_column(name))
        items.append(
            {
                "name": name,
                "driftScore": score,
                "sampleSize": sample.height,
                "baselineSampleSize": int(baseline[name].get("count", 0)),
                "featureImpact": impacts[name],
                "status": drift_status(score),
            }
        )
    return sorted(
        items,
        key=lambda i: (i["featureImpact"] is None, -(i["featureImpact"] or 0.0), i["name"]),
    )


def target_drift(baseline: Mapping[str, Any], values: pl.Series) -> dict[str, Any]:
    """Drift of the target (predictions or actuals) against its training baseline.

    Args:
        baseline: the target's :func:`feature_baseline`.
        values: the sample of target values.

    Returns:
        ``{"driftScore", "sampleSize", "baselineSampleSize", "status"}``.
    """
    score = psi(baseline, values)
    return {
        "driftScore": score,
        "sampleSize": values.len(),
        "baselineSampleSize": int(baseline.get("count", 0)),
        "status": drift_status(score),
    }


def _column_gains(features: Sequence[str | None], gains: Sequence[float]) -> dict[str, float]:
    """Gains of model inputs summed per input column (None: no posted column)."""
    out = dict.fromkeys((f for f in features if f is not None), 0.0)
    for feature, gain in zip(features, gains, strict=True):
        if feature is not None:
            out[feature] += float(gain)
    return out


def _time_series_feature(model_input: str, columns: Sequence[str]) -> str | None:
    """The posted column behind a time series model input (``price (mean)``, ``price (lag 3)`` → ``price``).

    The longest matching column wins, so ``price (usd)`` is not read as ``price``.
    """
    matches = [
        c
        for c in columns
        if model_input == c or (model_input.startswith(f"{c} (") and model_input.endswith(")"))
    ]
    return max(matches, key=len) if matches else None


def model_importance(deployment: Deployment | TabularDeployment) -> dict[str, float] | None:
    """LightGBM gain importance summed per posted feature column, or None.

    Tabular boosters name their inputs ``f0, f1, ...`` in the order of
    :meth:`FeatureSchema.input_columns`, so a date column's calendar parts add
    up to the date column.  A time series LightGBM model's inputs follow
    :attr:`FeaturePlan.names`: a known-in-advance value and its window-relative
    column add up to the feature, as do the last value, window mean, lags and
    window statistics of another feature; target lags, calendar parts and the series id are no
    posted feature and are left out.  Other models (statistical, ensembles)
    have no importance: None.

    Args:
        deployment: a :class:`TabularDeployment` or time series ``Deployment``.

    Returns:
        Feature column to total gain, or None.
    """
    if deployment.kind == "tabular":
        tabular = cast("TabularDeployment", deployment)
        booster = tabular.booster
        positions = {f"f{i}": c.name for i, c in enumerate(tabular.schema.input_columns())}
        features = [positions[n] for n in booster.feature_name()]
        return _column_gains(features, booster.feature_importance("gain").tolist())
    series = cast("Deployment", deployment)
    model = series.model
    if not isinstance(model, LightGBMModel):
        return None
    columns = (*series.spec.known_in_advance, *series.spec.features)
    gains = model._booster.feature_importance("gain").tolist()  # the model keeps its booster private
    return _column_gains([_time_series_feature(n, columns) for n in model.plan.names], gains)
