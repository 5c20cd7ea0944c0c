"""Datetimes in their original format: read as posted, written back as posted.

Split from :mod:`tsengine.timestep` because a datetime's format is independent
of the time grid: validation parses the datetime column and infers its format,
the output writes generated rows in that format, and request parameters (the
forecast point, range bounds) parse single timestamps, none of it needing a
:class:`~tsengine.timestep.TimeStep`.  Everything is naive UTC inside.
"""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import polars as pl
from dateutil import parser as _dateutil_parser

from tsengine.errors import DatetimeParseError, ParameterError, short_list

__all__ = ["format_datetimes", "offset_minutes", "parse_datetimes", "parse_timestamp", "utc_offset_minutes"]

# Candidate formats, most specific first within a family.  Month-first precedes
# day-first so that an all-ambiguous column stays month-first [ours, spec §2];
# a value with a first field above 12 fails month-first and so selects day-first.
_FORMATS: tuple[str, ...] = (
    "%Y-%m-%d",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%dT%H:%M:%S%.fZ",
    "%Y-%m-%dT%H:%MZ",
    "%Y-%m-%dT%H:%M:%S%:z",
    "%Y-%m-%dT%H:%M:%S%.f%:z",
    "%Y-%m-%d %H:%M:%S%:z",
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%d %H:%M:%S%z",
    "%Y/%m/%d",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%m/%d/%Y",
    "%d/%m/%Y",
    "%m/%d/%Y %H:%M",
    "%d/%m/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M:%S",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%y",
    "%d/%m/%y",
    "%d.%m.%Y",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y %H:%M:%S",
    "%m-%d-%Y",
    "%d-%m-%Y",
    "%d %b %Y",
    "%b %d %Y",
    "%d-%b-%Y",
    "%Y%m%d",
    "%Y-%m",
    "%Y/%m",
    "%Y %b",
    "%b %Y",
    "%Y %B",
    "%B %Y",
    "%b-%Y",
    "%Y-%b",
    "%Y Q%q",
    "%YQ%q",
    "%Y-Q%q",
    "Q%q %Y",
    "%G-W%V",
    "%G W%V",
    "%GW%V",
    "%Y",
)
# Period labels a forecast point or range bound may also be written in, as the
# data's own column is (``2013 Q3``, ``2005 May``, ``2024-W05``): each names one
# period unambiguously, unlike day/month orders, so no deployment format is needed.
_PERIOD_LABELS: tuple[str, ...] = tuple(
    f for f in _FORMATS if "%q" in f or "%V" in f or "%b" in f or "%B" in f
) + ("%d %b %Y", "%d-%b-%Y")
# Letters no ISO 8601 timestamp holds (it has only T and Z): a label, or nothing.
_NOT_ISO = re.compile(r"[a-su-yA-SU-Y]")
_WEEK_LABEL = re.compile(r"^\d{4}[- ]?W\d{1,2}$", re.IGNORECASE)
_QUARTER_LABEL = re.compile(r"^\d{4}[- ]?Q\d{1,2}$", re.IGNORECASE)
_FALLBACK_FORMAT = "%Y-%m-%dT%H:%M:%S%.f"
_SAMPLE = 512


def _has_zone(fmt: str) -> bool:
    return "%z" in fmt or "%:z" in fmt


def _quarter_regex(fmt: str) -> str:
    """A regex with groups (year, quarter) for a quarter-label format such as ``%Y Q%q``."""
    body = re.escape(fmt).replace("%Y", r"(?P<y>\d{4})").replace("%q", r"(?P<q>[1-4])")
    return f"^{body}$"


def _parse_quarters(values: pl.Series, fmt: str) -> pl.Series:
    """Quarter labels (``1960 Q1``: R's yearquarter, pandas' Period) to each quarter's first day.

    ``%q`` is ours, not strftime's: chrono has no quarter directive.
    """
    parts = values.str.extract_groups(_quarter_regex(fmt)).struct.unnest()
    return (
        parts.select(
            pl.date(pl.col("y").cast(pl.Int32), pl.col("q").cast(pl.Int8) * 3 - 2, 1).cast(pl.Datetime("us"))
        )
        .to_series()
        .alias(values.name)
    )


def _parse_weeks(values: pl.Series, fmt: str) -> pl.Series:
    """ISO week labels (``2024-W05``, R's yearweek ``2024 W05``) to each week's Monday.

    A planning calendar's week: ISO 8601 weeks start on Monday and week 1 holds
    the year's first Thursday, so the Monday of week ``w`` of ISO year ``y`` is
    the Monday on or before 4 January plus ``w - 1`` weeks.  A week the year
    does not have (``2021-W53``) is null, so the column is refused naming it.
    ``%G``/``%V`` are strftime's ISO year and week: output writes them back as is.
    """
    body = re.escape(fmt).replace("%G", r"(?P<y>\d{4})").replace("%V", r"(?P<w>\d{1,2})")
    parts = values.str.extract_groups(f"^{body}$").struct.unnest()
    year, week = pl.col("y").cast(pl.Int32), pl.col("w").cast(pl.Int32)
    jan4 = pl.date(year, 1, 4)
    monday = jan4 - pl.duration(days=jan4.dt.weekday() - 1) + pl.duration(weeks=week - 1)
    valid = (monday.dt.iso_year() == year) & (monday.dt.week() == week)
    return parts.select(pl.when(valid).then(monday.cast(pl.Datetime("us")))).to_series().alias(values.name)


def _parse_format(values: pl.Series, fmt: str) -> pl.Series | None:
    """Parse with one format; values that do not fit become null (None: unusable format)."""
    if "%q" in fmt:
        return _parse_quarters(values, fmt)
    if "%V" in fmt:
        return _parse_weeks(values, fmt)
    try:
        if "%d" in fmt or "%H" in fmt:
            parsed = values.str.to_datetime(fmt, strict=False, time_unit="us", exact=True)
        else:  # month- or year-only formats: chrono needs a day, to_date supplies it
            parsed = values.str.to_date(fmt, strict=False, exact=True).cast(pl.Datetime("us"))
    except pl.exceptions.PolarsError:
        return None
    # chrono's %Y takes any number of digits, so ``%Y/%m/%d`` would read the
    # two-digit-year ``01/09/18`` as year 1; a four-digit field is what %Y means.
    if "%Y" in fmt:
        parsed = (
            parsed.to_frame("t")
            .select(pl.when(pl.col("t").dt.year().is_between(1000, 9999)).then(pl.col("t")))
            .to_series()
        )
    return parsed


def _try_format(values: pl.Series, fmt: str) -> pl.Series | None:
    """Parse with one format, or None when any non-null value does not fit."""
    parsed = _parse_format(values, fmt)
    if parsed is None or parsed.null_count() != values.null_count():
        return None
    if _has_zone(fmt) or getattr(parsed.dtype, "time_zone", None) is not None:
        parsed = parsed.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    return parsed.alias(values.name)


def _closest_format_misses(text: pl.Series, candidates: tuple[str, ...]) -> list[int]:
    """Rows that fail the format most values fit: the likely culprits of a bad column."""
    best: list[int] | None = None
    for fmt in candidates:
        parsed = _parse_format(text, fmt)
        if parsed is None:
            continue
        misses = np.flatnonzero(parsed.is_null().to_numpy()).tolist()
        if best is None or len(misses) < len(best):
            best = misses
    return best or []


def parse_datetimes(
    values: pl.Series, *, column: str, preferred_format: str | None = None
) -> tuple[pl.Series, str]:
    """Parse a datetime column to naive UTC microseconds and infer its format.

    The format is inferred once for the whole column from all its values (a
    sample first, to keep the search cheap); at prediction time the format seen
    at training is tried first, because a short posted history is often
    ambiguous (``01/02/2018``) where the training data was not.

    Args:
        values: the column as posted (strings, dates, datetimes or integers).
        column: its name, for messages.
        preferred_format: the training format, tried first.

    Returns:
        ``(timestamps, format)``; the format is a strftime pattern.

    Raises:
        DatetimeParseError: naming the first unparseable rows.
    """
    if values.dtype == pl.Date:
        return values.cast(pl.Datetime("us")), "%Y-%m-%d"
    if isinstance(values.dtype, pl.Datetime):
        out = values
        if values.dtype.time_zone is not None:
            out = out.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        out = out.cast(pl.Datetime("us"))
        midnight = bool((out.dt.truncate("1d") == out).all())
        return out, "%Y-%m-%d" if midnight else "%Y-%m-%d %H:%M:%S"
    text = values.cast(pl.String).str.strip_chars()
    text = (
        text.to_frame("v").select(pl.when(pl.col("v") != "").then(pl.col("v"))).to_series().alias(values.name)
    )
    if text.null_count():
        rows = np.flatnonzero(text.is_null().to_numpy()).tolist()
        msg = f"column {column!r} has empty datetime values in rows {short_list(rows)}"
        raise DatetimeParseError(msg)
    sample = text.head(_SAMPLE)
    candidates = ((preferred_format,) if preferred_format else ()) + _FORMATS
    for fmt in candidates:
        on_sample = _try_format(sample, fmt)
        if on_sample is None:
            continue
        parsed = on_sample if sample.len() == text.len() else _try_format(text, fmt)
        if parsed is not None:
            return parsed, _offset_style(text, fmt)
    return _parse_with_dateutil(text, column, candidates), _FALLBACK_FORMAT


def _offset_style(text: pl.Series, fmt: str) -> str:
    """``%z`` rather than ``%:z`` when the values write offsets as ``+0200``.

    chrono reads both spellings with either directive, so the search cannot tell
    them apart; the original format must write generated rows as the client did.
    """
    if "%:z" in fmt and _NO_COLON_OFFSET.search(str(text[0])):
        return fmt.replace("%:z", "%z")
    return fmt


_NO_COLON_OFFSET = re.compile(r"[+-]\d{4}$")


_DEFAULT_A, _DEFAULT_B = dt.datetime(2001, 1, 1), dt.datetime(2002, 2, 2)


def _parse_with_dateutil(text: pl.Series, column: str, candidates: tuple[str, ...]) -> pl.Series:
    """Last resort for formats outside the table: dateutil, value by value.

    Slow (a Python loop), but reached only for exotic formats; the output then
    writes ISO timestamps as the original format.  dateutil fills a missing
    year, month or day from a default date (today, unless told), so each value
    is parsed with two defaults: a value that lacks part of its date reads
    differently under each and is rejected rather than silently dated today.
    """
    out: list[dt.datetime | None] = []
    bad: list[int] = []
    for i, value in enumerate(text.to_list()):
        try:
            parsed = _dateutil_parser.parse(value, default=_DEFAULT_A)
            if parsed != _dateutil_parser.parse(value, default=_DEFAULT_B):
                raise ValueError(value)  # incomplete date: handled as unparseable
        except (ValueError, OverflowError, TypeError):
            bad.append(i)
            out.append(None)
            continue
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
        out.append(parsed)
    if bad:
        # One typo in a column of a known format: name that row, not every value
        # dateutil also dislikes.
        closest = _closest_format_misses(text, candidates)
        if closest and len(closest) < len(bad):
            bad = closest
        examples = short_list([f"row {i}: {text[i]!r}" for i in bad], quote=False)
        msg = (
            f"column {column!r} has values that are not datetimes ({examples}); "
            "use a format such as 2018-01-09 or 2018-01-09T13:00:00Z"
        )
        raise DatetimeParseError(msg)
    return pl.Series(text.name, out, dtype=pl.Datetime("us"))


def offset_minutes(zone: str) -> int:
    """A written UTC offset in minutes: ``+10:00`` → 600, ``-05:30`` → -330.

    Raises:
        ValueError: the hours or minutes are not digits.
    """
    sign = -1 if zone.startswith("-") else 1
    return sign * (int(zone[1:3]) * 60 + int(zone[4:6]))


def utc_offset_minutes(utc_offset: str | None) -> int:
    """``+10:00`` → 600, ``-05:30`` → -330; None or malformed → 0 (UTC)."""
    if not utc_offset or len(utc_offset) < 6 or utc_offset[0] not in "+-":
        return 0
    try:
        return offset_minutes(utc_offset)
    except ValueError:
        return 0


def format_datetimes(ts: pl.Expr, fmt: str, *, utc_offset: str | None = None) -> pl.Expr:
    """Write naive UTC timestamps in a strftime format.

    Args:
        ts: naive UTC datetimes.
        fmt: the column's original format.
        utc_offset: for formats with a zone, the offset to write (``+02:00``):
            the one the client used, so generated rows read like posted ones.
    """
    # chrono's %.f writes nothing for a zero fraction; clients that write
    # fractions write them on every value, so generated rows keep six digits.
    fmt = fmt.replace("%.f", "%.6f")
    if "%q" in fmt:
        quarter = ts.dt.quarter().cast(pl.String)
        return ts.dt.strftime(fmt.replace("%q", "{q}")).str.replace("{q}", quarter, literal=True)
    if fmt.endswith("Z") or not _has_zone(fmt):
        return ts.dt.strftime(fmt)
    # Shift and write the offset as text: polars' time zones reject fixed offsets
    # that are not whole hours (India's +05:30), which clients do send.
    zone = utc_offset or "+00:00"
    minutes = offset_minutes(zone)
    pattern = fmt.replace("%:z", zone).replace("%z", zone.replace(":", ""))
    return (ts + pl.duration(minutes=minutes)).dt.strftime(pattern)


def _no_such_period(name: str, text: str) -> str | None:
    """Why a week or quarter label names no period (``2016 W53``: 2016 has 52 ISO weeks), if it does not."""
    digits = [int(d) for d in re.findall(r"\d+", text)]
    if len(digits) != 2:
        return None
    year, number = digits
    if _QUARTER_LABEL.match(text) and not 1 <= number <= 4:
        return f"{name}: {text!r} names no quarter: quarters are Q1 to Q4"
    if _WEEK_LABEL.match(text) and 1 <= year <= 9999:
        weeks = dt.date(year, 12, 28).isocalendar().week  # 28 December is always in the year's last week
        if not 1 <= number <= weeks:
            return f"{name}: {text!r} names no week: {year} has ISO weeks W01 to W{weeks}"
    return None


def _not_a_datetime(name: str, value: object) -> str:
    return (
        f"{name}: {value!r} is not a datetime; use ISO 8601 such as 2018-01-09 "
        "or 2018-01-09T00:00:00Z, or a period label such as 2018 Q1, 2018 Jan or 2018-W02"
    )


def _parse_iso(text: str, *, name: str, value: object) -> dt.datetime:
    """ISO 8601 as Python reads it, else as dateutil does (nanoseconds, odd offsets)."""
    try:
        return dt.datetime.fromisoformat(text.replace(" ", "T", 1) if len(text) > 10 else text)
    except ValueError:
        try:
            return _dateutil_parser.isoparse(text)
        except (ValueError, OverflowError) as exc:
            raise ParameterError(_not_a_datetime(name, value)) from exc


def _period_label(text: str) -> dt.datetime | None:
    """The first instant of a period label (``2013 Q3``, ``2005 May``, ``2024-W05``), or None."""
    value = pl.Series([text])
    for fmt in _PERIOD_LABELS:
        parsed = _parse_format(value, fmt)
        if parsed is not None and parsed[0] is not None:
            return parsed[0]  # type: ignore[no-any-return]
    return None


def parse_timestamp(value: str | dt.datetime | dt.date, *, name: str) -> dt.datetime:
    """Parse one forecast point or range bound to naive UTC.

    Accepts what clients send: naive ISO, ``Z``, offsets, microseconds (and
    nanoseconds, truncated), date-only, and the client default
    ``2262-04-11T23:47:16.854775+00:00``.  Quarterly, monthly and weekly data
    are often dated by labels (``2013 Q3``, ``2005 May``, ``2024-W05``), and a
    client that posts them may well name its forecast point the same way, so
    those unambiguous period labels are read too (as the period's first day).

    Raises:
        ParameterError: naming the parameter and the value.
    """
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, dt.date):
        parsed = dt.datetime(value.year, value.month, value.day)
    else:
        text = value.strip()
        label = _period_label(text) if _NOT_ISO.search(text) else None
        # Python would read a bare week label itself, rolling a week the year
        # lacks (2021-W53) into the next year: the label parser refused it.
        if label is None and (_WEEK_LABEL.match(text) or _QUARTER_LABEL.match(text)):
            raise ParameterError(_no_such_period(name, text) or _not_a_datetime(name, value))
        parsed = label or _parse_iso(text, name=name, value=value)
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
        except OverflowError as exc:  # 9999-12-31T23:59-01:00 is past datetime.max in UTC
            msg = f"{name}: {value!r} is out of the supported datetime range"
            raise ParameterError(msg) from exc
    return parsed
