"""Humility rules: when a deployment should admit it is out of its depth.

A rule pairs a *trigger* with an *action*, as DataRobot's humility monitoring:

* triggers — ``uncertain_prediction`` (the prediction, or for classification the
  probability, falls outside ``[low, high]``), ``outlying_input`` (a numeric
  feature outside ``[low, high]``) and ``low_observation_region`` (a category
  not seen in training);
* actions — ``no_op`` (report only), ``override`` (replace the prediction with
  a stored value; ``predictionValues`` keep the model's numbers, as in
  DataRobot's example) and ``throw_error`` (the request fails with HTTP 480).

Rules live in a deployment's ``metadata["humility"]`` as plain JSON, so both
deployment kinds store them the same way and older deployments load with none.
Evaluation is vectorised: one boolean column per rule over all rows.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from tsengine.errors import HumilityError, ParameterError

__all__ = [
    "ACTIONS",
    "DEFAULT_NAMES",
    "HUMILITY",
    "HUMILITY_ERROR_MESSAGE",
    "METADATA_KEY",
    "MODEL_PREDICTION",
    "TRIGGERS",
    "HumilityRule",
    "apply_humility",
    "evaluate",
    "new_rule_id",
    "rules_from_metadata",
    "with_rules",
]

TRIGGERS = ("uncertain_prediction", "outlying_input", "low_observation_region")
ACTIONS = ("no_op", "override", "throw_error")
DEFAULT_NAMES = {
    "uncertain_prediction": "Uncertain Prediction Trigger",
    "outlying_input": "Outlying Input Trigger",
    "low_observation_region": "Low Observation Region Trigger",
}
HUMILITY_ERROR_MESSAGE = "Humility ReturnError action triggered."
"""DataRobot's exact message for the throw-error action."""
METADATA_KEY = "humility"
MODEL_PREDICTION = "modelPrediction"
"""Column keeping the model's own prediction when an override rule exists."""
HUMILITY = "humility"
"""Column of the per-row rule reports."""


def new_rule_id() -> str:
    """A 24-hex-digit id, the shape of DataRobot's rule ids (MongoDB ObjectIds)."""
    return secrets.token_hex(12)


def _number(value: Any, what: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        msg = f"{what} must be a finite number, got {value!r}"
        raise ParameterError(msg)
    return number


@dataclass(frozen=True, slots=True)
class HumilityRule:
    """One trigger and its action.

    Attributes:
        rule_id: reported as ``ruleId``.
        name: reported as ``ruleName``.
        trigger: one of :data:`TRIGGERS`.
        action: one of :data:`ACTIONS`.
        feature: the input column (outlying input, low observation region).
        low: lower bound of the accepted range (uncertain prediction, outlying input).
        high: upper bound of the accepted range.
        categories: the categories seen in training (low observation region).
        override: the value replacing the prediction (override action).
    """

    rule_id: str
    name: str
    trigger: str
    action: str
    feature: str | None = None
    low: float | None = None
    high: float | None = None
    categories: tuple[str, ...] = field(default=())
    override: Any = None

    def __post_init__(self) -> None:
        """Reject rules that could never work, naming the fix."""
        if self.trigger not in TRIGGERS:
            msg = f"unknown humility trigger {self.trigger!r}; choose from {', '.join(TRIGGERS)}"
            raise ParameterError(msg)
        if self.action not in ACTIONS:
            msg = f"unknown humility action {self.action!r}; choose from {', '.join(ACTIONS)}"
            raise ParameterError(msg)
        object.__setattr__(self, "low", _number(self.low, "the lower bound"))
        object.__setattr__(self, "high", _number(self.high, "the upper bound"))
        ranged = self.trigger in {"uncertain_prediction", "outlying_input"}
        if ranged and self.low is None and self.high is None:
            msg = f"a {self.trigger} rule needs a lower bound, an upper bound or both"
            raise ParameterError(msg)
        if self.low is not None and self.high is not None and self.low > self.high:
            msg = f"the lower bound ({self.low}) must not exceed the upper bound ({self.high})"
            raise ParameterError(msg)
        if self.trigger != "uncertain_prediction" and not self.feature:
            msg = f"a {self.trigger} rule needs a feature"
            raise ParameterError(msg)
        if self.trigger == "low_observation_region" and not self.categories:
            msg = "a low_observation_region rule needs the categories seen in training"
            raise ParameterError(msg)
        if self.action == "override" and self.override is None:
            msg = "an override rule needs the value that replaces the prediction"
            raise ParameterError(msg)

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as stored in the deployment."""
        return {
            "ruleId": self.rule_id,
            "ruleName": self.name,
            "trigger": self.trigger,
            "action": self.action,
            "feature": self.feature,
            "low": self.low,
            "high": self.high,
            "categories": list(self.categories),
            "override": self.override,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HumilityRule:
        """Inverse of :meth:`to_dict`."""
        return cls(
            rule_id=str(data["ruleId"]),
            name=str(data["ruleName"]),
            trigger=str(data["trigger"]),
            action=str(data["action"]),
            feature=data.get("feature"),
            low=data.get("low"),
            high=data.get("high"),
            categories=tuple(str(c) for c in data.get("categories") or ()),
            override=data.get("override"),
        )


def rules_from_metadata(metadata: Mapping[str, Any]) -> tuple[HumilityRule, ...]:
    """The rules stored in a deployment's metadata (none for older deployments)."""
    return tuple(HumilityRule.from_dict(r) for r in metadata.get(METADATA_KEY) or ())


def with_rules(metadata: Mapping[str, Any], rules: Sequence[HumilityRule]) -> dict[str, Any]:
    """A copy of ``metadata`` holding ``rules`` instead of the old ones."""
    return {**metadata, METADATA_KEY: [r.to_dict() for r in rules]}


def _outside(values: pl.Expr, low: float | None, high: float | None) -> pl.Expr:
    below = values < low if low is not None else pl.lit(False)
    above = values > high if high is not None else pl.lit(False)
    return (below | above).fill_null(False)


def _rule_expr(rule: HumilityRule, columns: Sequence[str]) -> pl.Expr:
    if rule.trigger == "uncertain_prediction":
        score = pl.col("__score")
        return _outside(pl.when(score.is_nan()).then(None).otherwise(score), rule.low, rule.high)
    assert rule.feature is not None
    if rule.feature not in columns:
        return pl.lit(False)
    value = pl.col(rule.feature)
    if rule.trigger == "outlying_input":
        number = value.cast(pl.Float64, strict=False)
        return _outside(pl.when(number.is_nan()).then(None).otherwise(number), rule.low, rule.high)
    text = value.cast(pl.String, strict=False)
    return (text.is_not_null() & ~text.is_in(list(rule.categories))).fill_null(False)


def evaluate(rules: Sequence[HumilityRule], *, score: np.ndarray, inputs: pl.DataFrame) -> pl.DataFrame:
    """Which rule fires on which row.

    Args:
        rules: the deployment's rules.
        score: per row, the number uncertain-prediction rules check (the
            prediction; for classification the probability).
        inputs: per row, the input features by column name.

    Returns:
        One Boolean column per rule, named by rule id, aligned with the rows.
    """
    frame = pl.DataFrame({"__score": np.asarray(score, dtype=np.float64)})
    if inputs.width:
        frame = pl.concat([inputs, frame], how="horizontal")
    return frame.select(*(_rule_expr(r, inputs.columns).alias(f"__rule{i}") for i, r in enumerate(rules)))


def apply_humility(
    out: pl.DataFrame,
    rules: Sequence[HumilityRule],
    *,
    score: np.ndarray,
    inputs: pl.DataFrame,
) -> pl.DataFrame:
    """Evaluate the rules, act on them and report them on every row.

    Adds the ``humility`` list (``ruleId``, ``triggered``, ``ruleName`` for every
    rule), replaces ``prediction`` where an override rule fires (the first such
    rule in order wins) keeping the model's value in ``modelPrediction``.

    Raises:
        HumilityError: a throw-error rule fired on any row (HTTP 480).
    """
    if not rules:
        return out
    fired = evaluate(rules, score=score, inputs=inputs)
    names = fired.columns
    throw = [n for n, r in zip(names, rules, strict=True) if r.action == "throw_error"]
    if throw and bool(fired.select(pl.any_horizontal(throw).any()).item()):
        raise HumilityError(HUMILITY_ERROR_MESSAGE)
    out = out.with_columns(fired)
    overrides = [(n, r) for n, r in zip(names, rules, strict=True) if r.action == "override"]
    if overrides:
        dtype = out.schema["prediction"]
        chain: Any = pl
        for n, r in overrides:
            chain = chain.when(pl.col(n)).then(pl.lit(r.override).cast(dtype))
        out = out.with_columns(
            pl.col("prediction").alias(MODEL_PREDICTION),
            chain.otherwise(pl.col("prediction")).alias("prediction"),
        )
    report = pl.concat_list(
        pl.struct(
            pl.lit(r.rule_id).alias("ruleId"),
            pl.col(n).alias("triggered"),
            pl.lit(r.name).alias("ruleName"),
        )
        for n, r in zip(names, rules, strict=True)
    ).alias(HUMILITY)
    return out.with_columns(report).drop(names)
