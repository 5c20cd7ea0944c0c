"""What the pages show, computed from the core's own objects (no HTTP here).

Every function takes what the API already produced (a deployment's metadata,
a :class:`~tsengine.deployment.Prediction`, the backtest trace) and returns
plain JSON-able data the templates and ``app.js`` draw.  Chart data is built
column-wise with polars (one ``group_by`` per chart, never a loop over rows),
so a 1,000-series forecast is charted in milliseconds.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import polars as pl

from tsengine.contract import Facts, facts
from tsengine.deployment import Deployment, Prediction
from tsengine.features import FP
from tsengine.humility import rules_from_metadata
from tsengine.validate import IDX, SID, Y

__all__ = [
    "HISTORY_POINTS",
    "DeploymentRow",
    "backtest_chart",
    "deployment_row",
    "distance_errors",
    "forecast_chart",
    "humility_rows",
    "leaderboard_rows",
    "prediction_table",
]

HISTORY_POINTS = 4
"""History shown before a forecast: this many forecast windows (at least the FDW, at most 400 steps)."""
_MAX_HISTORY = 400


@dataclass(frozen=True, slots=True)
class DeploymentRow:
    """One line of the deployments list, read from metadata only (no model is loaded)."""

    id: str
    kind: str
    model: str
    target: str
    series: int | None
    created: str
    step: str
    windows: str
    last_prediction: str
    error: str = ""


def deployment_row(deployment_id: str, meta: dict[str, Any], last: dt.datetime | None) -> DeploymentRow:
    """The list's facts about one stored deployment document."""
    known = facts(meta.get("metadata") or {})
    spec = meta.get("spec") or {}
    kind = str(meta.get("kind", "timeseries"))
    if kind == "timeseries":
        fdw, fw = spec.get("feature_derivation_window") or [], spec.get("forecast_window") or []
        windows = f"FDW [{fdw[0]}, {fdw[1]}] · FW [{fw[0]}, {fw[1]}]" if fdw and fw else ""
        step = known.training.time_step if known.training else ""
        target = str(spec.get("target", ""))
    else:
        windows, step = "", ""
        target = f"{meta.get('target', '')} ({meta.get('task', '')})"
    return DeploymentRow(
        id=deployment_id,
        kind=kind,
        model=known.model_kind or str(meta.get("model_kind") or "lightgbm"),
        target=target,
        series=known.training.series if known.training else None,
        created=known.created_at.replace("T", " ").replace("+00:00", " UTC"),
        step=step,
        windows=windows,
        last_prediction=last.strftime("%Y-%m-%d %H:%M:%S UTC") if last else "never",
    )


def leaderboard_rows(known: Facts) -> list[dict[str, Any]]:
    """The backtest leaderboard, best first, with the deployed model flagged."""
    chosen = known.selection.model if known.selection else None
    return [
        {
            "rank": rank,
            "model": entry.model,
            "mase": entry.mase,
            "smape": entry.smape,
            "rmse": entry.rmse,
            "n": entry.n,
            "chosen": entry.model == chosen,
        }
        for rank, entry in enumerate(known.leaderboard, 1)
    ]


def distance_errors(known: Facts) -> dict[str, Any]:
    """Backtest MASE by forecast distance for each model: one line per model on one chart."""
    distances = sorted({d.distance for entry in known.leaderboard for d in entry.by_distance})
    lines = []
    for entry in known.leaderboard:
        by = {d.distance: d.mase for d in entry.by_distance}
        lines.append({"label": entry.model, "values": [by.get(d) for d in distances]})
    chosen = known.selection.model if known.selection else None
    return {"x": distances, "lines": lines, "chosen": chosen, "metric": "MASE"}


def humility_rows(metadata: dict[str, Any]) -> list[dict[str, Any]]:
    """The deployment's humility rules as the page lists them."""
    return [rule.to_dict() for rule in rules_from_metadata(metadata)]


def _epoch(expr: pl.Expr) -> pl.Expr:
    """Seconds since 1970 (uPlot's time axis); whole seconds unless the grid is finer."""
    ms = expr.dt.epoch("ms")
    return pl.when(ms % 1000 == 0).then(ms // 1000).otherwise(ms / 1000.0).cast(pl.Float64)


def _short(expr: pl.Expr) -> pl.Expr:
    """Six significant digits: plenty for a chart, half the JSON (the CSV keeps full precision)."""
    return expr.cast(pl.Float64).round_sig_figs(6)


def _labels(expr: pl.Expr, fmt: str | None) -> pl.Expr:
    """Timestamps as the deployment's users wrote them (its training format), else ISO."""
    return expr.dt.strftime(fmt or "%Y-%m-%dT%H:%M:%S")


def backtest_chart(trace: pl.DataFrame, datetime_format: str | None) -> dict[str, Any]:
    """Per series: the actuals over the backtest span and one forecast line per origin."""
    if trace.height == 0:
        return {"series": [], "origins": []}
    origins = trace.get_column("forecastPoint").unique().sort()
    order = pl.DataFrame({"forecastPoint": origins, "o": pl.int_range(origins.len(), eager=True)})
    trace = trace.with_columns(_epoch(pl.col("timestamp")).alias("x")).join(order, on="forecastPoint")
    actuals = (
        trace.unique(["seriesId", "x"], keep="first")
        .sort("seriesId", "x")
        .group_by("seriesId", maintain_order=True)
        .agg(pl.col("x").alias("ax"), _short(pl.col("actual")).alias("ay"))
    )
    forecasts = (
        trace.sort("seriesId", "o", "x")
        .group_by("seriesId", maintain_order=True)
        .agg(pl.col("o"), pl.col("x").alias("fx"), _short(pl.col("prediction")).alias("fy"))
    )
    series = actuals.join(forecasts, on="seriesId", how="left").rename({"seriesId": "id"})
    labels = pl.select(_labels(pl.lit(origins), datetime_format)).to_series().to_list()
    return {"series": series.to_dicts(), "origins": labels}


def _explanation_text(frame: pl.DataFrame) -> pl.Expr | None:
    """``feature (+0.12); other (−0.03)`` per row from the EXPLANATION_<n>_* columns."""
    n = 1
    parts: list[pl.Expr] = []
    while f"EXPLANATION_{n}_FEATURE_NAME" in frame.columns:
        name, strength = pl.col(f"EXPLANATION_{n}_FEATURE_NAME"), pl.col(f"EXPLANATION_{n}_STRENGTH")
        parts.append(
            pl.when(name.is_not_null()).then(
                pl.format("{} ({})", name, strength.round_sig_figs(3).cast(pl.String))
            )
        )
        n += 1
    if not parts:
        return None
    return pl.concat_str(parts, separator="; ", ignore_nulls=True)


def _event_columns(frame: pl.DataFrame, names: tuple[str, ...]) -> list[str]:
    """KIA columns that mark events: flags (0/1 or booleans), not levels such as prices."""
    events = []
    for name in names:
        if name not in frame.columns:
            continue
        column = frame.get_column(name)
        if column.dtype == pl.Boolean:
            events.append(name)
        elif column.dtype.is_numeric():
            values = column.drop_nulls().cast(pl.Float64).drop_nans()
            if values.len() and ((values == 0) | (values == 1)).all() and (values == 1).any():
                events.append(name)
    return events


def _events(frame: pl.DataFrame, columns: list[str], x: pl.Expr) -> pl.DataFrame:
    """Per series: where any event column is on, and which."""
    if not columns:
        return pl.DataFrame(schema={SID: pl.String, "ex": pl.List(pl.Float64), "et": pl.List(pl.String)})
    on = [pl.when(pl.col(c).cast(pl.Float64) == 1).then(pl.lit(c)) for c in columns]
    return (
        frame.select(
            pl.col(SID), x.alias("ex"), pl.concat_str(on, separator=", ", ignore_nulls=True).alias("et")
        )
        .filter(pl.col("et").is_not_null() & (pl.col("et") != ""))
        .unique([SID, "ex"], keep="first")
        .sort(SID, "ex")
        .group_by(SID, maintain_order=True)
        .agg("ex", "et")
    )


def forecast_chart(deployment: Deployment, prediction: Prediction) -> dict[str, Any]:
    """Per series: recent history, the forecast rows with their band, and KIA events.

    The rows are the prediction's own (same timestamps, distances and values as
    the API's answer); the history is the window the model read.
    """
    out = prediction.frame
    window = prediction.window
    spec = deployment.spec
    step = spec.time_step
    fmt = spec.datetime_format
    key = pl.col("seriesId").cast(pl.String).fill_null("")
    intervals = "predictionIntervalLow" in out.columns
    explained = _explanation_text(out)
    rows = (
        out.select(
            key.alias(SID),
            _epoch(pl.col("timestamp")).alias("x"),
            pl.col("forecastDistance").alias("d"),
            _short(pl.col("prediction")).alias("p"),
            *(
                [
                    _short(pl.col("predictionIntervalLow")).alias("lo"),
                    _short(pl.col("predictionIntervalHigh")).alias("hi"),
                ]
                if intervals
                else []
            ),
            pl.col("originalFormatTimestamp").alias("ts"),
            _labels(pl.col("forecastPoint"), fmt).alias("fp"),
            *([explained.alias("xp")] if explained is not None else []),
        )
        .group_by(SID, maintain_order=True)
        .all()
    )
    chart = rows
    points = min(_MAX_HISTORY, max(spec.fdw, HISTORY_POINTS * len(spec.distances)))
    if window is not None and window.query.height:
        bounds = window.query.group_by(SID).agg(
            (pl.col(FP).min() - points).alias("__lo"), pl.col(IDX).max().alias("__hi")
        )
        history = (
            window.history.join(bounds, on=SID, how="inner")
            .filter(
                (pl.col(IDX) > pl.col("__lo")) & (pl.col(IDX) <= pl.col("__hi")) & pl.col(Y).is_not_null()
            )
            .filter(pl.col(IDX) <= pl.col(IDX).max().over(SID))
        )
        # history rows beyond the forecast point are actuals too (historical mode): keep them
        stamp = step.from_index(pl.col(IDX))
        recent = (
            history.sort(SID, IDX)
            .group_by(SID, maintain_order=True)
            .agg(
                _epoch(stamp).alias("hx"),
                _short(pl.col(Y)).alias("hy"),
                _labels(stamp, fmt).alias("hl"),
            )
        )
        chart = chart.join(recent.with_columns(pl.col(SID).cast(pl.String)), on=SID, how="left")
        kia = [c for c in spec.known_in_advance if c in window.query.columns]
        marks = pl.concat(
            [
                window.query.select(SID, IDX, *kia),
                history.select(SID, IDX, *[c for c in kia if c in history.columns]),
            ],
            how="diagonal_relaxed",
        )
        events = _event_columns(marks, tuple(kia))
        if events:
            found = _events(marks, events, _epoch(step.from_index(pl.col(IDX))))
            chart = chart.join(found.with_columns(pl.col(SID).cast(pl.String)), on=SID, how="left")
    return {
        "series": chart.rename({SID: "id"}).to_dicts(),
        "intervals": intervals,
        "percentile": prediction.interval_percentile,
        "historical": bool(
            out.height and out.get_column("forecastPoint").n_unique() > out.get_column("seriesId").n_unique()
        ),
        "target": spec.target,
        "explanations": explained is not None,
    }


def prediction_table(frame: pl.DataFrame, limit: int = 500) -> tuple[list[str], list[list[Any]]]:
    """Tabular predictions for the page: columns and the first ``limit`` rows (the CSV has all)."""
    shown = frame.head(limit)
    return shown.columns, [list(row) for row in shown.iter_rows()]
