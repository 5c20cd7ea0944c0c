"""The global LightGBM model's choices on its validation fold: transform, rounds, feature block.

The fold is the last forecast window of the training rows (time-ordered, so no
row of it is older than a training row it could leak into).  Every choice is
an early-stopped probe there, scored by mean absolute error in target units:
the transform (the scaled level or its log for ``lightgbm``), the number of
boosting rounds, and, with numeric non-KIA features, whether the richer feature
block (their lags and window statistics, see
:meth:`~tsengine.features.FeaturePlan.with_feature_lags`) earns its columns.
Pure functions over a built design; :class:`~tsengine.models.lgbm.LightGBMModel`
only calls them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from tsengine.boosting import early_stopping_probe
from tsengine.features import Design, FeaturePlan

__all__ = [
    "EARLY_STOPPING",
    "FIXED_ROUNDS",
    "MAX_ROUNDS",
    "MIN_VALID_ROWS",
    "choose_fit",
    "feature_plans",
    "input_names",
    "narrowed",
    "probe_transforms",
    "transformed_target",
    "untransform",
]

MAX_ROUNDS = 600
EARLY_STOPPING = 30
# Below this many validation rows early stopping is noise; use a fixed budget.
MIN_VALID_ROWS = 50
FIXED_ROUNDS = 300


def transformed_target(design: Design, transform: str) -> np.ndarray:
    """What the booster learns: the scaled level, the scaled change from the last value, or ``log1p`` of the level."""
    assert design.y is not None
    if transform == "diff":
        return np.asarray((design.y - design.last) / design.scale)
    if transform == "log":  # fit checked y >= 0; missing targets stay NaN
        return np.asarray(np.log1p(design.y / design.scale))
    return np.asarray(design.y / design.scale)


def untransform(transform: str, raw: np.ndarray, last: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Model output back to target units (inverse of :func:`transformed_target`)."""
    if transform == "diff":
        return np.asarray(last + raw * scale)
    if transform == "log":
        return np.asarray(np.expm1(raw) * scale)
    return np.asarray(raw * scale)


def feature_plans(base: FeaturePlan, choices: tuple[int, ...]) -> tuple[FeaturePlan, ...]:
    """The distinct plans ``base.with_feature_lags(k)`` of ``choices``, fewest feature lags first.

    Without numeric non-KIA features every choice is the plain plan, so there
    is one plan and nothing extra to probe.
    """
    plans = {p.feature_lags: p for p in (base.with_feature_lags(k) for k in choices)}
    return tuple(plans[k] for k in sorted(plans))


def narrowed(design: Design, plan_of_design: FeaturePlan, plan: FeaturePlan) -> Design:
    """``design`` (built for ``plan_of_design``) restricted to ``plan``'s columns, a subset of its own.

    Building the richest design once and selecting columns gives the plainer
    plans exactly the features they would compute themselves.
    """
    if plan.names == plan_of_design.names:
        return design
    where = {name: i for i, name in enumerate(plan_of_design.names)}
    columns = [where[name] for name in plan.names]
    return replace(design, x=design.x[:, columns])


def input_names(plan: FeaturePlan) -> tuple[list[str], list[str]]:
    """LightGBM's names of the plan's inputs (no spaces), and of its categorical ones."""
    names = [n.replace(" ", "_") for n in plan.names]
    cats = [names[plan.names.index(c)] for c in plan.categorical_names]
    return names, cats


def probe_transforms(
    design: Design,
    valid: np.ndarray,
    names: list[str],
    cats: list[str],
    params: dict[str, Any],
    options: tuple[str, ...],
) -> tuple[str, int, dict[str, float]]:
    """The transform and boosting rounds by early stopping on the time-ordered validation fold.

    Returns the winning transform, its rounds and each transform's validation
    MAE (empty when the fold is too small to probe: then the first transform
    with a fixed budget).
    """
    assert design.y is not None
    targets = {t: transformed_target(design, t) for t in options}
    usable = np.logical_and.reduce([np.isfinite(y) for y in targets.values()])
    train_rows, valid_rows = usable & ~valid, usable & valid
    if valid_rows.sum() < MIN_VALID_ROWS or train_rows.sum() < MIN_VALID_ROWS:
        return options[0], FIXED_ROUNDS, {}
    usable_rows = train_rows | valid_rows
    held = valid_rows[usable_rows]
    truth, last, scale = design.y[valid_rows], design.last[valid_rows], design.scale[valid_rows]
    results: dict[str, tuple[float, int]] = {}
    for t, y in targets.items():
        probe = early_stopping_probe(
            design.x[usable_rows],
            y[usable_rows],
            held,
            params=params,
            names=names,
            categorical=cats,
            max_rounds=MAX_ROUNDS,
            patience=EARLY_STOPPING,
        )
        best = int(probe.best_iteration or FIXED_ROUNDS)
        raw = np.asarray(probe.predict(design.x[valid_rows], num_iteration=best, num_threads=1))
        mae = float(np.mean(np.abs(untransform(t, raw, last, scale) - truth)))
        results[t] = (mae, max(20, best))
    chosen = min(results, key=lambda t: results[t][0])
    return chosen, results[chosen][1], {t: mae for t, (mae, _) in results.items()}


def choose_fit(
    rich: Design,
    richest: FeaturePlan,
    plans: tuple[FeaturePlan, ...],
    valid: np.ndarray,
    params: dict[str, Any],
    options: tuple[str, ...],
) -> tuple[FeaturePlan, str, int, dict[str, float]]:
    """The feature plan, transform and rounds with the lowest validation MAE (:func:`probe_transforms` per plan).

    Every plan's columns are a subset of ``richest``'s, whose design ``rich``
    serves them all.  The richer feature block is chosen here, on the fold
    that already picks the transform, rather than as a candidate model of its
    own in the training backtest: a candidate would add its backtest refits to
    every deployment, or need the candidate list to depend on the data; here
    data without numeric non-KIA features has one plan and pays nothing, and
    the choice is stored in the plan, so prediction, explanations and backtest
    refits (``refit_kwargs``) use the same columns.  The cost is that the
    choice, like the transform's, rests on one fold: the training backtest
    scores the chosen plan, it does not pick it.  The plain plan comes first
    and wins ties, and when the fold is too small to probe.

    Measured: training-backtest MASE of ``train(models=["lightgbm"])`` with
    ``LightGBMModel.feature_lag_choices`` set to ``(0,)`` (plain), ``(7,)``
    (richer) and ``(0, 7)`` (this choice).  elecdaily, ``workday`` known in
    advance, ``temperature`` a non-KIA feature, 6 origins: default windows
    (FDW 56, FW 1-28) 0.655 / 0.684 / 0.655; FDW 28, FW 1-14 0.674 / 0.692 /
    0.674; FDW 28, FW 1-7 0.809 / 0.784 / 0.809 (one series' 7-day fold is
    too small to probe, so the plain block stays).  tourism_quarterly
    ``takings`` with ``occupancy`` and ``cpi``, 4 origins: 1.605 / 1.587 /
    1.587.  So on elecdaily the lags lost in two settings of three and the
    fold kept the plain block in all three; on tourism they won and were kept.  Whole
    training (one run each, one core) went 0.8 -> 1.3 s (FW 1-28), 0.6 ->
    0.9 s (FW 1-14) and 0.4 -> 0.7 s (tourism) with the second plan probed.

    Returns:
        The plan, transform and rounds, and each probe's validation MAE keyed
        by transform, with `` (feature lags k)`` for a richer plan.
    """
    best: tuple[float, FeaturePlan, str, int] | None = None
    validation: dict[str, float] = {}
    for plan in plans:
        names, cats = input_names(plan)
        chosen, rounds, maes = probe_transforms(
            narrowed(rich, richest, plan), valid, names, cats, params, options
        )
        if not maes:  # the same rows for every plan: too few for any
            return plans[0], chosen, rounds, {}
        label = f" (feature lags {plan.feature_lags})" if plan.feature_lags else ""
        validation |= {f"{t}{label}": mae for t, mae in maes.items()}
        if best is None or maes[chosen] < best[0]:
            best = (maes[chosen], plan, chosen, rounds)
    assert best is not None
    return best[1], best[2], best[3], validation
