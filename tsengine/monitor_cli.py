"""``tsengine monitor``: monitoring settings, actuals upload and the health report from the shell.

The commands open the same store as ``tsengine serve`` (``<registry>/.monitoring``,
or ``$TSENGINE_MONITORING_URL``), so actuals uploaded here score the
predictions a server logged, and the report reads what the server recorded::

    tsengine monitor settings flights --association-id id
    tsengine monitor actuals flights actuals.csv --series-column series --timestamp-column date
    tsengine monitor flights --since 2024-01-01 --plot health.png
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich import box
from rich.table import Table

from tsengine.cli_common import RegistryOpt, default_command_group, err, fail, out, run
from tsengine.datetimes import parse_timestamp
from tsengine.io import read_table
from tsengine.monitoring.actuals import actual_records, submit_records
from tsengine.monitoring.service import Monitor
from tsengine.monitoring.store import MonitoringStore
from tsengine.registry import Registry

__all__ = ["monitor_app"]

_PSI_AMBER = 0.1
_PSI_RED = 0.25


monitor_app = typer.Typer(
    cls=default_command_group("report"),
    help="Deployment monitoring: tsengine monitor DEPLOYMENT [--since …] [--plot out.png], or settings|actuals.",
    no_args_is_help=True,
)


@contextlib.contextmanager
def _monitor(registry: Registry) -> Iterator[Monitor]:
    """The server's monitor store; closed (its writer flushed) on the way out."""
    url = os.environ.get("TSENGINE_MONITORING_URL")
    store = MonitoringStore(url) if url else MonitoringStore.in_folder(registry.path / ".monitoring")
    monitor = Monitor(store)
    try:
        yield monitor
    finally:
        monitor.close()


def _print_json(doc: Any) -> None:
    typer.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())


def _load(registry: Registry, deployment_id: str) -> Any:
    return run(lambda: registry.load(deployment_id))


# ------------------------------------------------------------------ settings


@monitor_app.command("settings")
def settings_cmd(
    deployment_id: Annotated[str, typer.Argument(metavar="DEPLOYMENT", help="Deployment id.")],
    association_id: Annotated[
        str | None,
        typer.Option("--association-id", help="Column of prediction requests holding the association id."),
    ] = None,
    required: Annotated[
        bool | None,
        typer.Option(
            "--required/--not-required", help="Whether prediction requests must carry the association id."
        ),
    ] = None,
    target_drift: Annotated[
        bool | None, typer.Option("--target-drift/--no-target-drift", help="Track target drift.")
    ] = None,
    feature_drift: Annotated[
        bool | None, typer.Option("--feature-drift/--no-feature-drift", help="Track feature drift.")
    ] = None,
    registry: RegistryOpt = None,
) -> None:
    """Show the monitoring settings, or change them (then show the new ones), as JSON."""
    reg = Registry(registry)
    _load(reg, deployment_id)
    patch: dict[str, Any] = {}
    association: dict[str, Any] = {}
    if association_id is not None:
        association["columnNames"] = [association_id]
    if required is not None:
        association["requiredInPredictionRequests"] = required
    if association:
        patch["associationId"] = association
    if target_drift is not None:
        patch["targetDrift"] = {"enabled": target_drift}
    if feature_drift is not None:
        patch["featureDrift"] = {"enabled": feature_drift}
    with _monitor(reg) as monitor:
        doc = (
            run(lambda: monitor.update_settings(deployment_id, patch))
            if patch
            else run(lambda: monitor.settings(deployment_id))
        )
    _print_json(doc)


# ------------------------------------------------------------------- actuals


@monitor_app.command("actuals")
def actuals_cmd(
    deployment_id: Annotated[str, typer.Argument(metavar="DEPLOYMENT", help="Deployment id.")],
    data: Annotated[Path, typer.Argument(metavar="FILE", help="Actuals: CSV, JSON rows or Parquet.")],
    association_id_column: Annotated[
        str | None,
        typer.Option("--association-id-column", help="Column of association ids [default: association_id]."),
    ] = None,
    actual_value_column: Annotated[
        str, typer.Option("--actual-value-column", help="Column of actual values.")
    ] = "actual_value",
    timestamp_column: Annotated[
        str | None,
        typer.Option(
            "--timestamp-column",
            help="Column of the actuals' timestamps (time series: also builds the association ids).",
        ),
    ] = None,
    was_acted_on_column: Annotated[
        str | None, typer.Option("--was-acted-on-column", help="Column of wasActedOn flags (true/false).")
    ] = None,
    series_column: Annotated[
        str | None,
        typer.Option(
            "--series-column",
            help="Time series: the series id column; ids are built as <series>|<timestamp>.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    registry: RegistryOpt = None,
) -> None:
    """Upload actuals from a file (in batches of 10,000) and print what was stored."""
    reg = Registry(registry)
    deployment = _load(reg, deployment_id)
    frame = run(lambda: read_table(data))
    if frame.height == 0:
        fail(f"{data.name}: no rows")
    records = run(
        lambda: actual_records(
            deployment,
            frame,
            data.name,
            association_column=association_id_column,
            actual_column=actual_value_column,
            timestamp_column=timestamp_column,
            acted_column=was_acted_on_column,
            series_column=series_column,
        )
    )
    with _monitor(reg) as monitor:
        report = run(lambda: submit_records(monitor, deployment, records))
    if as_json:
        _print_json(report)
        return
    table = Table(box=box.SIMPLE, show_header=False)
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    for label, key in (
        ("received", "received"),
        ("inserted", "inserted"),
        ("duplicates (first value kept)", "duplicates"),
        ("invalid", "invalid"),
        ("unknown association ids", "unknownAssociationIds"),
    ):
        table.add_row(label, f"{report[key]:,}")
    out.print(table)
    for message in report["invalidRows"]:
        out.print(f"  [yellow]invalid:[/] {message}", highlight=False, soft_wrap=True)
    if report["invalid"] > len(report["invalidRows"]):
        out.print(f"  … and {report['invalid'] - len(report['invalidRows']):,} more invalid rows")


# -------------------------------------------------------------------- report


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) >= 1e4 or abs(value) < 1e-3 else f"{value:.{digits}f}"
    return str(value)


def _status(status: str) -> str:
    colour = {"green": "green", "amber": "yellow", "red": "red"}.get(status)
    return f"[{colour}]{status}[/]" if colour else status


def _main_metric(deployment: Any) -> str:
    if deployment.kind == "timeseries" or deployment.task == "regression":
        return "RMSE"
    return "LogLoss" if deployment.task == "binary" else "Accuracy"


def _report(
    monitor: Monitor, deployment: Any, start: dt.datetime | None, end: dt.datetime | None
) -> dict[str, Any]:
    start, end = monitor.period(start, end)
    return {
        "deploymentId": deployment.id,
        "period": {"start": start.isoformat() + "Z", "end": end.isoformat() + "Z"},
        "accuracy": monitor.accuracy(deployment, start, end),
        "featureDrift": monitor.feature_drift(deployment, start, end),
        "targetDrift": monitor.target_drift(deployment, start, end),
        "serviceStats": monitor.service_stats(deployment, start, end),
    }


def _print_report(doc: dict[str, Any]) -> None:
    period = doc["period"]
    out.print(f"[bold]{doc['deploymentId']}[/]  {period['start']} → {period['end']}", highlight=False)

    accuracy = doc["accuracy"]
    table = Table(title=f"Accuracy (sample size {accuracy['sampleSize']:,})", box=box.SIMPLE_HEAD)
    for name in ("metric", "value", "baseline", "% change"):
        table.add_column(name, justify="left" if name == "metric" else "right")
    for name, entry in accuracy["metrics"].items():
        value = entry["value"]
        if name.startswith("Coverage") and value is not None:  # Coverage<p>: a further percentile
            base = entry["baselineValue"]
            table.add_row(name, f"{100 * value:.1f}%", "–" if base is None else f"{100 * base:.1f}%", "–")
            continue
        change = entry["percentChange"]
        table.add_row(
            name,
            _fmt(value),
            _fmt(entry["baselineValue"]),
            "–" if change is None else f"{change:+.1f}%",
        )
    out.print(table)

    drift = doc["featureDrift"]
    table = Table(title="Feature drift (PSI)", box=box.SIMPLE_HEAD)
    for name in ("feature", "PSI", "status", "sample", "baseline sample", "impact"):
        table.add_column(name, justify="left" if name in {"feature", "status"} else "right")
    for row in drift["data"]:
        table.add_row(
            str(row["name"]),
            _fmt(row.get("driftScore")),
            _status(str(row.get("status"))),
            f"{row.get('sampleSize', 0):,}",
            f"{row.get('baselineSampleSize', 0):,}",
            _fmt(row.get("featureImpact"), 3),
        )
    target = doc["targetDrift"]
    table.add_row(
        f"[bold]{target['targetName']}[/] (target)",
        _fmt(target.get("driftScore")),
        _status(str(target.get("status"))),
        f"{target.get('sampleSize') or 0:,}",
        f"{target.get('baselineSampleSize') or 0:,}",
        "–",
    )
    out.print(table)
    if not drift["data"]:
        out.print("  no feature samples logged in this period", style="dim")

    stats = doc["serviceStats"]
    metrics, latency, log = stats["metrics"], stats["latencyMs"], stats["monitoringLog"]
    table = Table(title="Service health", box=box.SIMPLE, show_header=False)
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    table.add_row("requests", f"{metrics['totalRequests']:,}")
    table.add_row("predictions", f"{metrics['totalPredictions']:,}")
    table.add_row("latency p50 / p99 (ms)", f"{_fmt(latency['p50'], 1)} / {_fmt(latency['p99'], 1)}")
    table.add_row("slow requests (> 1 s)", f"{metrics['slowRequests']:,}")
    table.add_row(
        "user / server error rate", f"{metrics['userErrorRate']:.2%} / {metrics['serverErrorRate']:.2%}"
    )
    table.add_row("cache hit ratio", f"{metrics['cacheHitRatio']:.2%}")
    table.add_row("log events dropped / failed", f"{log['dropped']:,} / {log['failed']:,}")
    out.print(table)


def _plot(monitor: Monitor, deployment: Any, doc: dict[str, Any], path: Path) -> None:
    """Three panels: the main metric over time, predicted vs actual, PSI per feature."""
    try:
        import matplotlib as mpl
    except ImportError:
        fail("--plot needs matplotlib: pip install matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    start = parse_timestamp(doc["period"]["start"], name="start")
    end = parse_timestamp(doc["period"]["end"], name="end")
    metric = _main_metric(deployment)
    over_time = monitor.accuracy_over_time(deployment, start, end, metric=metric)
    joined = monitor.store.joined(
        deployment.id,
        start=start.replace(tzinfo=dt.UTC).timestamp(),
        end=end.replace(tzinfo=dt.UTC).timestamp(),
    )
    fig, (ax_time, ax_scatter, ax_psi) = plt.subplots(1, 3, figsize=(16, 4.8))
    try:
        points = [
            (parse_timestamp(b["period"]["start"], name="bucket"), b["value"])
            for b in over_time["buckets"]
            if b["value"] is not None
        ]
        if points:
            ax_time.plot([p[0] for p in points], [p[1] for p in points], marker="o")
        else:
            ax_time.text(0.5, 0.5, "no actuals yet", ha="center", va="center", transform=ax_time.transAxes)
        ax_time.set_title(f"{metric} over time")
        ax_time.set_ylabel(metric)
        ax_time.tick_params(axis="x", labelrotation=30)

        pairs = joined.select("prediction", "actual").drop_nulls()
        if pairs.height:
            predicted = pairs.get_column("prediction").to_numpy()
            actual = pairs.get_column("actual").to_numpy()
            ax_scatter.scatter(actual, predicted, s=12, alpha=0.6)
            lo = float(min(predicted.min(), actual.min()))
            hi = float(max(predicted.max(), actual.max()))
            ax_scatter.plot([lo, hi], [lo, hi], color="grey", linestyle="--", linewidth=1)
        else:
            ax_scatter.text(
                0.5, 0.5, "no actuals yet", ha="center", va="center", transform=ax_scatter.transAxes
            )
        ax_scatter.set_title("Predicted vs actual")
        ax_scatter.set_xlabel("actual")
        ax_scatter.set_ylabel("predicted")

        rows = [r for r in doc["featureDrift"]["data"] if r.get("driftScore") is not None]
        if rows:
            colours = {"green": "tab:green", "amber": "tab:orange", "red": "tab:red"}
            ax_psi.bar(
                [str(r["name"]) for r in rows],
                [float(r["driftScore"]) for r in rows],
                color=[colours.get(str(r.get("status")), "tab:blue") for r in rows],
            )
            ax_psi.tick_params(axis="x", labelrotation=45)
        else:
            ax_psi.text(0.5, 0.5, "no feature samples", ha="center", va="center", transform=ax_psi.transAxes)
        ax_psi.axhline(_PSI_AMBER, color="tab:orange", linestyle="--", linewidth=1, label="0.1")
        ax_psi.axhline(_PSI_RED, color="tab:red", linestyle="--", linewidth=1, label="0.25")
        ax_psi.legend(loc="upper right")
        ax_psi.set_title("Feature drift (PSI)")
        fig.suptitle(f"{deployment.id}: {doc['period']['start']} → {doc['period']['end']}")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)


@monitor_app.command("report", hidden=True)
def report_cmd(
    deployment_id: Annotated[str, typer.Argument(metavar="DEPLOYMENT", help="Deployment id.")],
    since: Annotated[
        str | None,
        typer.Option("--since", help="Period start, ISO 8601 UTC (default: 7 days before --until)."),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Period end, ISO 8601 UTC (default: the next full hour).")
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Also draw accuracy, predicted vs actual and drift to a PNG."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the whole report as one JSON object.")
    ] = False,
    registry: RegistryOpt = None,
) -> None:
    """Accuracy, drift and service health of a deployment over a period."""
    reg = Registry(registry)
    deployment = _load(reg, deployment_id)
    start = None if since is None else run(lambda: parse_timestamp(since, name="--since"))
    end = None if until is None else run(lambda: parse_timestamp(until, name="--until"))
    with _monitor(reg) as monitor:
        doc = run(lambda: _report(monitor, deployment, start, end))
        if plot is not None:
            run(lambda: _plot(monitor, deployment, doc, plot))
    if as_json:
        _print_json(doc)
    else:
        _print_report(doc)
    if plot is not None:
        err.print(f"plot written to {plot}", highlight=False)
