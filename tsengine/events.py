"""Event calendars: holidays and other dated events as known-in-advance features.

DataRobot's "calendar file" lists dates and event names, optionally per series;
a model learns what each event does to demand.  Here a deployment may carry an
:class:`EventCalendar`: events from a file (``tsengine train --calendar FILE``),
a country's public holidays from the ``holidays`` package (``--holidays
US-CA``), or both.  It is stored with the deployment's spec, and the features
are derived from the timestamps alone, at training and at prediction, so a
client never posts them and every generated forecast row has them.

For each row (series ``s``, target period ``[t, t + step)``) the features are
(:data:`EVENT_COLUMNS`):

* ``event``: how many events fall in the period (a day for daily, business-day
  and sub-daily data, the week or month for coarser steps);
* ``event name``: the first such event's name (a category);
* ``days to event`` / ``days since event``: whole days from
  the period's first day to the next event on or after it, and from the latest
  event on or before it, clipped at :func:`clip_days` (two steps, at least 14
  days), so "no event for months" is one value.

Events with a series id apply to that series only; the others to every series.
Models see these columns as known-in-advance features (:func:`model_spec`):
LightGBM reads all four (a name seen on fewer than three dates of the training
data as unknown, see :meth:`tsengine.features.CategoryMaps.learn`); ARIMA and the
linear model take the numeric ones as regressors; ETS, Theta and seasonal naive
take no regressors.

Backtest selection (:func:`event_weights`): a backtest that happens to span the
holidays would rank models by how they do on a few unusual days.  With a
calendar, each backtest row is weighted so that event periods count with the
share they have over the whole training span, not their share of the backtest
windows; the leaderboard reports the MASE on event and ordinary periods too.
Events posted as features count as well: a known-in-advance 0/1 column set on
few rows (a ``holiday`` flag, :func:`event_flags`) marks event periods for the
weighting with or without a calendar.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import polars as pl
from dateutil import parser as dateutil_parser

from tsengine.columns import IDX, SID, Y
from tsengine.datetimes import utc_offset_minutes
from tsengine.errors import ParameterError
from tsengine.grid_calendar import grid_timestamps
from tsengine.timestep import TimeStep

if TYPE_CHECKING:
    from tsengine.backtest import Backtest
    from tsengine.spec import TimeSeriesSpec

B = TypeVar("B", bound="Backtest")

__all__ = [
    "DAYS_SINCE",
    "DAYS_TO",
    "EVENT",
    "EVENT_COLUMNS",
    "EVENT_NAME",
    "EventCalendar",
    "clip_days",
    "event_columns",
    "event_flags",
    "event_weights",
    "model_spec",
    "weigh_events",
    "with_events",
]

EVENT = "event"
EVENT_NAME = "event name"
DAYS_TO = "days to event"
DAYS_SINCE = "days since event"
EVENT_COLUMNS = (EVENT, EVENT_NAME, DAYS_TO, DAYS_SINCE)
MIN_CLIP_DAYS = 14
# [ours] A known-in-advance 0/1 column set on at most this share of the rows
# with a target is an event flag (:func:`event_flags`).  An event is the
# exception: holidays are 2-4 % of days and a holiday-week flag about a fifth
# of weeks, while a flag on more rows (weekend, workday, a season) describes
# ordinary periods, whose backtest share is close to their long-run share anyway.
MAX_FLAG_SHARE = 0.25
# Years holidays are generated for: the package's tables cover roughly these.
HOLIDAY_YEARS = (1900, 2200)
# Days since 1970 fit in 20 bits for any date the grid holds (years 1-5000 either side);
# a series' events are keyed ``code * _SPAN + day`` so one sorted array serves every series.
_SPAN = 1 << 22
_OFFSET = 1 << 21
_DAY_US = 86_400_000_000


@dataclass(frozen=True, slots=True)
class EventCalendar:
    """Dated events, global or per series, and optionally a country's holidays.

    Attributes:
        days: event dates as days since 1970-01-01, sorted with ``series``.
        names: event names, one per date.
        series: the series an event belongs to, or None for every series.
        holidays: ``COUNTRY``, ``COUNTRY-SUBDIV`` or a financial market
            (``NYSE``) for the ``holidays`` package.
        closures: names of the global events the training data was closed on
            (:func:`close_holidays`): their days are off the deployment's grid.
    """

    days: tuple[int, ...] = ()
    names: tuple[str, ...] = ()
    series: tuple[str | None, ...] = ()
    holidays: str | None = None
    closures: tuple[str, ...] = ()
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Hashed once: every request looks its event arrays up by calendar (_lookup), and
        # hashing 50,000 store promotions took 0.8 ms each time.
        key = hash((self.days, self.names, self.series, self.holidays, self.closures))
        object.__setattr__(self, "_hash", key)

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> tuple[Any, ...]:
        # rebuilt, not copied: string hashes differ between processes (Dask workers)
        return (type(self), (self.days, self.names, self.series, self.holidays, self.closures))

    @classmethod
    def build(
        cls,
        calendar: Any = None,
        *,
        holidays: str | None = None,
        series_id_column: str | None = None,
    ) -> EventCalendar | None:
        """A calendar from a file path or frame and/or a holidays spec; None when both are absent.

        Raises:
            ParameterError: an unreadable file, a date that does not parse, an
                empty name, or a country or subdivision ``holidays`` does not know.
        """
        if calendar is None and not holidays:
            return None
        if holidays:
            _country_holidays(holidays, (2000,))  # fail now, not at the first prediction
        if calendar is None:
            return cls(holidays=holidays)
        if isinstance(calendar, EventCalendar):
            return dataclasses.replace(calendar, holidays=holidays or calendar.holidays)
        frame = _read(calendar)
        days, names, series = _parse(frame, series_id_column)
        order = sorted(range(len(days)), key=lambda i: (series[i] or "", days[i], names[i]))
        return cls(
            days=tuple(days[i] for i in order),
            names=tuple(names[i] for i in order),
            series=tuple(series[i] for i in order),
            holidays=holidays,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form stored in the spec."""
        return {
            "events": [
                [_date(d).isoformat(), n, s]
                for d, n, s in zip(self.days, self.names, self.series, strict=True)
            ],
            "holidays": self.holidays,
            "closures": list(self.closures),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EventCalendar:
        """Inverse of :meth:`to_dict`."""
        rows = data.get("events", [])
        return cls(
            days=tuple(_day(dt.date.fromisoformat(r[0])) for r in rows),
            names=tuple(str(r[1]) for r in rows),
            series=tuple(None if r[2] is None else str(r[2]) for r in rows),
            holidays=data.get("holidays"),
            closures=tuple(data.get("closures", ())),
        )

    def describe(self) -> dict[str, Any]:
        """For ``tsengine info``: counts, not every date."""
        return {
            "events": len(self.days),
            "series_events": sum(s is not None for s in self.series),
            "holidays": self.holidays,
            "closures": list(self.closures),
        }

    def foreign_series(self, known: pl.Series) -> dict[str, int]:
        """Series ids of the calendar's own events that ``known`` lacks, with their event counts.

        A calendar naming a series the training data does not have is often a
        misspelt id, whose events would never apply; training notes it rather
        than refusing, since the series may still be posted at prediction.
        """
        seen = set(known.cast(pl.String).to_list())
        counts: dict[str, int] = {}
        for sid in self.series:
            if sid is not None and sid not in seen:
                counts[sid] = counts.get(sid, 0) + 1
        return counts

    def rows(self, first_day: int, last_day: int) -> pl.DataFrame:
        """Events between two days (inclusive), one row per event: ``sid``, ``day``, ``name``.

        Holidays are generated for the years spanned.
        """
        frame = pl.DataFrame(
            {"sid": list(self.series), "day": list(self.days), "name": list(self.names)},
            schema={"sid": pl.String, "day": pl.Int64, "name": pl.String},
        )
        if self.holidays:
            first, last = _date(first_day).year, _date(last_day).year
            years = tuple(range(max(first, HOLIDAY_YEARS[0]), min(last, HOLIDAY_YEARS[1]) + 1))
            frame = pl.concat([frame, _country_holidays(self.holidays, years)])
        return frame.filter(pl.col("day").is_between(first_day, last_day)).unique()

    def table(self, first_day: int, last_day: int) -> pl.DataFrame:
        """Events between two days (inclusive), one row per (series, day): ``sid``, ``day``, ``name``, ``n``.

        Same-day events are merged: names joined with ``"; "`` in name order,
        ``n`` counting them.
        """
        return (
            self.rows(first_day, last_day)
            .sort("sid", "day", "name", nulls_last=False)
            .group_by("sid", "day", maintain_order=True)
            .agg(pl.col("name").str.join("; "), pl.len().cast(pl.Float64).alias("n"))
        )


def clip_days(step: TimeStep) -> int:
    """Days beyond which "days to/since an event" are one value: two steps, at least two weeks."""
    step_days = step.months * 31 if step.is_calendar else step.micros // 86_400_000_000
    return int(max(MIN_CLIP_DAYS, 2 * step_days))


def model_spec(spec: TimeSeriesSpec) -> TimeSeriesSpec:
    """``spec`` with the event columns among its known-in-advance features, when it has a calendar.

    The deployment's own spec keeps the user's features (what clients post);
    models are fitted and asked with this one.
    """
    if spec.calendar is None:
        return spec
    return dataclasses.replace(
        spec,
        known_in_advance=(*spec.known_in_advance, *EVENT_COLUMNS),
        categorical=(*spec.categorical, EVENT_NAME),
    )


def with_events(
    frame: pl.DataFrame, calendar: EventCalendar | None, step: TimeStep, utc_offset: str | None = None
) -> pl.DataFrame:
    """``frame`` (with ``__sid`` and ``__i``) plus the :data:`EVENT_COLUMNS` of each row.

    ``utc_offset`` (``+10:00``, the training data's) turns the grid's UTC
    timestamps back into the local dates events are written in.
    """
    if calendar is None:
        return frame
    sids = frame.get_column(SID)
    idx = frame.get_column(IDX).to_numpy()
    return frame.with_columns(
        event_columns(calendar, step, sids, idx, offset_minutes=utc_offset_minutes(utc_offset))
    )


def event_columns(
    calendar: EventCalendar, step: TimeStep, sids: pl.Series, idx: np.ndarray, *, offset_minutes: int = 0
) -> list[pl.Series]:
    """The event features of rows at grid indices ``idx`` of series ``sids`` (see the module docstring).

    Vectorised: global events are one sorted array, series events one sorted
    array keyed by (series, day); each row costs two binary searches per array.
    The arrays are built once per calendar and span of years
    (:func:`_lookup`), so a request pays the searches only.
    """
    n = len(idx)
    clip = float(clip_days(step))
    if n == 0:
        return _columns(np.zeros(0), pl.Series([], dtype=pl.String), np.zeros(0), np.zeros(0))
    start, end = _period_days(step, np.asarray(idx, dtype=np.int64), offset_minutes)
    margin = int(clip) + 1
    events = _lookup(calendar, _year(int(start.min()) - margin), _year(int(end.max()) + margin))
    count, name_at, to, since = _search(events.days, events.counts, start, end, clip)
    names = _names(events.names, name_at)
    if events.own_codes:
        row_code = _codes(sids, events.own_codes)
        has = row_code >= 0
        base = np.where(has, row_code, 0) * _SPAN + _OFFSET
        c2, at2, to2, since2 = _search(
            events.own_keys, events.own_counts, base + start, base + end, clip, lo=base, hi=base + _SPAN
        )
        c2, to2, since2 = np.where(has, c2, 0.0), np.where(has, to2, clip), np.where(has, since2, clip)
        mine = pl.Series(has & (c2 > 0))
        names = pl.select(pl.when(mine).then(_names(events.own_names, at2)).otherwise(names)).to_series()
        count, to, since = count + c2, np.minimum(to, to2), np.minimum(since, since2)
    return _columns(count, names, to, since)


def _period_days(step: TimeStep, idx: np.ndarray, offset_minutes: int) -> tuple[np.ndarray, np.ndarray]:
    """Local days (since 1970) of each period ``[t, t + step)``: its first day and the day after its last.

    A calendar step ends at the next grid point; a fixed one a step later,
    which on a business-day grid is not the next grid point (a Friday's
    period is not the weekend's).
    """
    shift = offset_minutes * 60_000_000
    if step.is_calendar:
        at = grid_timestamps(step, idx).dt.epoch("us").to_numpy() + shift
        following = grid_timestamps(step, idx + 1).dt.epoch("us").to_numpy() + shift
    else:
        at = step.index_micros(idx) + shift
        following = at + step.micros
    start = at // _DAY_US
    return start, np.maximum(following // _DAY_US, start + 1)


@dataclass(frozen=True, slots=True, eq=False)
class _Lookup:
    """A calendar's events of some years as the sorted arrays :func:`_search` reads."""

    days: np.ndarray  # global events: distinct days, sorted
    counts: np.ndarray  # events on each day
    names: pl.Series  # their names, joined with "; ", and a null last (no event)
    own_codes: dict[str, int]  # series events: series id -> code
    own_keys: np.ndarray  # code * _SPAN + day + _OFFSET, sorted
    own_counts: np.ndarray
    own_names: pl.Series  # as names


@functools.lru_cache(maxsize=64)
def _lookup(calendar: EventCalendar, first_year: int, last_year: int) -> _Lookup:
    """The events of whole years ``first_year`` to ``last_year`` (cached: requests repeat their years)."""
    events = calendar.table(_day(dt.date(first_year, 1, 1)), _day(dt.date(last_year, 12, 31)))
    shared = events.filter(pl.col("sid").is_null())
    own = events.filter(pl.col("sid").is_not_null())
    codes = {s: i for i, s in enumerate(own.get_column("sid").unique(maintain_order=True).to_list())}
    keys = own.get_column("sid").replace_strict(codes, return_dtype=pl.Int64).to_numpy() * _SPAN + (
        own.get_column("day").to_numpy() + _OFFSET
    )
    return _Lookup(
        days=shared.get_column("day").to_numpy(),
        counts=shared.get_column("n").to_numpy(),
        names=shared.get_column("name").extend_constant(None, 1),
        own_codes=codes,
        own_keys=keys,
        own_counts=own.get_column("n").to_numpy(),
        own_names=own.get_column("name").extend_constant(None, 1),
    )


def _year(day: int) -> int:
    return _date(day).year


def event_weights(rows: pl.DataFrame, share: float) -> pl.Series:
    """Backtest row weights that give event periods (``rows[EVENT] > 0``) the share ``share``.

    With ``k`` of ``n`` scored rows on events, event rows weigh ``share·n/k``
    and the others ``(1 - share)·n/(n - k)``, so the weights still sum to ``n``
    (a model's MASE stays on its usual scale).  Without event rows, or without
    ordinary ones, every weight is 1.
    """
    flag = rows.get_column(EVENT).fill_null(0.0) > 0
    n, k = rows.height, int(flag.sum())
    if k in (0, n):
        return pl.Series("weight", np.ones(n))
    on, off = share * n / k, (1 - share) * n / (n - k)
    return pl.Series("weight", np.where(flag.to_numpy(), on, off))


def event_flags(canon: pl.DataFrame, columns: Iterable[str]) -> tuple[str, ...]:
    """The columns among ``columns`` that are event flags: numeric, only 0 and 1, set on few rows.

    A client that posts a ``holiday`` column instead of a calendar should get
    the same protection from a backtest that happens to span the holidays.
    "Few" is at most :data:`MAX_FLAG_SHARE` of the rows with a target, and at
    least one.
    """
    observed = canon.filter(pl.col(Y).is_not_null())
    numeric = [c for c in columns if c in canon.columns and canon.schema[c].is_numeric()]
    if not numeric or observed.height == 0:
        return ()
    binary = observed.select(((pl.col(c) == 0) | (pl.col(c) == 1)).all().alias(c) for c in numeric).row(0)
    shares = observed.select((pl.col(c) == 1).mean().alias(c) for c in numeric).row(0)
    return tuple(
        c
        for c, only01, share in zip(numeric, binary, shares, strict=True)
        if only01 and share is not None and 0 < share <= MAX_FLAG_SHARE
    )


def weigh_events(results: list[B], canon: pl.DataFrame, flags: Sequence[str] = ()) -> list[B]:
    """Backtests with an ``EVENT`` count and a ``weight`` column (see :func:`event_weights`).

    A row's events are the calendar's (``canon[EVENT]``, when there is a
    calendar) plus the event ``flags`` set on it (see :func:`event_flags`).
    The share event periods should have is their share of the training rows
    with a target: how often they come up in the long run.
    """
    count = pl.sum_horizontal(
        *(
            pl.col(c).fill_null(0.0).cast(pl.Float64)
            for c in (*([EVENT] if EVENT in canon.columns else []), *flags)
        )
    )
    marks = canon.select(SID, IDX, count.alias(EVENT), pl.col(Y).is_not_null().alias("__observed"))
    observed = marks.filter(pl.col("__observed"))
    share = float((observed.get_column(EVENT) > 0).mean()) if observed.height else 0.0  # type: ignore[arg-type]
    marks = marks.drop("__observed")
    scored = pl.col("y").is_not_null() & pl.col("yhat").is_finite()
    out = []
    for result in results:
        rows = result.rows.drop(EVENT, "weight", strict=False).join(
            marks, on=[SID, IDX], how="left", maintain_order="left"
        )
        mask = rows.select(scored).to_series().to_numpy()
        weight = np.zeros(rows.height)  # unscored rows weigh nothing
        weight[mask] = event_weights(rows.filter(scored), share).to_numpy()
        out.append(dataclasses.replace(result, rows=rows.with_columns(pl.Series("weight", weight))))
    return out


def _search(
    keys: np.ndarray,
    counts: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    clip: float,
    *,
    lo: np.ndarray | None = None,
    hi: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row: events in ``[start, end)``, the first one's position, days to the next and since the last.

    ``lo``/``hi`` bound each row's own key range (series events), so a search
    never reads another series' events.
    """
    n = len(start)
    if keys.size == 0:
        return np.zeros(n), np.full(n, -1), np.full(n, clip), np.full(n, clip)
    first = np.searchsorted(keys, start, side="left")
    stop = np.searchsorted(keys, end, side="left")
    cum = np.concatenate([[0.0], np.cumsum(counts)])
    count = cum[stop] - cum[first]
    name_at = np.where(stop > first, first, -1)
    upper = np.inf if hi is None else hi
    lower = -np.inf if lo is None else lo
    nxt = keys[np.minimum(first, keys.size - 1)].astype(np.float64)
    to = np.where((first < keys.size) & (nxt < upper), nxt - start, clip)
    # the latest event on or before the period's first day
    last = np.searchsorted(keys, start, side="right") - 1
    prev = keys[np.maximum(last, 0)].astype(np.float64)
    since = np.where((last >= 0) & (prev >= lower), start - prev, clip)
    return count, name_at, np.minimum(to, clip), np.minimum(since, clip)


def _names(names: pl.Series, at: np.ndarray) -> pl.Series:
    """The names at positions ``at`` of ``names``, whose last entry is null (``at`` -1: no event)."""
    return names[np.where(at >= 0, at, names.len() - 1)]  # indexing: a third of gather's cost here


def _columns(count: np.ndarray, names: pl.Series, to: np.ndarray, since: np.ndarray) -> list[pl.Series]:
    return [
        pl.Series(EVENT, count, dtype=pl.Float64),
        names.alias(EVENT_NAME),
        pl.Series(DAYS_TO, to, dtype=pl.Float64),
        pl.Series(DAYS_SINCE, since, dtype=pl.Float64),
    ]


def _codes(sids: pl.Series, codes: dict[str, int]) -> np.ndarray:
    text = sids.cast(pl.String)
    return text.replace_strict(codes, default=-1, return_dtype=pl.Int64).to_numpy()


_EPOCH = dt.date(1970, 1, 1)


def _day(date: dt.date) -> int:
    return (date - _EPOCH).days


_DAYS = (_day(dt.date.min), _day(dt.date.max))


def _date(day: int) -> dt.date:
    return _EPOCH + dt.timedelta(days=int(min(max(day, _DAYS[0]), _DAYS[1])))


@functools.lru_cache(maxsize=32)
def _country_holidays(spec: str, years: tuple[int, ...]) -> pl.DataFrame:
    """The holidays of ``COUNTRY[-SUBDIV]`` or a financial market in ``years`` as global events.

    Cached: requests repeat years.  Market codes (``NYSE``, ``XNYS``, ``LSE``,
    ``ECB``; ``holidays.list_supported_financial()``) name exchange calendars,
    which differ from public ones (NYSE closes on Good Friday, not on Columbus
    Day); no market code is also a country code.
    """
    import holidays as holidays_lib  # noqa: PLC0415 - only deployments with holidays pay the import

    country, _, subdiv = spec.partition("-")
    try:
        if not subdiv and country.upper() in holidays_lib.list_supported_financial():
            table = holidays_lib.financial_holidays(country.upper(), years=list(years))
        else:
            table = holidays_lib.country_holidays(country.upper(), subdiv=subdiv or None, years=list(years))
    except NotImplementedError as exc:
        msg = f"holidays {spec!r}: {exc} (give COUNTRY, COUNTRY-SUBDIV or a market, e.g. US, US-CA or NYSE)"
        raise ParameterError(msg) from exc
    days, names = [], []
    for date, joined in sorted(table.items()):
        for name in str(joined).split("; "):
            days.append(_day(date))
            names.append(name)
    return pl.DataFrame(
        {"sid": [None] * len(days), "day": days, "name": names},
        schema={"sid": pl.String, "day": pl.Int64, "name": pl.String},
    )


_DATE_NAMES = ("date", "day", "datetime", "timestamp")
_NAME_NAMES = ("event", "event name", "event_name", "name", "holiday")


def _read(calendar: Any) -> pl.DataFrame:
    if isinstance(calendar, pl.DataFrame):
        return calendar
    if isinstance(calendar, str | Path):
        try:
            return pl.read_csv(calendar, infer_schema=False)
        except (OSError, pl.exceptions.PolarsError) as exc:
            msg = f"calendar file {str(calendar)!r} could not be read as CSV: {exc}"
            raise ParameterError(msg) from exc
    from tsengine.io import to_polars  # noqa: PLC0415 - pandas frames, at the edge

    return to_polars(calendar)


def _parse_date(text: str | None) -> dt.date | None:
    if not text:
        return None
    try:
        return dateutil_parser.parse(text).date()
    except (ValueError, OverflowError):
        return None


def _pick(columns: list[str], wanted: Iterable[str], position: int) -> str | None:
    lower = {c.lower(): c for c in columns}
    for name in wanted:
        if name in lower:
            return lower[name]
    return columns[position] if len(columns) > position else None


def _series_text(sid: pl.Series) -> pl.Series:
    """Calendar series ids as text, integral floats as integers (``3.0`` names series ``3``, as posted ids do)."""
    if sid.dtype.is_float() and bool((sid.drop_nulls().round(0) == sid.drop_nulls()).all()):
        return sid.cast(pl.Int64).cast(pl.String)
    return sid.cast(pl.String)


def _parse(
    frame: pl.DataFrame, series_id_column: str | None
) -> tuple[list[int], list[str], list[str | None]]:
    """Dates, names and series of a calendar frame: ``date[, event name[, series id]]``.

    Columns are found by name (``date``, ``event``/``name``, the deployment's
    series id column) or else by position; without a name column every date
    is an event called ``event``.
    """
    cols = frame.columns
    date_col = _pick(cols, _DATE_NAMES, 0)
    if date_col is None:
        msg = "calendar has no columns: it needs a date and, optionally, an event name and a series id"
        raise ParameterError(msg)
    sid_col = series_id_column if series_id_column in cols and series_id_column != date_col else None
    rest = [c for c in cols if c not in (date_col, sid_col)]
    name_col = _pick(rest, _NAME_NAMES, 0)
    if sid_col is None:
        others = [c for c in rest if c != name_col]
        sid_col = others[0] if others else None
    text = frame.get_column(date_col).cast(pl.String).str.strip_chars()
    parsed = text.str.to_datetime(strict=False, time_unit="us").dt.date()
    if parsed.is_null().any():  # formats polars does not infer (12/25/2020, 25 Dec 2020): dateutil
        parsed = pl.Series([_parse_date(v) for v in text.to_list()], dtype=pl.Date)
    bad = parsed.is_null()
    if bad.any():
        row = int(bad.arg_max())  # type: ignore[arg-type]
        msg = f"calendar column {date_col!r}: row {row + 1} holds {text[row]!r}, not a date"
        raise ParameterError(msg)
    if name_col is None:  # a calendar of dates alone: every one is an "event"
        frame = frame.with_columns(pl.lit("event").alias("__name"))
        name_col = "__name"
    names = frame.get_column(name_col).cast(pl.String).str.strip_chars()
    empty = names.is_null() | (names == "")
    if empty.any():
        row = int(empty.arg_max())  # type: ignore[arg-type]
        msg = f"calendar column {name_col!r}: row {row + 1} has no event name"
        raise ParameterError(msg)
    series: list[str | None] = (
        [None] * frame.height
        if sid_col is None
        else [None if v in (None, "") else str(v) for v in _series_text(frame.get_column(sid_col)).to_list()]
    )
    days = parsed.cast(pl.Int32).to_list()
    return [int(d) for d in days], names.to_list(), series
