"""LightGBM's inputs named and shown as explanations show them.

The model's columns (:attr:`~tsengine.features.FeaturePlan.names`) are named
after the deployment's columns (``target (lag 7)`` becomes ``sales (lag 7)``,
``calendar weekday`` becomes ``date (weekday)``; a non-KIA feature's columns
already carry its name: ``temperature (lag 3)``, ``temperature (std 7)``), and
their values are shown unscaled (target features) or decoded (categories), so
an explanation reads like the data that was posted.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from tsengine.contributions import snap
from tsengine.features import CategoryMaps, FeaturePlan
from tsengine.spec import TimeSeriesSpec
from tsengine.validate import SID

__all__ = ["design_values", "feature_names"]


def feature_names(plan: FeaturePlan, spec: TimeSeriesSpec) -> list[str]:
    """The plan's inputs named after the deployment's columns (``sales (lag 7)``)."""
    out: list[str] = []
    for name in plan.names:
        if name.startswith("target ("):
            out.append(spec.target + name[len("target") :])
        elif name.startswith("calendar "):
            out.append(f"{spec.datetime_column} ({name[len('calendar ') :]})")
        elif name == "series id":
            out.append(spec.series_id_column or name)
        else:
            out.append(name)
    return out


def design_values(
    plan: FeaturePlan, maps: CategoryMaps, x: np.ndarray, scale: np.ndarray, query: pl.DataFrame
) -> np.ndarray:
    """Display values of a design: target features unscaled (floats), category codes decoded (text).

    A known-in-advance category shows the value of ``query`` (the design's
    rows) itself, not its decoded code: a level the model has no code for (a
    one-date event name, a new promotion type) is still what was posted, and
    the explanation says which.
    """
    posted = {k for k in plan.known_in_advance if k in plan.categorical}
    sources = {f"{f} (last)": f for f in plan.features if f in plan.categorical}
    sources["series id"] = SID
    out = np.empty(x.shape, dtype=object)
    for i, name in enumerate(plan.names):
        if name in posted:
            out[:, i] = np.asarray(query.get_column(name).cast(pl.String).to_list(), dtype=object)
        elif name in plan.categorical_names:
            mapping = maps.maps.get(sources[name], {})
            codes = pl.Series(x[:, i]).cast(pl.Int64, strict=False)
            text = codes.replace_strict(
                list(mapping.values()), list(mapping), default=None, return_dtype=pl.String
            )
            out[:, i] = np.asarray(text.to_list(), dtype=object)
        elif name.startswith("target ("):
            out[:, i] = snap(x[:, i] * scale)
        else:
            out[:, i] = x[:, i]
    return out
