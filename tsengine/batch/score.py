"""Scoring one chunk, and what a batch job adds to the prediction rows.

A chunk is one ordinary prediction request: the same ``predict_result`` and the
same CSV columns (:func:`tsengine.render.csv_table`) as ``POST …/predictions``.
What batch adds:

* **Row-level errors** (``abortOnError=false``): a chunk that fails is split in
  halves, by series for time series and by rows for tabular deployments, until
  each failing series (or row) is alone; its input rows come back with the
  error in ``prediction_status`` and no prediction, and every other series is
  scored.  With ``abortOnError=true`` the same search names the culprit before
  the job fails.  Splitting costs nothing while every chunk is well formed.
* ``includePredictionStatus``, ``includeProbabilities(Classes)`` and
  ``columnNamesRemapping``, applied to the rendered columns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from tsengine.batch.chunks import ROW, series_key
from tsengine.batch.spec import JobSpec
from tsengine.errors import ParameterError, TsEngineError, short_list
from tsengine.options import PredictOptions
from tsengine.render import csv_table
from tsengine.tabular.deployment import probability_column

__all__ = ["STATUS", "ChunkResult", "ChunkScorer", "RowError", "finish"]

STATUS = "prediction_status"
OK = "OK"
_KEY = "__batch_key"


class RowError(TsEngineError):
    """A series or row of a batch input cannot be scored; the message names it."""

    status = 422


@dataclass(frozen=True, slots=True)
class ChunkResult:
    """One chunk's output rows and counts.

    Attributes:
        frame: the output rows (failed rows carry only ids, passthrough and status).
        scored: prediction rows produced.
        failed: input rows of series (or rows) that could not be scored.
        skipped: input rows of scored series that were history only.
        errors: one message per failed series or row.
        warnings: the core's warnings (e.g. imputed known-in-advance values).
        series: series in the chunk (0 for tabular deployments).
    """

    frame: pl.DataFrame
    scored: int
    failed: int
    skipped: int
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    series: int = 0


class ChunkScorer:
    """Scores chunks of one job with one deployment and one set of options."""

    def __init__(
        self,
        deployment: Any,
        spec: JobSpec,
        options: PredictOptions,
        *,
        observe: Callable[[pl.DataFrame, pl.DataFrame], None] | None = None,
    ) -> None:
        """Bind the pinned deployment and the job's options.

        ``observe(prediction rows, input rows)`` is called for every scored part
        (the prediction log, unless the job skips drift tracking).
        """
        self.deployment = deployment
        self.spec = spec
        self.options = options
        self.observe = observe
        ts = getattr(deployment, "kind", "timeseries") == "timeseries"
        self.series_column: str | None = deployment.spec.series_id_column if ts else None
        self.datetime_column: str | None = deployment.spec.datetime_column if ts else None
        self.integer_ids = ts and deployment.spec.series_id_type == "int"

    def score(self, chunk: pl.DataFrame) -> ChunkResult:
        """Score a chunk (with its :data:`ROW` column of input row numbers).

        Raises:
            RowError: ``abortOnError`` is on and a series or row fails; the
                message names it and its input rows.
        """
        if self.series_column is not None and self.series_column in chunk.columns:
            keys = chunk.select(series_key(self.series_column, integer_ids=self.integer_ids)).to_series()
            chunk = chunk.with_columns(keys)
            units = keys.unique(maintain_order=True).to_list()
        elif self.datetime_column is not None:  # one series: it fails or not as a whole
            chunk = chunk.with_columns(pl.lit("").alias(_KEY))
            units = [""]
        else:
            chunk = chunk.with_columns(pl.col(ROW).cast(pl.String).alias(_KEY))
            units = chunk.get_column(_KEY).to_list()
        parts: list[pl.DataFrame] = []
        counts = [0, 0, 0]
        errors: list[str] = []
        warnings: list[str] = []
        self._score_units(chunk, units, parts, counts, errors, warnings)
        frame = pl.concat(parts, how="diagonal_relaxed") if parts else pl.DataFrame()
        series = len(units) if self.datetime_column is not None else 0
        return ChunkResult(
            frame, counts[0], counts[1], counts[2], tuple(errors), tuple(dict.fromkeys(warnings)), series
        )

    def _score_units(
        self,
        chunk: pl.DataFrame,
        units: list[Any],
        parts: list[pl.DataFrame],
        counts: list[int],
        errors: list[str],
        warnings: list[str],
    ) -> None:
        rows = (
            chunk
            if len(units) == chunk.get_column(_KEY).n_unique()
            else chunk.filter(pl.col(_KEY).is_in(units))
        )
        try:
            out, scored, skipped, notes = self._predict(rows)
        except TsEngineError as exc:
            if exc.status >= 500:
                raise
            if len(units) > 1:
                half = len(units) // 2
                self._score_units(rows, units[:half], parts, counts, errors, warnings)
                self._score_units(rows, units[half:], parts, counts, errors, warnings)
                return
            message = self._name(rows, exc)
            if self.spec.abort_on_error:
                raise RowError(message) from exc
            parts.append(self._failed_rows(rows, message))
            counts[1] += rows.height
            errors.append(message)
            return
        parts.append(out)
        counts[0] += scored
        counts[2] += skipped
        warnings.extend(notes)

    def _predict(self, rows: pl.DataFrame) -> tuple[pl.DataFrame, int, int, tuple[str, ...]]:
        inputs = rows.drop(ROW, _KEY)
        result = self.deployment.predict_result(inputs, self.options)
        table = csv_table(self.deployment, result, inputs, self.options)
        if self.observe is not None:
            self.observe(result.frame, inputs)
        if self.spec.include_prediction_status:
            table = table.with_columns(pl.lit(OK).alias(STATUS))
        row_ids = result.frame.get_column("rowId")
        predicted = int(row_ids.filter(row_ids < inputs.height).n_unique())
        return table, table.height, inputs.height - predicted, tuple(getattr(result, "warnings", ()))

    def _name(self, rows: pl.DataFrame, exc: TsEngineError) -> str:
        numbers = rows.get_column(ROW)
        where = (
            f"input row {int(numbers[0]) + 1}"
            if rows.height == 1
            else f"input rows {int(numbers.min()) + 1}-{int(numbers.max()) + 1}"  # type: ignore[arg-type]
        )
        if self.series_column is not None:
            series = rows.get_column(_KEY)[0]
            return f"series {series!r} ({where}): {exc.message}"
        return f"{where}: {exc.message}"

    def _failed_rows(self, rows: pl.DataFrame, message: str) -> pl.DataFrame:
        """The input rows of a failed series or row: ids, passthrough and the error."""
        cols: list[pl.Expr] = []
        taken: set[str] = set()
        if self.series_column is not None:
            cols.append(pl.col(self.series_column))
            taken.add(self.series_column)
        if self.datetime_column is not None and self.datetime_column in rows.columns:
            cols.append(pl.col(self.datetime_column).cast(pl.String))
            taken.add(self.datetime_column)
        passthrough = (
            [c for c in rows.columns if c not in (ROW, _KEY)]
            if self.options.passthrough_all
            else list(self.options.passthrough_columns)
        )
        missing = [c for c in passthrough if c not in rows.columns]
        if missing:
            msg = f"passthroughColumns {short_list(missing)} not found in the input"
            raise ParameterError(msg)
        ts_taken = taken | {"FORECAST_POINT", "FORECAST_DISTANCE"}
        for name in passthrough:
            clash = self.datetime_column is not None and name in ts_taken
            cols.append(pl.col(name).alias(f"{name}_passthrough" if clash else name))
        cols.append(pl.lit(message).alias(STATUS))
        return rows.select(cols)


def finish(frame: pl.DataFrame, spec: JobSpec, deployment: Any) -> pl.DataFrame:
    """Apply ``includeProbabilities(Classes)`` and ``columnNamesRemapping`` to output rows.

    Raises:
        ParameterError: a remapped column the output does not have, naming the
            columns it does have.
    """
    if getattr(deployment, "kind", "") == "tabular" and deployment.task != "regression":
        wanted = set(spec.include_probabilities_classes)
        drop = [
            probability_column(deployment.target, c)
            for c in deployment.classes
            if not spec.include_probabilities or (wanted and str(c) not in wanted)
        ]
        frame = frame.drop([c for c in drop if c in frame.columns])
    if spec.column_names_remapping:
        missing = [old for old, _ in spec.column_names_remapping if old not in frame.columns]
        if missing:
            msg = (
                f"columnNamesRemapping: the output has no column {short_list(missing)}; "
                f"its columns are {short_list(frame.columns, limit=12)}"
            )
            raise ParameterError(msg)
        drop = [old for old, new in spec.column_names_remapping if new is None]
        rename = {old: new for old, new in spec.column_names_remapping if new is not None}
        frame = frame.drop(drop).rename(rename)
    return frame
