"""The ``tsengine`` command: train, predict, list, info, demo, serve.

A thin translation of flags into core calls; errors from the core print their
message to stderr and exit with status 2 (bad input), as the issue asks.
"""

from __future__ import annotations

import contextlib
import math
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from tsengine.batch_cli import batch_app, datasets_app
from tsengine.cli_common import EXIT_BAD_INPUT, RegistryOpt, err, out, run
from tsengine.cli_info import info_cmd, list_cmd, transform_lines
from tsengine.contract import facts
from tsengine.datetimes import parse_timestamp
from tsengine.distributed import connect
from tsengine.errors import ParameterError
from tsengine.humility_cli import humility_app
from tsengine.intervals import DEFAULT_PERCENTILE
from tsengine.io import read_table
from tsengine.models import MODELS
from tsengine.monitor_cli import monitor_app
from tsengine.options import PredictOptions
from tsengine.registry import Registry
from tsengine.render import to_csv, to_json
from tsengine.train import DEFAULT_MODELS

__all__ = ["DEMO_ID", "app", "main", "transform_lines"]

DEMO_ID = "demo"
DEMO_DATA = Path(__file__).parent / "data" / "flights_daily.csv"

app = typer.Typer(
    name="tsengine",
    help="Train forecasting deployments and forecast fresh history, DataRobot predApi-compatible.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(humility_app, name="humility")
app.add_typer(batch_app, name="batch")
app.add_typer(datasets_app, name="datasets")
app.add_typer(monitor_app, name="monitor")
_run = run


def _train(data: Path, *, dask: str | None = None, **kwargs: Any) -> Any:
    from tsengine.train import train

    frame = read_table(data, schema_overrides=None)
    with contextlib.ExitStack() as stack:
        if dask:
            kwargs["dask"] = stack.enter_context(connect(dask))
        return _train_with_progress(train, frame, **kwargs)


def _train_with_progress(train: Any, frame: Any, **kwargs: Any) -> Any:
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("training", total=None)
        return train(frame, progress=lambda msg: bar.update(task, description=msg), **kwargs)


def _train_tabular(
    data: Path,
    *,
    name: str,
    target: str,
    task: str,
    datetime: str | None,
    seed: int,
    threshold: float | None,
    positive_class: str | None,
    image_columns: list[str] | None = None,
    image_featurizer: str = "auto",
) -> Any:
    from tsengine.tabular.train import train_tabular  # type: ignore[import-not-found,unused-ignore]

    if task != "binary" and (threshold is not None or positive_class is not None):
        msg = f"--threshold and --positive-class apply to --task binary only, not {task!r}"
        raise ParameterError(msg)
    frame = read_table(data)
    return train_tabular(
        frame,
        target=target,
        task=task,
        deployment_id=name,
        datetime_column=datetime,
        seed=seed,
        threshold=0.5 if threshold is None else threshold,
        positive_class=positive_class,
        image_columns=image_columns or (),
        image_featurizer=image_featurizer,
    )


@app.command("train")
def train_cmd(
    data: Annotated[Path, typer.Argument(help="Training data: CSV, JSON rows or Parquet.")],
    name: Annotated[str, typer.Option("--name", help="Deployment id.")],
    target: Annotated[str, typer.Option("--target", help="Target column.")],
    datetime: Annotated[
        str | None, typer.Option("--datetime", help="Datetime column (required for time series).")
    ] = None,
    series_id: Annotated[
        str | None, typer.Option("--series-id", help="Series id column (multiseries).")
    ] = None,
    known_in_advance: Annotated[
        list[str] | None,
        typer.Option("--known-in-advance", help="Known-in-advance feature (repeatable)."),
    ] = None,
    feature: Annotated[
        list[str] | None,
        typer.Option("--feature", help="Other feature, used as of the forecast point (repeatable)."),
    ] = None,
    forecast_window: Annotated[
        tuple[int, int] | None,
        typer.Option(
            "--forecast-window",
            help="Forecast distances START END (e.g. 1 28; START 0 nowcasts the forecast point's own row).",
        ),
    ] = None,
    feature_derivation_window: Annotated[
        int | None,
        typer.Option("--feature-derivation-window", help="History steps N features may use ([-N, 0])."),
    ] = None,
    models: Annotated[
        list[str] | None,
        typer.Option(
            "--models",
            help=(
                f"Candidate models (repeatable or comma-separated): {', '.join(DEFAULT_MODELS)} "
                f"(the default set), or also {', '.join(sorted(set(MODELS) - set(DEFAULT_MODELS)))}."
            ),
        ),
    ] = None,
    interval_percentile: Annotated[
        list[str] | None,
        typer.Option(
            "--interval-percentile",
            help=(
                "Prediction interval width in % (default 80). Several (repeatable or comma-separated, "
                "e.g. 80,50,95) serve an interval at each; the first is the deployment's own."
            ),
        ),
    ] = None,
    partial_history: Annotated[
        bool, typer.Option("--allow-partial-history", help="Serve series with little history.")
    ] = False,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    calendar: Annotated[
        Path | None,
        typer.Option(
            "--calendar",
            help=(
                "Event calendar CSV: date, event name[, series id]. Events become known-in-advance "
                "features derived from the timestamps (clients never post them)."
            ),
        ),
    ] = None,
    holidays: Annotated[
        str | None,
        typer.Option(
            "--holidays",
            help=(
                "Public holidays of COUNTRY[-SUBDIV] (e.g. US, US-CA, DE-BY), or a market's "
                "(NYSE, LSE, ECB), as calendar events; holidays the training data is closed on "
                "come off the daily grid."
            ),
        ),
    ] = None,
    closures: Annotated[
        str,
        typer.Option(
            "--closures",
            help=(
                "Calendar events taken off a daily or sub-daily grid: auto (those the training "
                "data has no rows on), all (every event; rows on one are refused) or none."
            ),
        ),
    ] = "auto",
    dask: Annotated[
        str | None,
        typer.Option(
            "--dask",
            envvar="TSENGINE_DASK_SCHEDULER",
            help=(
                "Fit and backtest the candidates on a Dask cluster: tcp://HOST:8786, "
                "or local[:N] for N local worker processes."
            ),
        ),
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(
            "--task",
            help="regression, binary or multiclass: train a tabular (non-time-series) deployment.",
        ),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold", help="Binary: probability above which a row is the positive class (0.5)."
        ),
    ] = None,
    positive_class: Annotated[
        str | None,
        typer.Option("--positive-class", help="Binary: the positive label (default: the one sorting last)."),
    ] = None,
    image_column: Annotated[
        list[str] | None,
        typer.Option(
            "--image-column",
            help=(
                "Tabular: a column holding one image per row (base64 or a data URI; in a ZIP, "
                "image file names), embedded by a pretrained CNN (repeatable)."
            ),
        ),
    ] = None,
    image_featurizer: Annotated[
        str,
        typer.Option(
            "--image-featurizer",
            help=(
                "auto (try each featurizer that loads, keep the better on held-out rows), "
                "efficientnet-lite0 or classical."
            ),
        ),
    ] = "auto",
    registry: RegistryOpt = None,
) -> None:
    """Train a time series (or, with --task, tabular) deployment and store it under --name."""
    if task is not None:
        deployment = _run(
            lambda: _train_tabular(
                data,
                name=name,
                target=target,
                task=task,
                datetime=datetime,
                seed=seed,
                threshold=threshold,
                positive_class=positive_class,
                image_columns=image_column,
                image_featurizer=image_featurizer,
            )
        )
        path = _run(lambda: Registry(registry).save(deployment))
        err.print(f"trained [bold]{deployment.id}[/] ({task}) → {path}", highlight=False)
        return
    if image_column:
        err.print("[bold red]error:[/] --image-column applies to tabular deployments: pass --task")
        raise typer.Exit(EXIT_BAD_INPUT)
    if threshold is not None or positive_class is not None:
        err.print("[bold red]error:[/] --threshold and --positive-class apply to --task binary only")
        raise typer.Exit(EXIT_BAD_INPUT)
    if datetime is None:
        err.print("[bold red]error:[/] --datetime is required for a time series deployment (or pass --task)")
        raise typer.Exit(EXIT_BAD_INPUT)
    fdw = None if feature_derivation_window is None else (-abs(feature_derivation_window), 0)
    candidates = [m.strip() for spec in (models or []) for m in spec.split(",") if m.strip()] or None
    deployment = _run(
        lambda: _train(
            data,
            target=target,
            datetime_column=datetime,
            series_id_column=series_id,
            known_in_advance=known_in_advance or (),
            features=feature or (),
            forecast_window=forecast_window,
            feature_derivation_window=fdw,
            models=candidates,
            deployment_id=name,
            interval_percentile=_percentiles(interval_percentile),
            allow_partial_history=partial_history,
            seed=seed,
            dask=dask,
            calendar=calendar,
            holidays=holidays,
            closures=closures,
        )
    )
    path = _run(lambda: Registry(registry).save(deployment))
    board = {row["model"]: row["mase"] for row in deployment.metadata.get("leaderboard") or []}
    mase = board.get(deployment.model.kind, math.nan)
    scored = f"backtest MASE {mase:.3f}" if math.isfinite(mase) else "no backtest: too little history"
    err.print(
        f"trained [bold]{deployment.id}[/] ({deployment.model.kind}, step {deployment.spec.time_step.describe()}, "
        f"FW {list(deployment.spec.forecast_window)}, {scored}) → {path}",
        highlight=False,
    )
    summary = facts(deployment.metadata).training
    for note in summary.notes if summary else ():
        err.print(f"[yellow]note:[/] {note}", highlight=False)


def _percentiles(given: list[str] | None) -> list[int]:
    """``--interval-percentile`` values (repeated or comma-separated) as integers; the default alone if none."""
    parts = [p.strip() for value in given or () for p in value.split(",") if p.strip()]
    bad = [p for p in parts if not p.isdigit()]
    if bad:
        err.print(
            f"[bold red]error:[/] --interval-percentile takes whole numbers between 1 and 99, got {bad[0]!r}"
        )
        raise typer.Exit(EXIT_BAD_INPUT)
    return [int(p) for p in parts] or [DEFAULT_PERCENTILE]


@app.command("predict")
def predict_cmd(
    deployment_id: Annotated[str, typer.Argument(metavar="ID", help="Deployment id.")],
    data: Annotated[
        Path, typer.Argument(help="History (and optional forecast rows): CSV, JSON rows or Parquet.")
    ],
    forecast_point: Annotated[
        str | None, typer.Option("--forecast-point", help="Forecast point (forecast mode).")
    ] = None,
    start: Annotated[
        str | None, typer.Option("--start", help="Historical mode: first timestamp (inclusive).")
    ] = None,
    end: Annotated[str | None, typer.Option("--end", help="Historical mode: end (exclusive).")] = None,
    relax_known_in_advance: Annotated[
        bool,
        typer.Option("--relax-known-in-advance", help="Impute missing known-in-advance values."),
    ] = False,
    fmt: Annotated[str, typer.Option("--format", help="csv or json.")] = "csv",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    passthrough: Annotated[
        list[str] | None,
        typer.Option("--passthrough", help="Input column to copy into the output (repeatable)."),
    ] = None,
    passthrough_all: Annotated[
        bool, typer.Option("--passthrough-all", help="Copy every input column (passthroughColumnsSet=all).")
    ] = False,
    max_explanations: Annotated[
        int, typer.Option("--max-explanations", help="Prediction explanations per row (0: none).")
    ] = 0,
    threshold_low: Annotated[
        float | None, typer.Option("--threshold-low", help="Explain only predictions below this …")
    ] = None,
    threshold_high: Annotated[float | None, typer.Option("--threshold-high", help="… or above this.")] = None,
    registry: RegistryOpt = None,
) -> None:
    """Forecast (or score) with a stored deployment; writes DataRobot's CSV or JSON shape."""
    if fmt not in {"csv", "json"}:
        err.print(f"[bold red]error:[/] --format must be csv or json, got {fmt!r}")
        raise typer.Exit(EXIT_BAD_INPUT)

    def run() -> bytes:
        deployment = Registry(registry).load(deployment_id)
        frame = read_table(data, schema_overrides=deployment.input_schema_overrides())
        options = PredictOptions(
            forecast_point=parse_timestamp(forecast_point, name="--forecast-point")
            if forecast_point
            else None,
            start=parse_timestamp(start, name="--start") if start else None,
            end=parse_timestamp(end, name="--end") if end else None,
            relax_known_in_advance=relax_known_in_advance,
            passthrough_columns=tuple(passthrough or ()),
            passthrough_all=passthrough_all,
            max_explanations=max_explanations,
            threshold_low=threshold_low,
            threshold_high=threshold_high,
        )
        result = deployment.predict_result(frame, options)
        for warning in result.warnings:
            err.print(f"[yellow]warning:[/] {warning}", highlight=False)
        render = to_json if fmt == "json" else to_csv
        return render(deployment, result, frame, options)

    body = _run(run)
    if output is None:
        sys.stdout.buffer.write(body if body.endswith(b"\n") else body + b"\n")
        sys.stdout.flush()
    else:
        output.write_bytes(body)
        err.print(f"wrote {output}")


app.command("list")(list_cmd)
app.command("info")(info_cmd)


def ensure_demo(registry: Path | None) -> Registry:
    """Train the demo deployment from the packaged fixture unless it exists."""
    reg = Registry(registry)
    if not reg.exists(DEMO_ID):
        err.print(
            f"training demo deployment {DEMO_ID!r} from {DEMO_DATA.name} (NYC flights 2013, 12 series)…"
        )
        deployment = _run(
            lambda: _train(
                DEMO_DATA,
                target="delayed",
                datetime_column="date",
                series_id_column="series",
                known_in_advance=("scheduled", "holiday"),
                deployment_id=DEMO_ID,
            )
        )
        reg.save(deployment)
    return reg


@app.command("demo")
def demo_cmd(
    serve: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve the registry after training.")
    ] = True,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8080,
    registry: RegistryOpt = None,
) -> None:
    """Train the demo deployment (if absent), print how to query it, and serve it."""
    reg = ensure_demo(registry)
    sample = DEMO_DATA
    out.print(
        f"demo deployment [bold]{DEMO_ID}[/] is in {reg.path}\n"
        f"  Web page: http://{host}:{port}/ (forecast chart: http://{host}:{port}/ui/deployments/{DEMO_ID}/forecast)\n"
        f"  CLI:  tsengine predict {DEMO_ID} {sample} --registry {reg.path} --relax-known-in-advance\n"
        f"  HTTP: curl -s -X POST 'http://{host}:{port}/predApi/v1.0/deployments/{DEMO_ID}/predictions"
        f"?relaxKnownInAdvanceFeaturesCheck=true' -H 'Content-Type: text/csv' --data-binary @{sample}\n"
        f"  Batch: tsengine batch {DEMO_ID} --intake {sample} --output forecasts.csv --registry {reg.path} "
        "--relax-known-in-advance\n"
        f"  Batch API: http://{host}:{port}/api/v2/batchPredictions/ (datarobot.BatchPredictionJob)\n"
        f"  Monitoring: tsengine monitor {DEMO_ID} --registry {reg.path}",
        highlight=False,
        soft_wrap=True,
    )
    if serve:
        _serve(reg.path, host=host, port=port, workers=1)


def _serve(registry: Path, *, host: str, port: int, workers: int, batch_workers: int = 1) -> None:
    try:
        from api.server import serve
    except ImportError as exc:  # the server's packages are an extra: say how to get them
        err.print(
            f"[red]error:[/] the HTTP server needs the server extra ({exc.name} is missing): "
            "pip install 'tsengine\\[server]'",
            soft_wrap=True,
        )
        raise typer.Exit(2) from exc

    serve(registry=registry, host=host, port=port, workers=workers, batch_workers=batch_workers)


@app.command("serve")
def serve_cmd(
    host: Annotated[
        str, typer.Option("--host", help="Interface to bind (default loopback only).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8080,
    workers: Annotated[int, typer.Option("--workers", help="Worker processes.")] = 1,
    batch_workers: Annotated[
        int,
        typer.Option("--batch-workers", min=1, help="Batch prediction jobs run at once per worker process."),
    ] = 1,
    registry: RegistryOpt = None,
) -> None:
    """Serve every stored deployment over DataRobot's predApi v1.0 routes."""
    _serve(Registry(registry).path, host=host, port=port, workers=workers, batch_workers=batch_workers)


# Options that take several columns.  The documented forms are repeating the flag
# or separating with commas; ``--known-in-advance a b`` (several words after one
# flag, as the usage line ``--known-in-advance COL ...`` reads) is accepted too.
_MULTI = frozenset({"--known-in-advance", "--feature", "--models", "--passthrough"})


def expand_multi_options(argv: list[str]) -> list[str]:
    """``--opt a b,c`` → ``--opt a --opt b --opt c``.

    Words after a multi-value flag are taken as its values up to the next option,
    or up to a word naming an existing file once the flag has one value (DATA).
    """
    out: list[str] = []
    flag: str | None = None
    taken = 0
    for word in argv:
        if word.startswith("-"):
            if flag is not None and taken == 0:
                out.append(flag)  # a flag without values: let the parser complain
            flag, taken = (word, 0) if word in _MULTI else (None, 0)
            if flag is None:
                out.append(word)
            continue
        if flag is not None and taken > 0 and Path(word).exists():
            flag = None
        if flag is None:
            out.append(word)
            continue
        for value in (v.strip() for v in word.split(",")):
            if value:
                out += [flag, value]
                taken += 1
    if flag is not None and taken == 0:
        out.append(flag)
    return out


def main() -> None:
    """Console-script entry point."""
    app(args=expand_multi_options(sys.argv[1:]))
