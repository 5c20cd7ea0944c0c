"""Tabular prediction rows → DataRobot's JSON and CSV, plus the pieces both kinds share.

Explanations and humility reports render the same for time series and tabular
deployments, so their expressions live here and :mod:`tsengine.render` uses
them too.  An explanation's ``featureValue`` is a number for numeric features
and a string for categories; a polars list cannot mix types, so each
explanation object is encoded to JSON text by polars (one struct per value
kind) and spliced into the row's JSON text: still no Python loop over rows.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import polars as pl

from tsengine.explain import LABEL, explanation_columns
from tsengine.humility import HUMILITY, MODEL_PREDICTION, rules_from_metadata
from tsengine.options import PredictOptions
from tsengine.render import APPROVAL_STATUS, passthrough_frame
from tsengine.tabular.deployment import TabularDeployment, class_labels, probability_column

__all__ = [
    "csv_table",
    "explanation_csv",
    "explanations_json",
    "humility_csv",
    "json_body",
    "to_csv",
    "to_json",
]

EXPLANATIONS = "predictionExplanations"
_RAW = "__explanations_json"


class _Result(Protocol):
    @property
    def frame(self) -> pl.DataFrame: ...


def _column(frame: pl.DataFrame, name: str, dtype: pl.DataType) -> pl.Expr:
    """A column, or typed nulls when the prediction has none (no contributions)."""
    return pl.col(name) if name in frame.columns else pl.lit(None, dtype)


def _object(label: pl.Expr, feature: pl.Expr, value: pl.Expr, strength: pl.Expr, quality: pl.Expr) -> pl.Expr:
    return pl.struct(
        label.alias("label"),
        feature.alias("feature"),
        value.alias("featureValue"),
        strength.alias("strength"),
        quality.alias("qualitativeStrength"),
    ).struct.json_encode()


def explanations_json(frame: pl.DataFrame, options: PredictOptions) -> pl.Expr:
    """Per row, the ``predictionExplanations`` array as JSON text (``[]`` when none)."""
    label = _column(frame, LABEL, pl.String())
    objects: list[pl.Expr] = []
    for n in range(1, options.max_explanations + 1):
        f_name, s_name, q_name, v_name = explanation_columns(n)
        feature = _column(frame, f_name, pl.String())
        strength = _column(frame, s_name, pl.Float64())
        quality = _column(frame, q_name, pl.String())
        value = _column(frame, v_name, pl.String())
        number = value.cast(pl.Float64, strict=False)
        integer = value.cast(pl.Int64, strict=False)
        objects.append(
            pl.when(feature.is_null())
            .then(None)
            .when(integer.is_not_null())
            .then(_object(label, feature, integer, strength, quality))
            .when(number.is_finite())
            .then(_object(label, feature, number, strength, quality))
            .otherwise(_object(label, feature, value, strength, quality))
            .alias(f"__explanation{n}")
        )
    if not objects:
        return pl.lit("[]", pl.String)
    return pl.concat_str(pl.lit("["), pl.concat_list(objects).list.drop_nulls().list.join(","), pl.lit("]"))


def explanation_csv(frame: pl.DataFrame, options: PredictOptions) -> list[pl.Expr]:
    """``EXPLANATION_<n>_*`` columns for ``n = 1..maxExplanations``."""
    cols: list[pl.Expr] = []
    for n in range(1, options.max_explanations + 1):
        names = explanation_columns(n)
        types = (pl.String(), pl.Float64(), pl.String(), pl.String())
        cols += [_column(frame, c, t).alias(c) for c, t in zip(names, types, strict=True)]
    return cols


def humility_csv(deployment: Any, frame: pl.DataFrame) -> list[pl.Expr]:
    """One ``HUMILITY_<ruleId>_TRIGGERED`` column per rule, in rule order."""
    if HUMILITY not in frame.columns:
        return []
    rules = rules_from_metadata(getattr(deployment, "metadata", {}))
    return [
        pl.col(HUMILITY).list.get(i).struct.field("triggered").alias(f"HUMILITY_{r.rule_id}_TRIGGERED")
        for i, r in enumerate(rules)
    ]


def json_body(rows: pl.DataFrame, *, explanations: str | None = None) -> bytes:
    """``{"data": [...]}`` from typed row columns.

    Args:
        rows: one column per JSON field, in field order.
        explanations: a String column of ``rows`` holding each row's
            ``predictionExplanations`` array as JSON text, spliced in as is.
    """
    fields = pl.exclude(explanations) if explanations else pl.all()
    text = pl.struct(fields).struct.json_encode()
    if explanations is not None:
        text = pl.concat_str(
            text.str.head(-1), pl.lit(f',"{EXPLANATIONS}":'), pl.col(explanations), pl.lit("}")
        )
    joined = rows.select(text.str.join(",")).item() if rows.height else ""
    return b'{"data":[' + str(joined).encode() + b"]}"


def _prediction_values(deployment: TabularDeployment, out: pl.DataFrame) -> pl.Expr:
    """``predictionValues``: one item per class, by descending probability."""
    if deployment.task == "regression":
        value = MODEL_PREDICTION if MODEL_PREDICTION in out.columns else "prediction"
        return pl.concat_list(
            pl.struct(pl.col(value).alias("value"), pl.lit(deployment.target).alias("label"))
        ).alias("predictionValues")
    classes = deployment.classes
    proba = out.select(probability_column(deployment.target, c) for c in classes).to_numpy()
    order = np.argsort(-proba, axis=1, kind="stable")
    values = np.take_along_axis(proba, order, axis=1)
    items = [
        pl.struct(
            pl.lit(pl.Series(values[:, j], dtype=pl.Float64)).alias("value"),
            pl.lit(class_labels(classes, order[:, j], "label")).alias("label"),
        )
        for j in range(len(classes))
    ]
    return pl.concat_list(items).alias("predictionValues")


def to_json(
    deployment: TabularDeployment, result: _Result, frame: pl.DataFrame, options: PredictOptions
) -> bytes:
    """Rows in input order: ``rowId``, ``prediction``, ``predictionValues`` and the rest."""
    out = result.frame
    passthrough = passthrough_frame(frame, options)
    cols: list[pl.Expr] = [pl.col("rowId"), pl.col("prediction"), _prediction_values(deployment, out)]
    if deployment.task == "binary":
        cols.append(pl.col("predictionThreshold"))
    if HUMILITY in out.columns:
        cols.append(pl.col(HUMILITY))
    rows = out.select(cols)
    if passthrough is not None:
        rows = rows.with_columns(passthrough.select(pl.struct(pl.all()).alias("passthroughValues")))
    if options.max_explanations > 0:
        rows = rows.with_columns(
            out.with_columns(explanations_json(out, options).alias(_RAW)).get_column(_RAW)
        )
        return json_body(rows, explanations=_RAW)
    return json_body(rows)


def to_csv(
    deployment: TabularDeployment, result: _Result, frame: pl.DataFrame, options: PredictOptions
) -> bytes:
    """DataRobot's non-time-series CSV as bytes (see :func:`csv_table`)."""
    return csv_table(deployment, result, frame, options).write_csv().encode()


def csv_table(
    deployment: TabularDeployment, result: _Result, frame: pl.DataFrame, options: PredictOptions
) -> pl.DataFrame:
    """DataRobot's non-time-series CSV columns, then explanations, humility, passthrough."""
    out = result.frame
    target = deployment.target
    cols: list[pl.Expr] = []
    if deployment.task != "regression":
        cols += [pl.col(probability_column(target, c)) for c in deployment.classes]
    cols.append(pl.col("prediction").alias(f"{target}_PREDICTION"))
    if deployment.task == "binary":
        cols += [
            pl.col("predictionThreshold").alias("THRESHOLD"),
            pl.lit(str(deployment.positive_class)).alias("POSITIVE_CLASS"),
        ]
    if options.max_explanations > 0:
        cols += explanation_csv(out, options)
    cols += humility_csv(deployment, out)
    cols.append(pl.lit(APPROVAL_STATUS).alias("DEPLOYMENT_APPROVAL_STATUS"))
    table = out.select(cols)
    passthrough = passthrough_frame(frame, options)
    if passthrough is not None:
        taken = set(table.columns)
        table = pl.concat(
            [table, passthrough.rename({c: f"{c}_passthrough" for c in passthrough.columns if c in taken})],
            how="horizontal",
        )
    return table
