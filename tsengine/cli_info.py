"""``tsengine list`` and ``tsengine info``: what the registry holds, for people.

The lines that explain a deployment's intervals and target transforms live here
too, since ``info`` is where they are read.
"""

from __future__ import annotations

import math
import sys
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from tsengine.cli_common import RegistryOpt, err, out, run
from tsengine.errors import TsEngineError
from tsengine.registry import Registry

__all__ = ["info_cmd", "interval_line", "list_cmd", "transform_lines"]


def list_cmd(registry: RegistryOpt = None) -> None:
    """List stored deployments."""
    reg = Registry(registry)
    ids = reg.list()
    if not ids:
        err.print(f"no deployments in {reg.path}")
        return
    table = Table("id", "kind", "model", "target", "step", "created")
    for deployment_id in ids:
        try:
            info = reg.load(deployment_id).info()
        except TsEngineError as exc:
            table.add_row(deployment_id, "?", f"[red]{exc.message}[/]", "", "", "")
            continue
        table.add_row(
            deployment_id,
            info["kind"],
            str(info.get("model_kind", "")),
            str(info.get("target", "")),
            str(info.get("time_step", "")),
            str(info.get("created_at", "")),
        )
    out.print(table)


def info_cmd(
    deployment_id: Annotated[str, typer.Argument(metavar="ID")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the full JSON summary.")] = False,
    registry: RegistryOpt = None,
) -> None:
    """Show a deployment's spec, model and backtest leaderboard."""
    info = run(lambda: Registry(registry).load(deployment_id).info())
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(info, option=orjson.OPT_INDENT_2) + b"\n")
        return
    for key in (
        "id",
        "kind",
        "model_kind",
        "model_id",
        "target",
        "datetime_column",
        "series_id_column",
        "time_step",
        "feature_derivation_window",
        "forecast_window",
        "known_in_advance",
        "known_in_advance_blank",
        "features",
        "calendar",
        "datetime_format",
        "min_history",
        "interval_percentile",
        "created_at",
    ):
        if key in info:
            out.print(f"[bold]{key}[/]: {info[key]}", highlight=False)
    training = info.get("training", {})
    if training:
        out.print(f"[bold]training[/]: {training}", highlight=False)
    board = info.get("leaderboard") or []
    if board:
        events = "mase_events" in board[0]  # a calendar: MASE weighted, and on events / other periods
        heads = ("MASE (weighted)", "on events", "ordinary") if events else ("MASE",)
        table = Table("rank", "model", *heads, "sMAPE", "RMSE", "n", title="backtest leaderboard")
        for k, row in enumerate(board, 1):
            split = [_metric(row["mase_events"], 4), _metric(row["mase_ordinary"], 4)] if events else []
            table.add_row(
                str(k),
                row["model"],
                _metric(row["mase"], 4),
                *split,
                _metric(row["smape"], 2),
                _metric(row["rmse"], 4),
                str(row["n"]),
            )
        out.print(table)
    selection = info.get("selection") or {}
    if selection:
        out.print(
            f"[bold]selected[/]: {selection.get('model')} — {selection.get('reason', '')}", highlight=False
        )
    if line := interval_line(info):
        out.print(f"[bold]intervals[/]: {line}", highlight=False)
    for line in transform_lines(info.get("model") or {}):
        out.print(f"[bold]target transform[/] {line}", highlight=False)
    picks = (info.get("model") or {}).get("series_picks")
    if picks:
        counts = ", ".join(f"{kind} {n}" for kind, n in picks.items())
        out.print(f"[bold]per-series picks[/] (other series use the ensemble): {counts}", highlight=False)


def transform_lines(model: dict[str, Any]) -> list[str]:
    """Each LightGBM model in the deployed model (alone or as a member): its target transform.

    With the validation errors behind the choice where there was one, so a
    user can see why the level model predicts the log, or not.
    """
    lines = []
    for m in (model, *model.get("members", [])):
        if "transform" not in m:
            continue
        errors = ", ".join(f"{t} {mae:.4g}" for t, mae in (m.get("validation_mae") or {}).items())
        lines.append(f"{m['kind']}: {m['transform']}" + (f" (validation MAE: {errors})" if errors else ""))
    return lines


def interval_line(info: dict[str, Any]) -> str:
    """How the deployment's intervals are made and how they did on backtest origins they never saw."""
    desc = info.get("intervals")
    if not desc:
        return ""
    note = (info.get("training") or {}).get("intervals_note")
    parts = [f"{desc['percentile']} % " + (note or "conformal, from backtest residuals per distance")]
    if desc.get("series_factors"):
        used = "used" if desc["series_factors_used"] else "not used: they did not pass the check"
        parts.append(f"per-series width factors for {desc['series_factors']} series ({used})")
    check = desc.get("check")
    if check and check.get("coverage") is not None and math.isfinite(check["coverage"]):
        parts.append(
            f"held-out check: {check['coverage']:.1f} % of actuals covered on the last "
            f"{check['origins']} backtest origin(s), each by intervals fitted on the origins before it"
        )
    more = [
        f"{d['percentile']} %"
        + (f" (held-out check {cov:.1f} %)" if cov is not None and math.isfinite(cov) else "")
        for d in info.get("more_intervals") or ()
        for cov in [(d.get("check") or {}).get("coverage")]
    ]
    if more:
        parts.append("also served at " + ", ".join(more))
    return "; ".join(parts)


def _metric(value: float | None, digits: int) -> str:
    """A leaderboard number; a model without backtest (NaN, stored as null) shows a dash."""
    return f"{value:.{digits}f}" if value is not None and math.isfinite(value) else "–"
