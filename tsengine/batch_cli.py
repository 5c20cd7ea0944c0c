"""``tsengine batch`` and ``tsengine datasets``: batch prediction jobs from the shell.

The commands drive the same :class:`~tsengine.batch.BatchEngine` and store as
``tsengine serve`` (``<registry>/.batch``, or ``$TSENGINE_BATCH_STORE_URL``), so
a job started here shows up in the server's ``batchPredictions/`` list and a
``tsengine batch cancel`` reaches a job running inside a server.  A job started
here runs in the foreground of this process, with a progress bar on stderr
(:mod:`tsengine.batch_foreground`); the ``--intake``/``--output`` words are
turned into adapter settings by :mod:`tsengine.batch_locations`.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich import box
from rich.console import Console
from rich.table import Column, Table

from tsengine.batch import BatchEngine, BatchStore, parse_job_spec, public_job
from tsengine.batch.catalog import add_dataset, public_dataset
from tsengine.batch.store import TERMINAL
from tsengine.batch_foreground import JobBar, new_progress, run_in_foreground
from tsengine.batch_locations import adapter_from_location, describe_location
from tsengine.cli_common import RegistryOpt, default_command_group, err, fail, out, run
from tsengine.distributed import DaskScoring, connect
from tsengine.errors import ParameterError
from tsengine.monitoring.service import Monitor
from tsengine.monitoring.store import MonitoringStore
from tsengine.registry import Registry

__all__ = ["adapter_from_location", "batch_app", "datasets_app", "parse_bytes"]

_EXIT_JOB_FAILED = 1


batch_app = typer.Typer(
    cls=default_command_group("run"),
    help="Batch prediction jobs: tsengine batch DEPLOYMENT --intake … --output …, or list|status|cancel.",
    no_args_is_help=True,
)
datasets_app = typer.Typer(help="The dataset catalog that batch jobs read with --intake dataset:ID.")


def _engine(registry: Path | None, *, monitored: bool = False) -> BatchEngine:
    """The engine over the server's store; no threads are started (nothing here needs them).

    ``monitored`` (running a job): the job feeds the same prediction log as the
    server's jobs, unless ``TSENGINE_MONITORING_ENABLED`` is false.
    """
    reg = Registry(registry)
    url = os.environ.get("TSENGINE_BATCH_STORE_URL")
    monitor = None
    if monitored and os.environ.get("TSENGINE_MONITORING_ENABLED", "true").strip().lower() not in {
        "false",
        "0",
        "no",
    }:
        monitoring_url = os.environ.get("TSENGINE_MONITORING_URL")
        store = (
            MonitoringStore(monitoring_url)
            if monitoring_url
            else MonitoringStore.in_folder(reg.path / ".monitoring")
        )
        monitor = Monitor(store)
    return BatchEngine(reg, store=BatchStore(url) if url else None, monitor=monitor)


def parse_bytes(text: str) -> int | str:
    """``--chunk-size``: bytes, with an optional K/M/G suffix, or auto/fixed/dynamic."""
    if text in {"auto", "fixed", "dynamic"}:
        return text
    match = re.fullmatch(r"\s*(\d+)\s*([kmg]?)i?b?\s*", text.lower())
    if match is None:
        msg = f"--chunk-size: expected bytes such as 5000000, 512K or 5M, got {text!r}"
        raise ParameterError(msg)
    return int(match[1]) << (10 * " kmg".index(match[2] or " "))


def _timeseries(
    forecast_point: str | None, start: str | None, end: str | None, historical: bool, relax: bool
) -> dict[str, Any] | None:
    if forecast_point and (start or end or historical):
        msg = "--forecast-point is forecast mode; --start/--end/--historical are historical mode: pick one"
        raise ParameterError(msg)
    if (start is None) != (end is None) and not historical:
        msg = "--start and --end go together (or pass --historical to predict the whole input)"
        raise ParameterError(msg)
    settings: dict[str, Any]
    if start or end or historical:
        settings = {"type": "historical", "predictionsStartDate": start, "predictionsEndDate": end}
    elif forecast_point or relax:
        settings = {"type": "forecast", "forecastPoint": forecast_point}
    else:
        return None
    settings["relaxKnownInAdvanceFeaturesCheck"] = relax
    return {k: v for k, v in settings.items() if v is not None}


# ------------------------------------------------------------------ run


@batch_app.command("run")
def run_cmd(
    deployment_id: Annotated[str, typer.Argument(metavar="DEPLOYMENT", help="Deployment id.")],
    intake: Annotated[
        str, typer.Option("--intake", help="FILE, s3://bucket/key, dataset:ID or DB-URL#table.")
    ],
    output: Annotated[
        str, typer.Option("--output", help="FILE (.csv or .parquet), s3://bucket/key or DB-URL#table.")
    ],
    forecast_point: Annotated[str | None, typer.Option("--forecast-point", help="Forecast point.")] = None,
    start: Annotated[str | None, typer.Option("--start", help="Historical: first timestamp.")] = None,
    end: Annotated[str | None, typer.Option("--end", help="Historical: end (exclusive).")] = None,
    historical: Annotated[
        bool, typer.Option("--historical", help="Historical mode over the whole input.")
    ] = False,
    relax: Annotated[
        bool, typer.Option("--relax-known-in-advance", help="Impute missing known-in-advance values.")
    ] = False,
    passthrough: Annotated[
        list[str] | None,
        typer.Option("--passthrough", help="Input column copied to the output (repeatable)."),
    ] = None,
    passthrough_all: Annotated[
        bool, typer.Option("--passthrough-all", help="Copy every input column.")
    ] = False,
    num_concurrent: Annotated[
        int | None, typer.Option("--num-concurrent", min=1, help="Chunks scored at once (default: cores).")
    ] = None,
    chunk_size: Annotated[
        str | None, typer.Option("--chunk-size", metavar="BYTES", help="Input bytes per chunk (e.g. 5M).")
    ] = None,
    max_explanations: Annotated[int, typer.Option("--max-explanations", min=0)] = 0,
    prediction_status: Annotated[
        bool, typer.Option("--include-prediction-status", help="Add a prediction_status column.")
    ] = False,
    no_abort: Annotated[
        bool, typer.Option("--no-abort-on-error", help="Report bad rows per row instead of failing the job.")
    ] = False,
    delimiter: Annotated[
        str | None, typer.Option("--delimiter", help="CSV delimiter (one character or tab).")
    ] = None,
    encoding: Annotated[str | None, typer.Option("--encoding", help="Intake CSV encoding.")] = None,
    statement_type: Annotated[
        str,
        typer.Option(
            "--statement-type", help="Database output: insert, create_table, update, insert_update."
        ),
    ] = "insert",
    where_column: Annotated[
        list[str] | None,
        typer.Option("--where-column", help="Key column for update/insert_update (repeatable)."),
    ] = None,
    update_column: Annotated[
        list[str] | None, typer.Option("--update-column", help="Column updated (repeatable; default: all).")
    ] = None,
    s3_endpoint_url: Annotated[
        str | None, typer.Option("--s3-endpoint-url", help="S3-compatible endpoint.")
    ] = None,
    credential_id: Annotated[
        str | None, typer.Option("--credential-id", help="Stored S3 credential id.")
    ] = None,
    dask: Annotated[
        str | None,
        typer.Option(
            "--dask",
            envvar="TSENGINE_DASK_SCHEDULER",
            help="Score the chunks on a Dask cluster: tcp://HOST:8786, or local[:N] for N local worker processes.",
        ),
    ] = None,
    registry: RegistryOpt = None,
) -> None:
    """Score a file, S3 object, dataset or table with a deployment and write the predictions.

    Runs in the foreground (also as: tsengine batch DEPLOYMENT …); Ctrl-C cancels the job.
    Exit status: 0 completed, 1 failed or aborted, 2 bad input, 130 interrupted.
    """
    engine = run(lambda: _engine(registry, monitored=True))
    cluster = contextlib.ExitStack()
    try:
        if dask:
            engine.dask = DaskScoring(run(lambda: cluster.enter_context(connect(dask))))

        def create() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
            s3: dict[str, Any] = {"credential_id": credential_id, "endpoint_url": s3_endpoint_url}
            source = adapter_from_location(intake, output=False, store=engine.store, **s3)
            sink = adapter_from_location(
                output,
                output=True,
                store=engine.store,
                statement_type=statement_type,
                where_columns=where_column,
                update_columns=update_column,
                **s3,
            )
            body: dict[str, Any] = {
                "deploymentId": deployment_id,
                "intakeSettings": source,
                "outputSettings": sink,
                "numConcurrent": num_concurrent,
                "chunkSize": parse_bytes(chunk_size) if chunk_size else None,
                "maxExplanations": max_explanations or None,
                "includePredictionStatus": prediction_status or None,
                "abortOnError": False if no_abort else None,
                "passthroughColumnsSet": "all" if passthrough_all else None,
                "passthroughColumns": list(passthrough) if passthrough and not passthrough_all else None,
                "timeseriesSettings": _timeseries(forecast_point, start, end, historical, relax),
            }
            csv = {k: v for k, v in {"delimiter": delimiter, "encoding": encoding}.items() if v}
            if csv:
                body["csvSettings"] = csv
            spec = parse_job_spec({k: v for k, v in body.items() if v is not None}, allow_filesystem=True)
            return engine.create_job(spec, source="cli"), source, sink

        job, source, sink = run(create)
        with new_progress() as progress:
            bar = JobBar(progress, job["id"])
            doc = run(lambda: run_in_foreground(engine, job["id"], bar))
            if doc["status"] == "COMPLETED":
                bar(doc)
        summary = (
            f"job {doc['id']} {doc['status']}: {doc['scoredRows']:,} rows scored, {doc['failedRows']:,} failed, "
            f"{doc['skippedRows']:,} skipped → {describe_location(sink, engine.store)}"
        )
        out.print(summary, highlight=False, soft_wrap=True)
        if doc["status"] != "COMPLETED":
            err.print(f"[bold red]error:[/] {doc['statusDetails']}", highlight=False, soft_wrap=True)
            raise typer.Exit(_EXIT_JOB_FAILED)
        if doc["failedRows"]:
            err.print(f"[yellow]warning:[/] {doc['statusDetails']}", highlight=False, soft_wrap=True)
        for line in doc.get("logs", []):  # the core's warnings, e.g. imputed known-in-advance values
            if " WARNING: " in line:
                note = line.split(" WARNING: ", 1)[1]
                err.print(f"[yellow]warning:[/] {note}", highlight=False, soft_wrap=True)

    finally:
        cluster.close()
        if engine.monitor is not None:
            engine.monitor.close()  # the prediction log is written before the command ends


# ------------------------------------------------------------------ list, status, cancel


_KIND = {"filesystem": "file", "localFile": "upload"}


def _json(value: Any) -> None:
    out.file.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")
    out.file.flush()


@batch_app.command("list")
def list_cmd(
    status: Annotated[
        list[str] | None,
        typer.Option("--status", help="Only jobs in this status (repeatable), e.g. RUNNING."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Newest N jobs.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the job documents as JSON.")] = False,
    registry: RegistryOpt = None,
) -> None:
    """List batch jobs, newest first (CLI and server jobs alike)."""
    wanted = [s.upper() for s in status or []]
    known = ("INITIALIZING", "RUNNING", *TERMINAL)
    bad = [s for s in wanted if s not in known]
    if bad:
        fail(f"--status: {bad[0]!r} is not one of {', '.join(known)}")
    engine = run(lambda: _engine(registry))
    docs, total = engine.store.jobs(statuses=wanted, limit=limit)
    if as_json:
        _json([public_job(d) for d in docs])
        return
    if not docs:
        err.print("no batch jobs")
        return
    # ids and statuses are copied into other commands and scripts: never cut them
    table = Table(
        Column("id", no_wrap=True, min_width=24),
        Column("deployment", overflow="fold"),
        Column("status", no_wrap=True, min_width=12),
        *("%", "scored", "created", "intake → output"),
        box=box.SIMPLE_HEAD,
    )
    for doc in docs:
        spec = doc["jobSpec"]
        table.add_row(
            doc["id"],
            spec["deploymentId"],
            doc["status"],
            f"{doc.get('percentageCompleted') or 0:.0f}",
            f"{doc.get('scoredRows') or 0:,}",
            str(doc.get("created", ""))[:16].replace("T", " "),
            f"{_KIND.get(i := spec['intakeSettings']['type'], i)} → {_KIND.get(o := spec['outputSettings']['type'], o)}",
        )
    # a pipe gets full rows rather than rich's 80 columns
    (out if out.is_terminal else Console(width=200)).print(table)
    if total > len(docs):
        err.print(f"{len(docs)} of {total} jobs shown (--limit)")


@batch_app.command("status")
def status_cmd(
    job_id: Annotated[str, typer.Argument(metavar="ID")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole job document.")] = False,
    registry: RegistryOpt = None,
) -> None:
    """Show one job: status, progress, counts, and (with --json) its whole document."""
    engine = run(lambda: _engine(registry))
    doc = public_job(run(lambda: engine.store.job(job_id)))
    if as_json:
        _json(doc)
        return
    for key in (
        "id",
        "status",
        "statusDetails",
        "percentageCompleted",
        "scoredRows",
        "failedRows",
        "skippedRows",
    ):
        out.print(f"[bold]{key}[/]: {doc.get(key)}", highlight=False)
    spec = doc["jobSpec"]
    out.print(f"[bold]deployment[/]: {spec['deploymentId']}", highlight=False)
    for key in ("intakeSettings", "outputSettings"):
        out.print(f"[bold]{key}[/]: {orjson.dumps(spec[key]).decode()}", highlight=False, soft_wrap=True)
    out.print(
        f"[bold]created[/]: {doc.get('created')}  [bold]elapsed[/]: {doc['elapsedTimeSec']} s",
        highlight=False,
    )


@batch_app.command("cancel")
def cancel_cmd(job_id: Annotated[str, typer.Argument(metavar="ID")], registry: RegistryOpt = None) -> None:
    """Cancel a job (a running one stops after its current chunk, wherever it runs)."""
    engine = run(lambda: _engine(registry))
    doc = run(lambda: engine.cancel(job_id))
    if doc["status"] in TERMINAL:
        out.print(f"job {job_id}: {doc['status']}", highlight=False)
    else:
        out.print(f"job {job_id}: cancel requested; it stops after its current chunk", highlight=False)


# ------------------------------------------------------------------ datasets


@datasets_app.command("add")
def datasets_add_cmd(
    file: Annotated[Path, typer.Argument(help="CSV or Parquet file, snapshotted by content.")],
    name: Annotated[str | None, typer.Option("--name", help="Display name (default: file name).")] = None,
    dataset_id: Annotated[
        str | None, typer.Option("--dataset", help="Add a new version to this dataset id.")
    ] = None,
    registry: RegistryOpt = None,
) -> None:
    """Register a file in the catalog; prints the dataset id and version for --intake dataset:ID."""
    engine = run(lambda: _engine(registry))
    doc = run(
        lambda: add_dataset(engine.store, engine.folder / "datasets", file, name=name, dataset_id=dataset_id)
    )
    out.print(f"{doc['datasetId']} {doc['versionId']}", highlight=False)
    err.print(
        f"dataset {doc['name']!r}: {doc['datasetSize']:,} bytes, sha256 {doc['sha256'][:12]}…",
        highlight=False,
    )


@datasets_app.command("list")
def datasets_list_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print the records as JSON.")] = False,
    registry: RegistryOpt = None,
) -> None:
    """List catalog datasets."""
    engine = run(lambda: _engine(registry))
    docs = [public_dataset(d) for d in engine.store.datasets()]
    if as_json:
        _json(docs)
        return
    if not docs:
        err.print("no datasets")
        return
    table = Table("id", "name", "version", "versions", "bytes", "format", "created")
    for doc in docs:
        table.add_row(
            doc["datasetId"],
            doc["name"],
            doc["versionId"],
            str(len(doc["versions"])),
            f"{doc['datasetSize']:,}",
            doc["format"],
            str(doc["creationDate"])[:19].replace("T", " "),
        )
    out.print(table)
