"""Batch scoring on a Dask cluster (``pip install 'tsengine[dask]'``).

A batch job is already cut into chunks that hold whole series (see
:mod:`tsengine.batch.chunks`), and each chunk is scored independently by
:class:`~tsengine.batch.score.ChunkScorer`; only where chunks are scored
changes here.  The driver (``tsengine batch`` or the server) plans the job,
reads each chunk and submits it to the cluster with the scorer, which is
scattered to every worker once; results come back and are written in input
order by the same loop as in-process scoring, so the output is identical.

* Scheduler addresses: ``tcp://host:8786`` (a running cluster), or
  ``local`` / ``local:N`` for a :class:`distributed.LocalCluster` of N worker
  processes (one thread each) started for the job.
* Tasks are retried (``retries``) when a worker dies mid-chunk: scoring is pure,
  so a chunk scored twice gives the same rows.
* The prediction log is fed on the driver: workers return what they scored and
  the driver queues it, so monitoring works as in-process.
* Workers need the same tsengine and model libraries as the driver; they never
  read the registry or the chunk files (both travel with the tasks).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from tsengine.batch.score import ChunkResult, ChunkScorer
from tsengine.errors import ParameterError, TsEngineError

__all__ = ["DaskSchedulerError", "DaskScoring", "connect", "parse_address"]

RETRIES = 3
"""Times a chunk is resubmitted after its worker died (Dask's ``retries``)."""
CONNECT_TIMEOUT = 10.0
"""Seconds to wait for a remote scheduler before refusing the job (``TSENGINE_DASK_CONNECT_TIMEOUT``)."""
CONNECT_TIMEOUT_VARIABLE = "TSENGINE_DASK_CONNECT_TIMEOUT"


def connect_timeout() -> float:
    """Seconds to wait for a scheduler: :data:`CONNECT_TIMEOUT` unless the environment says otherwise.

    Dask keeps retrying a refused connection until this runs out, so it is
    how long a wrong address takes to be reported; a cluster behind a slow
    network may need longer.

    Raises:
        ParameterError: the variable is not a positive number of seconds.
    """
    text = os.environ.get(CONNECT_TIMEOUT_VARIABLE, "").strip()
    if not text:
        return CONNECT_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        msg = f"{CONNECT_TIMEOUT_VARIABLE} must be a positive number of seconds, got {text!r}"
        raise ParameterError(msg)
    return seconds


_observed: contextvars.ContextVar[list[tuple[pl.DataFrame, pl.DataFrame]]] = contextvars.ContextVar(
    "observed"
)


class DaskSchedulerError(TsEngineError):
    """The Dask scheduler cannot be reached (or Dask is not installed)."""

    status = 503


def parse_address(address: str) -> tuple[str, int | None]:
    """``("local", N)`` for ``local[:N]``, else ``(address, None)``.

    Raises:
        ParameterError: ``local:`` followed by something that is not a positive integer.
    """
    if address == "local":
        return "local", None
    if address.startswith("local:"):
        text = address.removeprefix("local:")
        if not text.isdigit() or int(text) < 1:
            msg = f"--dask: local:N takes a positive number of workers, got {address!r}"
            raise ParameterError(msg)
        return "local", int(text)
    return address, None


@contextlib.contextmanager
def connect(address: str) -> Iterator[Any]:
    """A ``distributed.Client`` for ``address`` (a LocalCluster for ``local[:N]``), closed on exit.

    Raises:
        DaskSchedulerError: Dask is missing or the scheduler does not answer.
        ParameterError: ``TSENGINE_DASK_CONNECT_TIMEOUT`` is not a positive number.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        msg = "Dask scoring needs the dask extra: pip install 'tsengine[dask]'"
        raise DaskSchedulerError(msg) from exc
    where, workers = parse_address(address)
    if where == "local":
        cluster = LocalCluster(
            n_workers=workers or 2, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
    else:
        cluster = None
        try:
            client = Client(where, timeout=connect_timeout())
        except (OSError, TimeoutError) as exc:
            msg = f"the Dask scheduler at {where!r} cannot be reached ({type(exc).__name__}: {exc})"
            raise DaskSchedulerError(msg) from exc
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _collect(rows: pl.DataFrame, inputs: pl.DataFrame) -> None:
    """The remote scorer's ``observe``: keep what was scored for the driver's prediction log."""
    _observed.get().append((rows, inputs))


def _score_remote(
    scorer: ChunkScorer, frame: pl.DataFrame
) -> tuple[ChunkResult, list[tuple[pl.DataFrame, pl.DataFrame]]]:
    """Score one chunk on a worker; return the result and the parts to log."""
    seen: list[tuple[pl.DataFrame, pl.DataFrame]] = []
    token = _observed.set(seen)
    try:
        return scorer.score(frame), seen
    finally:
        _observed.reset(token)


@dataclass
class _Pending:
    """A submitted chunk: waits for the cluster, then feeds the driver's observer.

    ``again`` resubmits the chunk with the scorer scattered afresh: Dask
    cancels a task whose scattered input was lost with a dead worker (every
    copy of it gone before the task ran), and retries do not cover that.
    """

    future: Any
    observe: Callable[[pl.DataFrame, pl.DataFrame], None] | None
    again: Callable[[], Any] | None = None

    def result(self) -> ChunkResult:
        try:
            result, seen = self.future.result()
        except CancelledError:
            if self.again is None:
                raise
            self.future, self.again = self.again(), None
            result, seen = self.future.result()
        if self.observe is not None:
            for rows, inputs in seen:
                self.observe(rows, inputs)
        return result  # type: ignore[no-any-return]

    def cancel(self) -> bool:
        self.again = None  # a chunk cancelled by the job is not resubmitted
        self.future.cancel()
        return True


@dataclass
class DaskScoring:
    """Submits a job's chunks to a cluster; the runner's ordered loop drives it like a pool."""

    client: Any
    _scattered: dict[int, Any] = field(default_factory=dict)

    def bind(self, scorer: ChunkScorer) -> Callable[[pl.DataFrame], _Pending]:
        """``submit(chunk frame)`` for one job's scorer (sent to every worker once)."""
        observe = scorer.observe
        remote = ChunkScorer(
            scorer.deployment, scorer.spec, scorer.options, observe=_collect if observe is not None else None
        )
        shared = [self._scatter(remote)]

        def send(frame: pl.DataFrame) -> Any:
            return self.client.submit(_score_remote, shared[0], frame, pure=False, retries=RETRIES)

        def resend(frame: pl.DataFrame) -> Any:
            if shared[0].status != "finished":  # lost with a worker: scatter again, once for every chunk
                shared[0] = self._scatter(remote)
            return send(frame)

        def submit(frame: pl.DataFrame) -> _Pending:
            return _Pending(send(frame), observe, lambda: resend(frame))

        return submit

    def _scatter(self, value: Any) -> Any:
        [shared] = self.client.scatter([value], broadcast=True, hash=False)
        return shared
