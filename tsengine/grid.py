"""History laid out flat on the time-step grid, for window statistics at origins.

Every statistic the engine computes "as of a forecast point" (lags, rolling
means, the last observed value, the interval scale) reads the window
``(fp - a, fp]`` of one series.  :class:`OriginGrid` puts each series' span
``[min fp - a + 1, max fp]`` back to back in one flat float array, gaps as NaN,
and answers every window query by gathering each distinct origin's window into
one matrix row: a fixed handful of numpy calls whether the request holds one
series or ten thousand.  Each statistic reads only its own window, in a fixed
order, so a value never depends on what else the request holds (prefix sums
would, by rounding), and posting extra rows cannot move a prediction.
That is what keeps a one-series request in the low milliseconds, where a chain
of dataframe operations would pay a fixed cost per call.

Windows never cross a series boundary because each span starts ``a - 1`` steps
before the earliest origin and every window is at most ``a`` long.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from tsengine.columns import IDX, SID, Y

__all__ = ["OriginGrid", "series_codes"]

_NONE = np.iinfo(np.int64).max


# Below this many keys numpy's unique on the strings beats a polars rank (which
# pays a fixed ~150 us); above it, polars' parallel sort wins.
_SMALL_KEYS = 4_096


def series_codes(history: pl.Series, query: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer series codes shared by history and query rows."""
    both = pl.concat([history, query])
    if both.len() <= _SMALL_KEYS:
        codes = np.unique(both.to_numpy(), return_inverse=True)[1].ravel().astype(np.int64)
    else:
        codes = both.rank("dense").to_numpy().astype(np.int64) - 1
    return codes[: history.len()], codes[history.len() :]


@dataclass(frozen=True, slots=True)
class OriginGrid:
    """Flat dense history around a set of origins.

    Attributes:
        fdw: the window length ``a``.
        pos: flat position of each origin (one per query row, in query order).
        values: flat arrays of the target (``__y``) and any requested columns.
        unique_pos: the distinct origin positions; ``inverse`` maps rows to them.
        inverse: index into ``unique_pos`` of each query row.
    """

    fdw: int
    pos: np.ndarray
    values: dict[str, np.ndarray]
    unique_pos: np.ndarray
    inverse: np.ndarray
    _windows: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    _observed: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    # Flat position of the latest observed target at or before each position (see carried).
    _latest: list[np.ndarray] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        history: pl.DataFrame,
        sids: pl.Series,
        origins: np.ndarray,
        fdw: int,
        columns: tuple[str, ...] = (),
    ) -> OriginGrid:
        """Lay out ``history`` around ``origins``.

        Args:
            history: canonical rows (``__sid``, ``__i``, ``__y`` and ``columns``,
                all numeric); rows outside the spans are ignored.
            sids: the series of each origin.
            origins: grid index of each origin (``__fp``).
            fdw: the window length ``a``.
            columns: further numeric history columns to lay out.
        """
        hcode, qcode = series_codes(history.get_column(SID), sids)
        n_series = int(max(hcode.max(initial=-1), qcode.max(initial=-1))) + 1
        lo = np.full(n_series, _NONE, dtype=np.int64)
        hi = np.full(n_series, -_NONE, dtype=np.int64)
        np.minimum.at(lo, qcode, origins)
        np.maximum.at(hi, qcode, origins)
        has = hi >= lo
        # one spare step before each span: a change statistic reads y[fp - a]
        lo = np.where(has, lo - fdw, 0)
        length = np.where(has, hi - lo + 1, 0)
        offsets = np.concatenate([[0], np.cumsum(length)])
        size = int(offsets[-1])
        idx = history.get_column(IDX).to_numpy()
        keep = has[hcode] & (idx >= lo[hcode]) & (idx <= hi[hcode])
        flat = offsets[hcode[keep]] + idx[keep] - lo[hcode[keep]]
        values: dict[str, np.ndarray] = {}
        for name in (Y, *columns):
            column = np.full(size, np.nan)
            src = history.get_column(name).cast(pl.Float64).to_numpy()
            column[flat] = src[keep]
            values[name] = column
        pos = offsets[qcode] + origins - lo[qcode]
        unique_pos, inverse = np.unique(pos, return_inverse=True)
        return cls(fdw=fdw, pos=pos, values=values, unique_pos=unique_pos, inverse=inverse.ravel())

    def window(self, name: str = Y, width: int | None = None) -> np.ndarray:
        """``[k, j]`` = the value ``j`` steps before distinct origin ``k`` (cached)."""
        w = width or self.fdw
        key = (name, w)
        if key not in self._windows:
            self._windows[key] = self.values[name][self.unique_pos[:, None] - np.arange(w)]
        return self._windows[key]

    def _observed_window(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The whole-FDW window's mask of observed values and the window with gaps as 0 (cached).

        Every statistic of every width slices these two: one request asks for
        a dozen statistics of the same window, and masking it anew for each was
        a fifth of a one-series feature build.  A slice of the filled window
        holds the same numbers in the same order as filling the slice, so the
        sums are bit for bit the same.
        """
        cached = self._observed.get(name)
        if cached is None:
            win = self.window(name, self.fdw)
            valid = ~np.isnan(win)
            cached = self._observed[name] = (valid, np.where(valid, win, 0.0))
        return cached

    def _sums(self, name: str, width: int | None, *, absolute: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Per distinct origin: sum and count of the observed values in the window."""
        valid, filled = self._observed_window(name)
        w = width or self.fdw
        values = np.abs(filled[:, :w]) if absolute else filled[:, :w]
        return values.sum(axis=1), valid[:, :w].sum(axis=1).astype(np.float64)

    def count(self, name: str = Y, width: int | None = None) -> np.ndarray:
        """Observed values in the window (default: the whole FDW)."""
        return np.asarray(self._sums(name, width)[1][self.inverse])

    def mean(self, name: str = Y, width: int | None = None, *, absolute: bool = False) -> np.ndarray:
        """Mean of the observed values in the window; NaN when there are none."""
        total, n = self._sums(name, width, absolute=absolute)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(np.where(n > 0, total / n, np.nan)[self.inverse])

    def std(self, name: str = Y, width: int | None = None) -> np.ndarray:
        """Sample standard deviation (ddof 1) in the window; NaN below two values."""
        w = width or self.fdw
        valid, filled = self._observed_window(name)
        valid, win = valid[:, :w], self.window(name, self.fdw)[:, :w]
        n = valid.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mu = filled[:, :w].sum(axis=1) / n
            dev = np.where(valid, win - mu[:, None], 0.0)
            var = (dev * dev).sum(axis=1) / (n - 1)
        return np.asarray(np.where(n > 1, np.sqrt(np.maximum(var, 0.0)), np.nan)[self.inverse])

    def lag(self, j: int, name: str = Y) -> np.ndarray:
        """The value ``j`` steps before each origin (``j < fdw``)."""
        return np.asarray(self.values[name][self.pos - j])

    def carried(self, steps: np.ndarray) -> np.ndarray:
        """The target ``steps`` before each origin, a gap read as the latest value before it.

        ``steps`` is one per origin, or one row of steps per origin (``[k, j]``).
        A value missing there (a gap in the history, or a series whose records
        stopped before the origin) is the latest observed value before it inside
        the window; NaN when the window has none that early.  Trees fitted on
        complete history never saw such a value missing, and LightGBM then
        reads a missing input as 0, the lowest level a scaled target has
        [measured, ``benchmarks/results/recent_gaps.md``: trained on complete
        history, a quarter of the series posted with their last 1 / 3 / 7
        targets blank, mean MASE over three held-out horizons, before -> with
        this: the default deployment 0.960 / 0.862 / 0.820 -> 0.879 / 0.883 /
        0.854 on flights_daily (0.867 posted complete) and 0.557 / 1.837 /
        1.219 -> 0.557 / 0.737 / 0.597 on flights_hourly (0.628);
        lightgbm_diff alone 1.784 / 0.924 / 0.992 -> 0.913 / 0.882 / 0.880
        daily and 0.565 / 3.704 / 2.571 -> 0.565 / 0.997 / 0.810 hourly; the
        level model alone unchanged daily, 0.568 / 0.580 / 0.569 -> 0.568 /
        0.634 / 0.560 hourly].  Complete history gives the same inputs as
        before: the accuracy benchmark's panels have no gaps.
        """
        y = self.values[Y]
        pos = self.pos if np.ndim(steps) < 2 else self.pos[:, None]
        plain = np.asarray(y[pos - steps])
        if not np.isnan(plain).any():  # no gap there: the common case, a plain gather
            return plain
        if not self._latest:
            self._latest.append(np.maximum.accumulate(np.where(np.isnan(y), -1, np.arange(y.size))))
        src = self._latest[0][pos - steps]
        return np.where(src > pos - self.fdw, y[src], np.nan)

    def back(self, steps: np.ndarray, name: str = Y) -> np.ndarray:
        """The value ``steps[k]`` steps before origin ``k`` (each ``< fdw``)."""
        return np.asarray(self.values[name][self.pos - steps])

    def seasonal_mean(self, first: np.ndarray, season: int, name: str = Y) -> np.ndarray:
        """Mean of the observed values ``first``, ``first + season``, ... steps back, inside the window.

        The target's seasonal position seen in every season of the window, not
        once: the same weekday's mean over the window's weeks is a steadier
        profile than its one value a week before.  NaN when none is observed.
        """
        total = np.zeros(first.size)
        seen = np.zeros(first.size)
        for k in range(self.fdw // season + 1):
            steps = first + k * season
            inside = steps < self.fdw
            if not inside.any():
                break
            value = self.back(np.where(inside, steps, 0), name)
            ok = inside & ~np.isnan(value)
            total += np.where(ok, value, 0.0)
            seen += ok
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(np.where(seen > 0, total / seen, np.nan))

    def last(self, name: str = Y) -> np.ndarray:
        """The latest observed value inside the window, NaN when none."""
        win = self.window(name, self.fdw)
        valid = self._observed_window(name)[0]
        first = valid.argmax(axis=1)
        found = valid[np.arange(win.shape[0]), first]
        return np.asarray(np.where(found, win[np.arange(win.shape[0]), first], np.nan)[self.inverse])

    def mean_abs_change(self, width: int) -> np.ndarray:
        """Mean ``|y_t - y_{t-1}|`` over the ``width`` latest steps (``width < fdw + 1``)."""
        win = self.window(Y, width + 1)
        change = np.abs(win[:, :-1] - win[:, 1:])
        valid = ~np.isnan(change)
        n = valid.sum(axis=1)
        total = np.where(valid, change, 0.0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(np.where(n > 0, total / n, np.nan)[self.inverse])
