"""LightGBM early stopping, shared by the time series and tabular models.

Both fit twice: a probe on the training rows with early stopping on a held-out
fold picks the number of boosting rounds, then the model is refitted on every
row with that many rounds (the held-out rows are usually the most recent, the
ones a forecaster can least afford to drop).
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np

__all__ = ["early_stopping_probe"]


def early_stopping_probe(
    x: np.ndarray,
    y: np.ndarray,
    valid: np.ndarray,
    *,
    params: dict[str, Any],
    names: list[str],
    categorical: list[str] | list[int],
    max_rounds: int,
    patience: int,
) -> lgb.Booster:
    """Train on ``~valid`` rows, stopping when the ``valid`` rows stop improving.

    Returns:
        The probe booster; ``best_iteration`` is the chosen number of rounds.
    """
    train_set = lgb.Dataset(
        x[~valid], y[~valid], feature_name=names, categorical_feature=categorical, free_raw_data=False
    )
    valid_set = lgb.Dataset(x[valid], y[valid], reference=train_set)
    return lgb.train(
        params,
        train_set,
        num_boost_round=max_rounds,
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(patience, verbose=False)],
    )
