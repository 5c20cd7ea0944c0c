"""A ``tsengine batch`` job run in the foreground: progress bar, heartbeat, Ctrl-C.

The job runs in a thread of this process so the main thread stays free to take
the interrupt, which cancels the job after its current chunk (exit 130).  While
it runs the main thread beats the job's heartbeat, as a server's housekeeper
would, so a server sharing the store never takes a long chunk for a dead
process.  The bar on stderr shows rows and series done, rows scored, the rate
and the time left; a log file gets the summary line instead of redrawn bars.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from tsengine.batch import BatchEngine
from tsengine.batch.runner import CANCELLED
from tsengine.batch.store import TERMINAL
from tsengine.cli_common import err
from tsengine.errors import ConflictError

__all__ = ["JobBar", "new_progress", "run_in_foreground"]

_EXIT_INTERRUPTED = 130
_HEARTBEAT_SECONDS = 5.0


class JobBar:
    """The job's progress: % of input rows, rows and series done/total, rows scored, rate, ETA."""

    def __init__(self, progress: Progress, job_id: str) -> None:
        self.progress = progress
        self.task = progress.add_task(f"job {job_id}", total=100.0, rows="", scored=0, rate="", chunk="")
        self.started = time.monotonic()

    def __call__(self, doc: dict[str, Any]) -> None:
        """Redraw the bar from a job document (the engine's progress listener)."""
        pct = float(doc.get("percentageCompleted") or 0.0)
        scored = int(doc.get("scoredRows") or 0)
        seconds = max(time.monotonic() - self.started, 1e-6)
        total, series = doc.get("intakeRows"), doc.get("intakeSeries")
        rows = f"{doc.get('processedRows') or 0:,}/{total:,} rows in" if total else ""
        if series:
            rows += f", {doc.get('seriesScored') or 0:,}/{series:,} series"
        match = re.match(r"Scored chunk (\d+) of (\d+)", str(doc.get("statusDetails") or ""))
        self.progress.update(
            self.task,
            completed=pct,
            rows=rows,
            scored=scored,
            rate=f"{scored / seconds:,.0f} rows/s" if scored else "",
            chunk=f"chunk {match[1]}/{match[2]}" if match else str(doc.get("statusDetails") or ""),
        )


def new_progress() -> Progress:
    """The bars' columns, on stderr; disabled off a terminal."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rows]}"),
        TextColumn("{task.fields[scored]:,} scored"),
        TextColumn("{task.fields[rate]}"),
        TextColumn("{task.fields[chunk]}"),
        TimeRemainingColumn(),
        console=err,
        disable=not err.is_terminal,  # a log file gets the summary line, not redrawn bars
    )


def _wait(done: threading.Event, beat: Callable[[], None] = lambda: None) -> None:
    """Wait for the runner, beating its heartbeat (the housekeeper thread would, in a server).

    An Event, not ``Thread.join``: a join interrupted by Ctrl-C can leave
    ``is_alive()`` wrongly False.  Without the heartbeat a server sharing the
    store would take a long chunk (> 60 s) for a dead process and fail the job.
    """
    while not done.wait(_HEARTBEAT_SECONDS):
        beat()


def run_in_foreground(engine: BatchEngine, job_id: str, bar: JobBar) -> dict[str, Any]:
    """Run the job here; Ctrl-C cancels it (the runner stops after its chunk) and exits 130.

    The job runs in a thread so the main thread stays free to take the
    interrupt.  If a server's worker claimed the queued job first, follow it
    in the store instead.
    """
    failure: list[BaseException] = []
    done = threading.Event()

    def work() -> None:
        try:
            engine.run_now(job_id)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            failure.append(exc)
        finally:
            done.set()

    engine.listen(job_id, bar)
    thread = threading.Thread(target=work, name=f"tsengine-batch-{job_id}", daemon=True)
    try:
        thread.start()
        _wait(done, lambda: engine.store.heartbeat([job_id]))
        if failure and isinstance(failure[0], ConflictError):
            while (doc := engine.store.job(job_id))["status"] not in TERMINAL:
                bar(doc)
                time.sleep(0.5)
        elif failure:
            raise failure[0]
    except KeyboardInterrupt:
        err.print(f"interrupted: cancelling job {job_id} after its current chunk…", highlight=False)
        engine.cancel(job_id)
        with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C leaves at once
            _wait(done)
        # C extensions (polars, pyarrow) may raise the interrupt in the runner's thread
        # too, past the engine's handlers: record the cancel the engine could not
        if done.is_set() and engine.store.job(job_id)["status"] not in TERMINAL:
            engine.fail(job_id, CANCELLED, status="ABORTED")
        raise typer.Exit(_EXIT_INTERRUPTED) from None
    return engine.store.job(job_id)
