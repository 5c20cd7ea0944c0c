"""Training on a Dask cluster: ``tsengine train … --dask ADDRESS``, ``train(..., dask=client)``.

Only where each candidate is fitted and backtested changes; the driver still
validates the data, picks the backtest origins, builds the ensembles, selects
the model and fits the intervals, exactly as in one process.

* **Per-series candidates** (:attr:`ForecastModel.per_series`: ETS, Theta,
  ARIMA, seasonal naive) are fitted and backtested on each partition of the
  series in a task of its own, with the existing polars/numpy code, and the
  parts merged (:meth:`ForecastModel.merge`).  What a fit decides on the whole
  panel (ARIMA's estimator) is decided on the driver first
  (:meth:`ForecastModel.panel_kwargs`).  Models and backtest rows equal a
  single-process training's (``tests/e2e/test_train_dask.py``).
* **Global candidates** (LightGBM, linear) learn across series, so each is
  fitted and backtested in one task on one worker; the panel is sent to every
  worker once.  A cluster whose workers cannot hold the panel needs
  ``lightgbm.dask``, which this module does not use yet.
* **Partitions** hold whole series: series ``s`` goes to partition
  ``blake2b-64(utf8(s)) mod P`` (:func:`series_partition`), which is the same
  in every process, machine and version (Python's ``hash`` is salted per
  process; polars' hash may change between releases).  ``P`` is
  :data:`PARTITIONS_PER_WORKER` per worker, so a slow partition does not hold
  the others up.
* **Failures**: a partition's rows travel inside its task, so when a worker
  dies Dask reruns its tasks elsewhere with nothing lost; the job completes
  with the same result.  A candidate that cannot train on the data is left
  out as in one process.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from concurrent.futures import CancelledError
from dataclasses import dataclass
from typing import Any

import polars as pl

from tsengine.backtest import Backtest, refitter, run_backtest
from tsengine.columns import FP, SID, D, Y
from tsengine.models import MODELS
from tsengine.models.base import ForecastModel
from tsengine.spec import TimeSeriesSpec

__all__ = ["PARTITIONS_PER_WORKER", "ClusterTraining", "series_partition"]

PARTITIONS_PER_WORKER = 4
RETRIES = 3
"""Times a task is resubmitted after it raised an unexpected error (Dask's ``retries``)."""


def series_partition(sids: pl.Series, partitions: int) -> pl.Series:
    """Each row's partition: the series id's 8-byte BLAKE2b digest (of its UTF-8 text) modulo ``partitions``."""
    codes = {
        sid: int.from_bytes(hashlib.blake2b(sid.encode(), digest_size=8).digest(), "big") % partitions
        for sid in sids.unique().to_list()
    }
    return sids.replace_strict(codes, return_dtype=pl.Int64)


def fit_and_backtest(
    kind: str,
    history: pl.DataFrame,
    spec: TimeSeriesSpec,
    origins: list[int],
    seed: int,
    kwargs: dict[str, Any],
) -> tuple[ForecastModel, pl.DataFrame] | None:
    """One candidate on ``history`` (a worker's task): its final fit and backtest rows.

    None for a partition without one observed target (the panel as a whole has some).
    """
    if history.get_column(Y).null_count() == history.height:
        return None
    cls = MODELS[kind]
    final = cls.fit(history, spec, seed=seed, **kwargs)
    rows = run_backtest(refitter(cls, final, spec, seed), history, spec, origins, name=kind).rows
    return final, rows


@dataclass
class ClusterTraining:
    """Fits and backtests candidates on a ``distributed.Client``'s cluster."""

    client: Any
    canon: pl.DataFrame
    spec: TimeSeriesSpec
    origins: list[int]
    seed: int
    say: Callable[[str], None]

    def __post_init__(self) -> None:
        workers = len(self.client.scheduler_info()["workers"]) or 1
        n_series = self.canon.get_column(SID).n_unique()
        count = max(1, min(n_series, PARTITIONS_PER_WORKER * workers))
        part = series_partition(self.canon.get_column(SID), count)
        self._parts = [
            p
            for _, p in self.canon.with_columns(part.alias("__part"))
            .partition_by("__part", as_dict=True, include_key=False)
            .items()
        ]
        self._parts.sort(key=lambda p: str(p.get_column(SID).min()))
        self._whole: Any = None
        self._futures: dict[str, list[Any]] = {}

    def submit(self, kinds: list[str]) -> None:
        """Send every candidate's tasks to the cluster at once, so they run side by side.

        A global candidate is one task; a per-series one is a task per
        partition.  :meth:`run` then collects them in order.
        """
        with warnings.catch_warnings():
            # Each partition travels inside its task (so a dead worker's tasks can be rerun
            # anywhere); distributed warns about graphs over 10 MB.
            warnings.filterwarnings("ignore", message=".*[Ll]arge graph.*")
            for kind in kinds:
                cls = MODELS[kind]
                if cls.per_series:
                    kwargs = cls.panel_kwargs(self.canon, self.spec)
                    self._futures[kind] = [self._submit(kind, part, kwargs) for part in self._parts]
                else:
                    if self._whole is None:
                        self._whole = self.client.scatter(self.canon, broadcast=True, hash=False)
                    self._futures[kind] = [self._submit(kind, self._whole, {})]
        tasks = sum(len(f) for f in self._futures.values())
        self.say(f"sent {tasks} tasks ({len(kinds)} candidates) to the cluster")

    def _submit(self, kind: str, data: Any, kwargs: dict[str, Any]) -> Any:
        return self.client.submit(
            fit_and_backtest,
            kind,
            data,
            self.spec,
            self.origins,
            self.seed,
            kwargs,
            pure=False,
            retries=RETRIES,
        )

    def run(self, kind: str) -> tuple[ForecastModel, Backtest]:
        """``kind``'s final model and backtest, as :func:`fit_and_backtest` on the whole panel gives them.

        Raises:
            TsEngineError: the candidate cannot train on this data (as in one process).
        """
        if kind not in self._futures:
            self.submit([kind])
        cls = MODELS[kind]
        try:
            results = self._collect(kind)
        except CancelledError:
            # Dask cancels a task whose scattered panel was lost with a dead worker (retries do
            # not cover it): scatter the panel again and run the candidate once more.
            self.say(f"{kind}: the cluster lost the panel with a worker; sending it again")
            if self._whole is not None and self._whole.status != "finished":
                self._whole = None  # scattered again by submit, once for every candidate
            self.submit([kind])
            results = self._collect(kind)
        results = [r for r in results if r is not None]
        if not results:
            # no partition has a target: let the whole panel raise its own error
            cls.fit(self.canon, self.spec, seed=self.seed, **cls.panel_kwargs(self.canon, self.spec))
        if not cls.per_series:  # one task on the whole panel: already in one process's order
            return results[0][0], Backtest(kind, results[0][1])
        model = cls.merge([m for m, _ in results])
        return model, Backtest(kind, self._in_origin_order(pl.concat([r for _, r in results])))

    def _collect(self, kind: str) -> list[Any]:
        """``kind``'s task results, reporting progress as they finish."""
        from distributed import as_completed

        futures = self._futures.pop(kind)
        for done, _ in enumerate(as_completed(futures), start=1):  # type: ignore[no-untyped-call]
            what = f"{done}/{len(futures)} partitions" if MODELS[kind].per_series else "on a worker"
            self.say(f"fitting and backtesting {kind}: {what}")
        return [f.result() for f in futures]

    def _in_origin_order(self, rows: pl.DataFrame) -> pl.DataFrame:
        """Rows as one process lists them: by origin (in the origins' order), then series and distance."""
        rank = {origin: k for k, origin in enumerate(self.origins)}
        order = rows.get_column(FP).replace_strict(rank, return_dtype=pl.Int64).alias("__rank")
        return rows.with_columns(order).sort("__rank", SID, D, maintain_order=True).drop("__rank")
