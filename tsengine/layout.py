"""One request's window layout, and the model-ready design built on it.

Split from :mod:`tsengine.features` (which builds the features) because the
layout is shared by more than the features: the interval scale and the
explanations read the same windows of the same history.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from tsengine.columns import FP, IDX, SID, Y
from tsengine.grid import OriginGrid, series_codes

__all__ = ["Design", "Layout"]


@dataclass(frozen=True, slots=True)
class Design:
    """A model-ready matrix aligned with the query rows."""

    x: np.ndarray
    scale: np.ndarray
    last: np.ndarray
    seasonal: np.ndarray
    y: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class Layout:
    """One request's window grid, laid out once and shared by everything that reads windows.

    The model's features, the interval scale (:func:`tsengine.backtest.origin_scale`)
    and the explanations all read each origin's window ``(fp - a, fp]`` of the
    same history; each used to lay that history out again (series codes, spans,
    flat positions: the costliest part of a small request's features).  A layout
    holds those positions once; :meth:`grid` hands out an
    :class:`~tsengine.grid.OriginGrid` over them whose value columns and window
    matrices are filled on first use and then shared, so every reader sees the
    very numbers it computed before, computed once.  With ``keep_designs`` a
    model's design is kept too, for the explanations of the same request.

    Build it with :meth:`build`; positions are those of
    :meth:`OriginGrid.build <tsengine.grid.OriginGrid.build>`.
    """

    history: pl.DataFrame
    query: pl.DataFrame
    fdw: int
    pos: np.ndarray
    unique_pos: np.ndarray
    inverse: np.ndarray
    keep: np.ndarray
    flat: np.ndarray
    size: int
    keep_designs: bool = False
    _values: dict[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)
    _tags: dict[str, object] = field(default_factory=dict, compare=False, repr=False)
    _windows: dict[tuple[str, int], np.ndarray] = field(default_factory=dict, compare=False, repr=False)
    _designs: dict[object, Design] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(
        cls,
        history: pl.DataFrame,
        query: pl.DataFrame,
        fdw: int,
        *,
        codes: tuple[np.ndarray, np.ndarray] | None = None,
        keep_designs: bool = False,
    ) -> Layout:
        """Lay out ``history`` around the query's origins ``(__sid, __fp)``.

        Args:
            history: canonical rows (``__sid``, ``__i``, ``__y`` and any columns
                a reader asks :meth:`grid` for).
            query: the rows to predict (``__sid``, ``__fp``).
            fdw: the window length ``a``.
            codes: integer series codes of the history and query rows (one
                coding for both; :attr:`tsengine.window.Window.codes`), else
                computed here.
            keep_designs: keep each model's design for a later reader
                (explanations).
        """
        if codes is None:
            hcode, qcode = series_codes(history.get_column(SID), query.get_column(SID))
        else:
            hcode, qcode = codes
        origins = query.get_column(FP).to_numpy().astype(np.int64)
        n_series = int(max(hcode.max(initial=-1), qcode.max(initial=-1))) + 1
        lo = np.full(n_series, np.iinfo(np.int64).max, dtype=np.int64)
        hi = np.full(n_series, -np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(lo, qcode, origins)
        np.maximum.at(hi, qcode, origins)
        has = hi >= lo
        # one spare step before each span: a change statistic reads y[fp - a]
        lo = np.where(has, lo - fdw, 0)
        length = np.where(has, hi - lo + 1, 0)
        offsets = np.concatenate([[0], np.cumsum(length)])
        idx = history.get_column(IDX).to_numpy()
        keep = has[hcode] & (idx >= lo[hcode]) & (idx <= hi[hcode])
        kept = hcode[keep]
        flat = offsets[kept] + idx[keep] - lo[kept]
        pos = offsets[qcode] + origins - lo[qcode]
        unique_pos, inverse = _unique(pos)
        return cls(
            history=history,
            query=query,
            fdw=fdw,
            pos=pos,
            unique_pos=unique_pos,
            inverse=inverse,
            keep=keep,
            flat=flat,
            size=int(offsets[-1]),
            keep_designs=keep_designs,
        )

    def fits(self, history: pl.DataFrame, query: pl.DataFrame, fdw: int) -> bool:
        """Whether this layout is of ``history`` around ``query``'s origins with windows of ``fdw``."""
        return self.history is history and self.query is query and self.fdw == fdw

    def grid(
        self,
        columns: tuple[str, ...] = (),
        *,
        sources: dict[str, pl.Series] | None = None,
        tag: object = None,
    ) -> OriginGrid:
        """An :class:`~tsengine.grid.OriginGrid` holding the target and ``columns``.

        Args:
            columns: numeric history columns to lay out besides the target.
            sources: values to lay out instead of the history's own column
                (e.g. category codes), one per history row.
            tag: what ``sources`` are (e.g. the category maps): a column laid
                out once under one tag is never reused under another; that
                reader gets a grid of its own.
        """
        sources = sources or {}
        wanted = {name: (tag if name in sources else None) for name in (Y, *columns)}
        if any(name in self._tags and self._tags[name] != t for name, t in wanted.items()):
            values = {name: self._lay_out(name, sources.get(name)) for name in wanted}
            return OriginGrid(
                fdw=self.fdw, pos=self.pos, values=values, unique_pos=self.unique_pos, inverse=self.inverse
            )
        for name, t in wanted.items():
            if name not in self._values:
                self._values[name] = self._lay_out(name, sources.get(name))
                self._tags[name] = t
        return OriginGrid(
            fdw=self.fdw,
            pos=self.pos,
            values=self._values,
            unique_pos=self.unique_pos,
            inverse=self.inverse,
            _windows=self._windows,
        )

    def _lay_out(self, name: str, source: pl.Series | None) -> np.ndarray:
        column = np.full(self.size, np.nan)
        values = source if source is not None else self.history.get_column(name)
        column[self.flat] = values.cast(pl.Float64).to_numpy()[self.keep]
        return column

    def rows(self, start: int, length: int) -> Layout:
        """The layout of query rows ``start .. start + length``, for a design built in pieces.

        It shares the laid-out value columns; its window matrices are its own
        (they hold other origins), and it keeps no designs.
        """
        pos = self.pos[start : start + length]
        unique_pos, inverse = _unique(pos)
        return Layout(
            history=self.history,
            query=self.query.slice(start, length),
            fdw=self.fdw,
            pos=pos,
            unique_pos=unique_pos,
            inverse=inverse,
            keep=self.keep,
            flat=self.flat,
            size=self.size,
            _values=self._values,
            _tags=self._tags,
        )

    def design(self, key: object, build: Callable[[], Design]) -> Design:
        """A model's design for this request: built by ``build``, kept when :attr:`keep_designs`."""
        found = self._designs.get(key)
        if found is not None:
            return found
        design = build()
        if self.keep_designs:
            self._designs[key] = design
        return design


def _unique(pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(pos, return_inverse=True)``, without its sort when ``pos`` never decreases.

    A forecast's query is series-major with one origin per series, so its
    positions come sorted and the distinct ones are where the value changes.
    """
    if pos.size > 1 and bool((pos[1:] >= pos[:-1]).all()):
        change = pos[1:] != pos[:-1]
        starts = np.concatenate([[True], change])
        return pos[starts], np.cumsum(starts) - 1
    unique_pos, inverse = np.unique(pos, return_inverse=True)
    return unique_pos, inverse.ravel()
