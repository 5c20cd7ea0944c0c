"""Additive per-feature contributions of a forecast, the common currency of explanations.

Every time series model that can say *why* it forecast a number returns a
:class:`Contributions` for a query (``ForecastModel.explain``): one row per query
row, one column per readable feature, in target units, plus a per-row base, with

``base + strengths.sum(axis=1) == prediction``

up to float rounding.  The explanations (:mod:`tsengine.explain`) rank the
columns; ensembles combine their members' contributions here
(:func:`weighted_sum`, :func:`pick_rows`), so every model kind is explained by
the same code.

Display values (``values``) are what a person would call the feature's value
for that row: an observed lag, the level of the series, a known-in-advance
value.  A column holds either numbers (NaN or None: no value) or text
(categories; None: no value); :func:`format_values` writes them as
explanations show them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

__all__ = ["Contributions", "display", "format_values", "numeric_values", "pick_rows", "snap", "weighted_sum"]

# Integral floats at or above this print in exponent form, never as an int.
_INT_DISPLAY_LIMIT = 1e15
_NONE = np.array(None, dtype=object)  # compared element-wise: where a display value is None


@dataclass(frozen=True, slots=True)
class Contributions:
    """Per-row additive contributions of named features, in target units.

    Attributes:
        strengths: ``(rows, features)`` contributions (NaN where the row has no prediction).
        base: ``(rows,)`` the part of each prediction no feature explains.
        names: one readable name per column (``sales (lag 7)``, ``sales (level)``).
        values: ``(rows, features)`` object array of display values; each column
            numbers (NaN or None: none) or text (None: none).
    """

    strengths: np.ndarray
    base: np.ndarray
    names: list[str]
    values: np.ndarray

    @classmethod
    def empty(cls, names: list[str]) -> Contributions:
        """No rows (an empty query)."""
        p = len(names)
        return cls(np.empty((0, p)), np.empty(0), names, np.empty((0, p), dtype=object))

    @property
    def prediction(self) -> np.ndarray:
        """``base + strengths.sum(axis=1)``: the forecast these contributions add up to."""
        return np.asarray(self.base + self.strengths.sum(axis=1))


def numeric_values(columns: Sequence[np.ndarray], rows: int) -> np.ndarray:
    """An object array of display values from float columns (one per feature)."""
    out = np.empty((rows, len(columns)), dtype=object)
    for j, col in enumerate(columns):
        out[:, j] = np.broadcast_to(np.asarray(col, dtype=np.float64), (rows,))
    return out


def snap(values: np.ndarray, digits: int = 12) -> np.ndarray:
    """Values rounded to ``digits`` significant digits.

    A value that was scaled and unscaled (``y / s * s``) then shows as posted
    (``33``, not ``33.00000000000001``).
    """
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        exponent = np.where(np.isfinite(v) & (v != 0), np.floor(np.log10(np.abs(v))), 0.0)
    shift = digits - 1 - exponent
    up = np.power(10.0, np.clip(shift, 0, 22))
    down = np.power(10.0, np.clip(-shift, 0, 22))
    with np.errstate(invalid="ignore", over="ignore"):
        rounded = np.where(shift >= 0, np.round(v * up) / up, np.round(v / down) * down)
    return np.asarray(np.where(np.isfinite(rounded), rounded, v))


def display(expr: pl.Expr) -> pl.Expr:
    """A numeric expression as the text a person would write (``49``, ``0.25``)."""
    number = expr.cast(pl.Float64)
    x = pl.when(number.is_nan()).then(None).otherwise(number)
    integral = (x == x.round(0)) & (x.abs() < _INT_DISPLAY_LIMIT)
    return pl.when(integral).then(x.cast(pl.Int64).cast(pl.String)).otherwise(x.cast(pl.String))


def _as_float(column: np.ndarray) -> np.ndarray | None:
    """A float copy of an object column of numbers (None read as NaN), None when it holds text."""
    try:
        return np.asarray(np.where(np.equal(column, _NONE), np.nan, column).astype(np.float64))
    except (TypeError, ValueError):
        return None


def format_values(values: np.ndarray) -> np.ndarray:
    """Display values as text (``str`` or ``None``), column by column.

    Float columns are written by :func:`display` (integral numbers without
    decimals, NaN as None); text columns pass through.
    """
    out = np.empty(values.shape, dtype=object)
    for j in range(values.shape[1]):
        number = _as_float(values[:, j])
        if number is None:
            out[:, j] = values[:, j]
            continue
        text = pl.select(display(pl.lit(pl.Series("v", number, dtype=pl.Float64)))).to_series()
        out[:, j] = np.asarray(text.to_list(), dtype=object)
    return out


def _merge_values(stack: list[np.ndarray], weight: list[np.ndarray]) -> np.ndarray:
    """One display column from the members' columns of one name.

    Numbers the members agree on are kept as they are; where they differ (two
    models' levels), their mean weighted like the contributions.  Text: the
    first member's.
    """
    numbers = [_as_float(v) for v in stack]
    if any(n is None for n in numbers):
        return stack[0]
    vals = np.vstack(numbers)  # type: ignore[arg-type]
    w = np.vstack(weight) * np.isfinite(vals)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(w > 0, vals * w, 0.0).sum(axis=0) / w.sum(axis=0)
        lo = np.where(w > 0, vals, np.inf).min(axis=0)
        hi = np.where(w > 0, vals, -np.inf).max(axis=0)
    out = np.where(np.isclose(lo, hi, rtol=1e-12, atol=0.0), lo, mean)
    return np.asarray(np.where(w.sum(axis=0) > 0, out, np.nan))


def weighted_sum(parts: Sequence[Contributions], weights: np.ndarray) -> Contributions:
    """The contributions of a weighted mean of forecasts, features of one name merged.

    Args:
        parts: each member's contributions for the same query rows.
        weights: ``(members, rows)`` weights, summing to 1 over the members of
            each row (0 for a member that cannot predict that row; its NaN
            contributions are then ignored).

    Returns:
        Columns in order of first appearance over the members; base the
        weighted sum of the bases; NaN rows where no member has weight.
    """
    rows = weights.shape[1]
    names: list[str] = []
    where: dict[str, list[tuple[int, int]]] = {}
    for i, part in enumerate(parts):
        for j, name in enumerate(part.names):
            if name not in where:
                where[name] = []
                names.append(name)
            where[name].append((i, j))
    live = weights > 0
    strengths = np.zeros((rows, len(names)))
    base = np.zeros(rows)
    for i, part in enumerate(parts):
        base += np.where(live[i], part.base * weights[i], 0.0)
    values = np.empty((rows, len(names)), dtype=object)
    for k, name in enumerate(names):
        stack, weight = [], []
        for i, j in where[name]:
            strengths[:, k] += np.where(live[i], parts[i].strengths[:, j] * weights[i], 0.0)
            stack.append(parts[i].values[:, j])
            weight.append(weights[i])
        values[:, k] = _merge_values(stack, weight)
    empty = ~live.any(axis=0)
    strengths[empty] = np.nan
    base[empty] = np.nan
    return Contributions(strengths, base, names, values)


def pick_rows(parts: Sequence[Contributions], choice: np.ndarray) -> Contributions:
    """Row ``r`` from ``parts[choice[r]]``: the contributions of a per-row choice among forecasts.

    Columns are the union of the parts' names; a feature the chosen part does
    not have contributes 0 (and has no value) in that row.
    """
    rows = choice.shape[0]
    names = list(dict.fromkeys(n for part in parts for n in part.names))
    column = {n: k for k, n in enumerate(names)}
    strengths = np.zeros((rows, len(names)))
    base = np.full(rows, np.nan)
    values = np.full((rows, len(names)), None, dtype=object)
    for i, part in enumerate(parts):
        mine = choice == i
        if not mine.any():
            continue
        cols = np.asarray([column[n] for n in part.names], dtype=np.int64)
        strengths[np.ix_(mine, cols)] = part.strengths[mine]
        values[np.ix_(mine, cols)] = part.values[mine]
        base[mine] = part.base[mine]
    return Contributions(strengths, base, names, values)
