"""Tabular prediction rows → DataRobot's non-time-series JSON and CSV.

Explanations, humility reports and passthrough columns come from
:mod:`tsengine.render.shared`, as for time series deployments.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import polars as pl

from tsengine.humility import HUMILITY, MODEL_PREDICTION
from tsengine.options import PredictOptions
from tsengine.render.shared import (
    APPROVAL_STATUS,
    explanation_csv,
    explanations_json,
    humility_csv,
    json_body,
    passthrough_frame,
)
from tsengine.tabular.deployment import TabularDeployment, class_labels, probability_column

__all__ = ["csv_table", "to_csv", "to_json"]

_RAW = "__explanations_json"


class _Result(Protocol):
    @property
    def frame(self) -> pl.DataFrame: ...


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
