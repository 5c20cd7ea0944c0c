"""A global LightGBM model across series, direct multi-horizon.

One model for all distances, with the distance as a feature, rather than one
model per distance: with the few hundred rows a short series gives per distance,
separate models overfit, while a shared model learns how the horizon changes the
answer from every distance's rows at once (and costs one fit, one file, one
``predict`` call per request).  Targets and target features are divided by a
per-origin scale (see :mod:`tsengine.features`), so series of different
magnitudes share one model; ``transform="diff"`` predicts the change from the
last value instead, which suits trending data better, and ``transform="log"``
the logarithm ``log(1 + y / scale)``, which turns multiplicative effects
(a holiday that doubles demand whatever its level) into additive ones and
damps the pull of spikes on a squared loss.  The level model (``lightgbm``)
tries the scaled level and its log on its validation fold, the last forecast
window, and keeps the better; the change (``lightgbm_diff``) competes as its
own candidate in the training backtest.  On the same fold every LightGBM kind
also decides whether numeric non-KIA features get their lags and window
statistics or only their last value and mean (:mod:`tsengine.models.lgbm_fold`).

The series id is a categorical feature, so the trees learn what sets each
series apart, when each series has training rows enough to learn from (see
:data:`SERIES_ID_MIN_PAIRS`: a wide panel with few rows per series, such as
10,000 series under the training-pair cap, forecasts better and trains twice
as fast without it).  A series unseen at training has no value there, and LightGBM
sends it down whichever branch holds the other series at every split.  So
training also fits the same model (transform, rounds, rows) without the series
id, which serves series unseen at training: a new store or product is forecast
from what every series' history says, not from an arbitrary group of them.
Measured (``benchmarks/results/cold_start.md``: a quarter of each panel's
series left out of training, three held-out horizons), LightGBM's MASE on
them against the same series seen at training went from 1.575x to 1.037x on
us_employment_monthly and from 1.281x to 1.043x on visnights_quarterly; it
stayed 1.06x on flights_daily and went 0.875x -> 0.927x on tourism_quarterly
(8 series: the unseen pair is still forecast better than when seen).  The
unseen-series model costs one more boosting fit per LightGBM candidate at
training; backtest refits skip it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Self

import lightgbm as lgb
import numpy as np
import orjson
import polars as pl

from tsengine.contributions import Contributions
from tsengine.errors import TrainingDataError
from tsengine.features import (
    DEFAULT_FEATURE_LAGS,
    SCALE_FLOOR,
    CategoryMaps,
    Design,
    FeaturePlan,
    Layout,
    build_design,
)
from tsengine.models.base import ForecastModel
from tsengine.models.lgbm_explain import design_values, feature_names
from tsengine.models.lgbm_fold import (
    choose_fit,
    feature_plans,
    input_names,
    narrowed,
    transformed_target,
    untransform,
)
from tsengine.spec import TimeSeriesSpec
from tsengine.training_query import too_short, training_query
from tsengine.validate import IDX, SID, TIME, Y

__all__ = [
    "LightGBMDiffModel",
    "LightGBMLogModel",
    "LightGBMModel",
    "LightGBMSeriesScaleModel",
    "keeps_series_id",
    "log_shares",
    "series_scales",
    "training_scales",
]

# Below this many query rows a single thread answers faster than a pool wakes up.
SINGLE_THREAD_ROWS = 20_000
# ... and below this many explained rows: SHAP values cost about a millisecond a row
# (TreeSHAP walks every path of every tree), so the pool pays off far sooner
# [measured: 196 trees, 60 features, 2 cores: 64 rows in 64 -> 33 ms, 4,704 rows in 4.7 -> 2.4 s].
SINGLE_THREAD_CONTRIB_ROWS = 32
# A request's feature matrix is built and scored this many rows at a time
# (about 1 MB of features for daily data), bounding its memory; measured on
# 1,000 daily series (28,000 rows), no slower than one piece.
PREDICT_CHUNK_ROWS = 4_096
# From this many training rows LightGBM trains on every core (as tabular training does).
PARALLEL_ROWS = 50_000
# From this many training rows each boosting round fits a seeded random half of
# them (bagging) [measured: us_employment_monthly, 147 series, three held-out
# windows: LightGBM training 18-43 % faster; backtest MASE of the change model
# 0.503/0.570/0.612 -> 0.500/0.557/0.600, of the level model 0.583/0.731/0.700
# -> 0.591/0.740/0.711; held-out MASE within 0.02 either way].  Below it a
# round is cheap and every row counts.
BAGGING_ROWS = 50_000
# The series id is a categorical input only when its levels have rows enough to
# learn from: on average SERIES_ID_MIN_PAIRS training pairs per series, or at most
# SERIES_ID_FEW_SERIES series (a few levels are cheap and cannot scatter the rows).
# [measured: 1,000 / 3,000 / 10,000 tiled daily series x 2 years, training pairs
# capped at 600,000, so 584 / 195 / 59 pairs per series; validation-fold MAE of the
# scaled level with the id categorical against without it: 10.14 vs 10.43 (kept),
# 11.02 vs 9.75 and 10.72 vs 9.27 (dropped), and the probe took 25.8 / 37.2 / 60.0 s
# with it against 16.6 / 17.4 / 18.1 s without: 10,000 levels with ~60 rows each
# were split into noise and doubled every boosting round's histogram work.  The
# accuracy benchmark's panels (1 to 147 series, 244 to 8,274 pairs per series)
# all keep it.]
SERIES_ID_MIN_PAIRS = 300
SERIES_ID_FEW_SERIES = 100


def keeps_series_id(pairs: pl.DataFrame) -> bool:
    """Whether a fit on these training pairs takes the series id as an input (see :data:`SERIES_ID_MIN_PAIRS`)."""
    n_series = pairs.get_column(SID).n_unique()
    return n_series <= SERIES_ID_FEW_SERIES or pairs.height >= SERIES_ID_MIN_PAIRS * n_series


def _params(n_rows: int, seed: int) -> dict[str, Any]:
    """Defaults that hold up on small data (few series, short history), and bagging on large data."""
    bagging = {"bagging_fraction": 0.5, "bagging_freq": 1} if n_rows >= BAGGING_ROWS else {}
    return {
        **bagging,
        "objective": "l2",
        # 0.05 rather than 0.1 [measured: mean MASE over the last three horizons
        # of the accuracy benchmark's sets improved on 5 of 6 (data set, transform)
        # pairs, by 1-4 %, and was flat on the sixth]; early stopping sets the rounds.
        "learning_rate": 0.05,
        "num_leaves": int(np.clip(n_rows // 200, 7, 31)),
        "min_data_in_leaf": int(np.clip(n_rows // 500, 5, 50)),
        "feature_fraction": 0.9,
        "lambda_l2": 1.0,
        "max_bin": 127,
        "cat_smooth": 10.0,
        "min_data_per_group": 5,
        "seed": seed,
        "deterministic": True,
        "force_col_wise": True,
        # One thread for small fits: OpenMP workers spin while waiting, and on a
        # shared 2-core box two threads measured 10-30x slower than one there.
        # Large fits use every core [measured: us_employment_monthly, 147 series,
        # lightgbm_diff training 19.0 s -> 11.0 s on 2 cores, the same model:
        # with deterministic col-wise histograms the thread count changes nothing].
        "num_threads": 1 if n_rows < PARALLEL_ROWS else 0,
        "verbose": -1,
    }


DEFAULT_TRANSFORM = "scale"


def _first_negative(history: pl.DataFrame) -> dict[str, Any] | None:
    """The earliest row with a target below 0, where the log transform is undefined."""
    negative = history.filter(pl.col(Y) < 0)
    return negative.sort(TIME).row(0, named=True) if negative.height else None


def log_shares(parts: np.ndarray, base: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log-scale contributions as target-unit shares of ``scale * expm1(base + parts.sum(1))``.

    The base keeps ``scale * expm1(base)``; the remainder ``scale * exp(base) *
    expm1(S)`` is shared in proportion to each part of ``S``, so the shares
    keep the parts' signs and order and add up exactly.
    """
    total = parts.sum(axis=1)
    safe = np.where(total == 0.0, 1.0, total)
    per_unit = np.where(total == 0.0, 1.0, np.expm1(total) / safe)
    weight = scale * np.exp(base) * per_unit
    return parts * weight[:, None], scale * np.expm1(base)


class LightGBMModel(ForecastModel):
    """Gradient-boosted trees on lag, window, calendar and KIA features."""

    kind = "lightgbm"
    # Transforms this candidate chooses between on its validation fold (the
    # last forecast window): the level model tries the scaled level and its log.
    transforms: tuple[str, ...] = ("scale", "log")
    # Feature blocks tried on the same fold (FeaturePlan.with_feature_lags): the
    # plain one and lags up to DEFAULT_FEATURE_LAGS; one plan when the data has
    # no numeric non-KIA feature.
    feature_lag_choices: tuple[int, ...] = (0, DEFAULT_FEATURE_LAGS)
    # Whether each series is scaled by its training-time scale rather than each window's.
    fixed_scale: bool = False

    def __init__(
        self,
        booster: lgb.Booster,
        plan: FeaturePlan,
        maps: CategoryMaps,
        *,
        transform: str,
        rounds: int,
        validation: dict[str, float] | None = None,
        unseen: lgb.Booster | None = None,
        series_scale: dict[str, float] | None = None,
    ) -> None:
        self._booster = booster
        self.plan = plan
        self.maps = maps
        self.transform = transform
        self.rounds = rounds
        self.validation = validation or {}
        # The model without the series id, for series unseen at training; None
        # in backtest refits (their queries hold only series they trained on)
        # and in models stored before it existed.
        self._unseen = unseen
        # Each series' scale fixed at training (LightGBMSeriesScaleModel); None: every
        # origin's window scales its own rows.
        self.series_scale = series_scale

    def _scales(self, query: pl.DataFrame) -> np.ndarray | None:
        """The fixed scale of each query row's series (NaN for a series unseen at training)."""
        if self.series_scale is None:
            return None
        return series_scales(self.series_scale, query)

    @staticmethod
    def _target(design: Design, transform: str) -> np.ndarray:
        return transformed_target(design, transform)

    def _untransform(self, raw: np.ndarray, design: Design) -> np.ndarray:
        return untransform(self.transform, raw, design.last, design.scale)

    @classmethod
    def fit(
        cls,
        history: pl.DataFrame,
        spec: TimeSeriesSpec,
        *,
        seed: int = 0,
        transform: str | None = None,
        rounds: int | None = None,
        unseen: bool = True,
        feature_lags: int | None = None,
        series_id: bool | None = None,
    ) -> Self:
        """Fit with early stopping on the last forecast window, then refit on all.

        Without ``transform``, the class's transforms compete on that window
        (``scale`` and ``log`` here, the log only for targets of at least 0;
        ``diff`` alone for :class:`LightGBMDiffModel`, ``log`` alone for
        :class:`LightGBMLogModel`): each is early-stopped and the lowest mean
        absolute error in target units wins.  The level and the change compete
        as separate candidates in the training backtests instead, because they
        suit different data (trending or mean-reverting) and an ensemble gains
        from holding both.  With ``transform`` and ``rounds`` given (backtests
        refit with the final model's) nothing is probed: one fit per origin.
        With ``unseen`` and a series id, the same fit without the series id is
        kept for series unseen at training.

        With numeric non-KIA features, the plain feature block (their last
        value and window mean) and the richer one (also their lags and window
        statistics, :meth:`FeaturePlan.with_feature_lags`) compete on the same
        validation fold, each with every transform
        (:func:`~tsengine.models.lgbm_fold.choose_fit`);
        ``feature_lags`` (backtest refits pass the final model's) fixes the
        block instead, as does ``rounds`` alone (the plain block, as models
        stored before the choice were refitted).

        The series id is an input when the training pairs say so
        (:func:`keeps_series_id`); ``series_id`` (backtest refits pass the
        final model's) fixes it.  Without it there is no separate model for
        unseen series: the one model already forecasts without the id.

        Raises:
            TrainingDataError: no (origin, distance) pair with enough history,
                or a negative target for a model that only has the log.
        """
        options = (transform,) if transform else cls.transforms
        if "log" in options and (row := _first_negative(history)) is not None:
            if options == ("log",):
                msg = (
                    f"model {cls.kind!r} needs a target of at least 0 (it models log(1 + y / scale)): "
                    f"series {row[SID]!r} has {row[Y]} at {row[TIME]}"
                )
                raise TrainingDataError(msg)
            options = tuple(t for t in options if t != "log")
        pairs = training_query(history, spec)
        if pairs.height == 0:
            raise too_short(spec)
        base = FeaturePlan.for_spec(spec)
        if base.with_series and not (keeps_series_id(pairs) if series_id is None else series_id):
            base = dataclasses.replace(base, with_series=False)
        fixed = feature_lags if feature_lags is not None else (0 if rounds is not None else None)
        plans = feature_plans(base, cls.feature_lag_choices if fixed is None else (fixed,))
        richest = plans[-1]
        cat_cols = [
            *([SID] if base.with_series else []),  # without the id as an input, no codes to store
            *[c for c in (*base.known_in_advance, *base.features) if c in base.categorical],
        ]
        maps = CategoryMaps.learn(history, cat_cols, dated=base.known_in_advance)
        kept_scales = training_scales(history) if cls.fixed_scale else None
        scales = series_scales(kept_scales, pairs) if kept_scales is not None else None
        rich = build_design(history, pairs, richest, spec.time_step, maps, with_target=True, scales=scales)
        target_idx = pairs.get_column(IDX).to_numpy()
        valid = target_idx > target_idx.max() - len(spec.distances)
        params = _params(int(np.isfinite(transformed_target(rich, DEFAULT_TRANSFORM)).sum()), seed)
        plan, chosen = plans[0], options[0]
        validation: dict[str, float] = {}
        if rounds is None:
            plan, chosen, rounds, validation = choose_fit(rich, richest, plans, valid, params, options)
        design = narrowed(rich, richest, plan)
        del rich  # the richer block's matrix, when the plain one won
        names, cats = input_names(plan)
        y = transformed_target(design, chosen)
        keep = np.isfinite(y)
        full = lgb.Dataset(
            design.x[keep], y[keep], feature_name=names, categorical_feature=cats, free_raw_data=False
        )
        booster = lgb.train(params, full, num_boost_round=rounds)
        generic = None
        if unseen and plan.with_series:  # the series id is the last column (FeaturePlan.names)
            without = lgb.Dataset(
                design.x[keep, :-1], y[keep], feature_name=names[:-1], categorical_feature=cats[:-1]
            )
            generic = lgb.train(params, without, num_boost_round=rounds)
        return cls(
            booster,
            plan,
            maps,
            transform=chosen,
            rounds=rounds,
            validation=validation,
            unseen=generic,
            series_scale=kept_scales,
        )

    def refit_kwargs(self) -> dict[str, Any]:
        """Backtests refit with the same transform, rounds and feature block, without the unseen-series model.

        A backtest only queries series with history before its origin, which
        its refit trained on.
        """
        return {
            "transform": self.transform,
            "rounds": self.rounds,
            "unseen": False,
            "feature_lags": self.plan.feature_lags,
            "series_id": self.plan.with_series,
        }

    def design(
        self,
        history: pl.DataFrame,
        query: pl.DataFrame,
        spec: TimeSeriesSpec,
        *,
        layout: Layout | None = None,
    ) -> Design:
        """The feature matrix for a query (also used for explanations).

        With the request's ``layout`` the matrix is built on it once and, when
        the layout keeps designs, handed again to the explanations.
        """
        if layout is None or not layout.fits(history, query, self.plan.fdw):
            return build_design(
                history, query, self.plan, spec.time_step, self.maps, scales=self._scales(query)
            )
        return layout.design(
            id(self),
            lambda: build_design(
                history,
                query,
                self.plan,
                spec.time_step,
                self.maps,
                layout=layout,
                scales=self._scales(query),
            ),
        )

    def predict(
        self,
        history: pl.DataFrame,
        query: pl.DataFrame,
        spec: TimeSeriesSpec,
        *,
        layout: Layout | None = None,
    ) -> np.ndarray:
        """Predict every query row: one booster call, or one per :data:`PREDICT_CHUNK_ROWS` rows.

        A large query on the request's ``layout`` is predicted in pieces, so only
        one piece's feature matrix is alive at a time (10,000 series x 28
        distances made a 65 MB matrix); every row's features and prediction are
        the same either way.
        """
        if query.height == 0:
            return np.empty(0)
        threads = 1 if query.height < SINGLE_THREAD_ROWS else 0
        pieces = (
            layout is not None
            and not layout.keep_designs
            and query.height > PREDICT_CHUNK_ROWS
            and layout.fits(history, query, self.plan.fdw)
        )
        if not pieces:
            return self._predict_design(self.design(history, query, spec, layout=layout), threads)
        assert layout is not None
        parts = []
        for start in range(0, query.height, PREDICT_CHUNK_ROWS):
            piece = layout.rows(start, PREDICT_CHUNK_ROWS)
            parts.append(self._predict_design(self.design(history, piece.query, spec, layout=piece), threads))
        return np.concatenate(parts)

    def _predict_design(self, design: Design, threads: int) -> np.ndarray:
        """The predictions of a design's rows, in target units."""
        raw = np.asarray(self._booster.predict(design.x, num_threads=threads), dtype=np.float64)
        new = self._unseen_rows(design)
        if new.any():
            assert self._unseen is not None
            raw[new] = self._unseen.predict(design.x[new, :-1], num_threads=threads)
        return np.asarray(self._untransform(raw, design))

    def _unseen_rows(self, design: Design) -> np.ndarray:
        """Rows of series unseen at training (no series code) that the model without the series id serves."""
        if self._unseen is None:
            return np.zeros(design.x.shape[0], dtype=bool)
        return np.asarray(np.isnan(design.x[:, -1]))

    def contributions(self, design: Design) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature contributions (SHAP) and each row's base value, in target units.

        They add up to the prediction.  SHAP values are additive in the model's
        output; for the level and the change that output is linear in the
        target, but for the log transform it is not: the prediction
        ``scale * expm1(b + S)`` (base ``b``, contributions summing to ``S``)
        is split into the base's own ``scale * expm1(b)`` and a remainder
        ``scale * exp(b) * expm1(S)`` shared in proportion to each ``s_i / S``,
        which keeps every contribution's sign and ranking.
        """
        threads = 1 if design.x.shape[0] < SINGLE_THREAD_CONTRIB_ROWS else 0
        raw = np.asarray(self._booster.predict(design.x, pred_contrib=True, num_threads=threads))
        new = self._unseen_rows(design)
        if new.any():  # the model without the series id: that feature contributes nothing
            assert self._unseen is not None
            generic = np.asarray(
                self._unseen.predict(design.x[new, :-1], pred_contrib=True, num_threads=threads)
            )
            raw[new] = np.insert(generic, -1, 0.0, axis=1)
        parts, base = raw[:, :-1], raw[:, -1]
        if self.transform == "log":
            return log_shares(parts, base, design.scale)
        offset = design.last if self.transform == "diff" else 0.0
        return parts * design.scale[:, None], base * design.scale + offset

    def explain(
        self,
        history: pl.DataFrame,
        query: pl.DataFrame,
        spec: TimeSeriesSpec,
        *,
        layout: Layout | None = None,
    ) -> Contributions:
        """SHAP contributions in target units (:meth:`contributions`), base the expected value.

        Inputs are named after the deployment's columns and shown unscaled or
        decoded (:mod:`tsengine.models.lgbm_explain`).  With the request's
        ``layout`` the design the prediction used is reused.
        """
        names = feature_names(self.plan, spec)
        if query.height == 0:
            return Contributions.empty(names)
        design = self.design(history, query, spec, layout=layout)
        strengths, base = self.contributions(design)
        return Contributions(
            strengths, base, names, design_values(self.plan, self.maps, design.x, design.scale, query)
        )

    def to_bytes(self) -> bytes:
        """JSON header with the plan and codes, LightGBM's own text model inside."""
        return orjson.dumps(
            {
                "plan": self.plan.to_dict(),
                "maps": self.maps.to_dict(),
                "transform": self.transform,
                "rounds": self.rounds,
                "validation": self.validation,
                "booster": self._booster.model_to_string(),
                "unseen_booster": self._unseen.model_to_string() if self._unseen is not None else None,
                **({"series_scale": self.series_scale} if self.series_scale is not None else {}),
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Inverse of :meth:`to_bytes`."""
        state = orjson.loads(data)
        booster = lgb.Booster(model_str=state["booster"])
        unseen = state.get("unseen_booster")
        return cls(
            booster,
            FeaturePlan.from_dict(state["plan"]),
            CategoryMaps(state["maps"]),
            transform=state["transform"],
            rounds=int(state["rounds"]),
            validation=state.get("validation"),
            unseen=lgb.Booster(model_str=unseen) if unseen else None,
            series_scale=state.get("series_scale"),
        )

    def describe(self) -> dict[str, Any]:
        """Kind, transform (with each tried transform's validation MAE), rounds and the feature names."""
        return {
            "kind": self.kind,
            "transform": self.transform,
            "validation_mae": self.validation,
            "rounds": self.rounds,
            "features": self.plan.names,
            "unseen_series": "the same model without the series id" if self._unseen is not None else None,
        }


class LightGBMDiffModel(LightGBMModel):
    """The same global model predicting the change from the last value, ``(y - last) / scale``.

    Trending series (employment counts, cumulative sales) extrapolate better as
    changes than as levels; seasonal, mean-reverting ones the other way round.
    Rather than guess, training backtests both and keeps whichever wins.
    """

    kind = "lightgbm_diff"
    transforms = ("diff",)


class LightGBMSeriesScaleModel(LightGBMModel):
    """The same global model with each series scaled by its training-time level, not each window's.

    The level model divides a row's target and target features by the mean
    absolute target of its origin's window, so it forecasts relative to the
    recent level; that suits series whose level shifts for good, but a level
    that moves with a driver the model reads (temperature, the time of year)
    is then learnt only relative to where the window happened to sit.  This
    candidate scales every row of a series by one number, its mean absolute
    target over the training data (mlforecast's per-series scaler), so the
    model learns the level itself.  Series unseen at training use the window's
    scale.  Which suits the data is left to the backtests, as for the level
    and the change.
    """

    kind = "lightgbm_series_scale"
    fixed_scale = True

    def describe(self) -> dict[str, Any]:
        """The level model's description, and how many series have a fixed scale."""
        return {**super().describe(), "series_scales": len(self.series_scale or {})}


def training_scales(history: pl.DataFrame) -> dict[str, float]:
    """Each series' mean absolute observed target: its fixed scale."""
    level = (
        history.filter(pl.col(Y).is_not_null())
        .group_by(SID)
        .agg(pl.col(Y).abs().mean().alias("__scale"))
        .filter(pl.col("__scale") > SCALE_FLOOR)
        .sort(SID)  # a stored model's bytes do not depend on group order
    )
    return dict(zip(level.get_column(SID).to_list(), level.get_column("__scale").to_list(), strict=True))


def series_scales(scales: dict[str, float], query: pl.DataFrame) -> np.ndarray:
    """The fixed scale of each query row's series, NaN where it has none."""
    return (
        query.get_column(SID)
        .replace_strict(scales, default=None, return_dtype=pl.Float64)
        .fill_null(np.nan)
        .to_numpy()
    )


class LightGBMLogModel(LightGBMModel):
    """The same global model on ``log(1 + y / scale)``, for targets of at least 0.

    Demand and counts grow and shrink by ratios: a promotion or a holiday
    multiplies sales, and their noise grows with their level.  On the log scale
    those effects add up, so trees share them across series and levels, and a
    spike pulls a squared loss less.  The ``1 +`` keeps zeros (intermittent
    demand) usable; on data with negative values this candidate does not train
    and training notes why.
    """

    kind = "lightgbm_log"
    transforms = ("log",)
