"""What time series and tabular rendering share: passthrough, explanations, humility, JSON and CSV pieces.

Explanations and humility reports render the same for both kinds of
deployment, so their expressions live here.  An explanation's
``featureValue`` is a number for numeric features and a string for
categories; a polars list cannot mix types, so each explanation object is
encoded to JSON text by polars (one struct per value kind) and spliced into
the row's JSON text: still no Python loop over rows.

This module imports neither :mod:`tsengine.render.timeseries` nor
:mod:`tsengine.render.tabular`; both import it.
"""

from __future__ import annotations

import io
from typing import Any, Protocol

import polars as pl

from tsengine.errors import BadRequestError, short_list
from tsengine.explain import LABEL, explanation_columns
from tsengine.humility import HUMILITY, rules_from_metadata
from tsengine.intervals import INTERVAL_LOW, interval_columns
from tsengine.options import PredictOptions

__all__ = [
    "APPROVAL_STATUS",
    "EXPLANATIONS",
    "Renderable",
    "Result",
    "csv_pieces",
    "explanation_csv",
    "explanations_json",
    "humility_csv",
    "joined",
    "json_body",
    "passthrough_frame",
]

APPROVAL_STATUS = "APPROVED"
EXPLANATIONS = "predictionExplanations"


class Renderable(Protocol):
    """What the renderers read of a deployment: its kind and (time series) its spec."""

    @property
    def kind(self) -> str:
        """``"timeseries"`` or ``"tabular"``."""
        ...

    @property
    def spec(self) -> Any:
        """A time series deployment's :class:`~tsengine.spec.TimeSeriesSpec`."""
        ...


class Result(Protocol):
    """What the renderers read of a prediction: its rows and its interval percentile."""

    @property
    def frame(self) -> pl.DataFrame:
        """The prediction rows."""
        ...

    @property
    def interval_percentile(self) -> int | None:
        """The prediction interval's percentile, or None without intervals."""
        ...


def interval_sets(result: Result) -> list[tuple[int, str, str]]:
    """``(percentile, low column, high column)`` of each interval in the result, by percentile.

    The deployment's own interval is ``predictionIntervalLow``/``High``; one
    trained at several percentiles adds ``predictionIntervalLow_<p>``/``High_<p>``.
    """
    own = result.interval_percentile
    if own is None:
        return []
    prefix = f"{INTERVAL_LOW}_"
    others = [
        int(p) for name in result.frame.columns if (p := name.removeprefix(prefix)) != name and p.isdigit()
    ]
    return sorted(
        [(own, *interval_columns(own, own=True)), *((p, *interval_columns(p, own=False)) for p in others)]
    )


def passthrough_frame(frame: pl.DataFrame, options: PredictOptions) -> pl.DataFrame | None:
    """Input columns to copy into the output, one row per input row.

    Raises:
        BadRequestError: a requested column is not in the input (DataRobot: 400).
    """
    if options.passthrough_all:
        return frame
    if not options.passthrough_columns:
        return None
    missing = [c for c in options.passthrough_columns if c not in frame.columns]
    if missing:
        msg = (
            f"passthroughColumns {short_list(missing)} not found in the prediction dataset; "
            f"its columns are {short_list(frame.columns, limit=10)}"
        )
        raise BadRequestError(msg)
    return frame.select(list(dict.fromkeys(options.passthrough_columns)))


def joined(parts: list[bytes]) -> bytes:
    """Pieces of an answer as one bytes object (the piece itself when there is one)."""
    return parts[0] if len(parts) == 1 else b"".join(parts)


def csv_pieces(table: pl.DataFrame, chunk_rows: int) -> list[bytes]:
    """``table`` as CSV in pieces of at most ``chunk_rows`` rows; the header opens the first.

    Joined, the pieces are ``table.write_csv()``'s bytes; an empty table is
    one piece, the header.
    """
    parts = []
    for start in range(0, max(table.height, 1), chunk_rows):
        sink = io.BytesIO()
        table.slice(start, chunk_rows).write_csv(sink, include_header=start == 0)
        parts.append(sink.getvalue())  # the buffer itself, not a copy
    return parts


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
    body = rows.select(text.str.join(",")).item() if rows.height else ""
    return b'{"data":[' + str(body).encode() + b"]}"
