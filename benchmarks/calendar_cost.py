"""What an event calendar and holiday closures cost a request, against baselines in the same run.

Real data: the S&P 500's trading days (``fixtures/sp500_trading_days.csv``),
LightGBM deployments with a forecast window of ten trading days, trained
without a calendar, with ``--holidays US`` and with ``--holidays NYSE`` (which
closes the grid on every NYSE holiday).  Three measurements:

1. One-series requests (100 history rows, in process: parse, predict, render
   CSV): p50/p99 latency and forecast rows/s per deployment; the calendar-free
   deployment is the baseline.
2. The grid arithmetic of a closed grid (``TimeStep.index_micros`` and
   ``micros_index``) against numpy's busday functions given the same holidays,
   on 1,000 and 100,000 indices; results checked equal.
3. The event features of 1,000 and 100,000 rows with the per-calendar lookup
   cached (as served) against rebuilding it for every call (as before).

Run on a quiet machine: ``python benchmarks/calendar_cost.py`` (about a minute);
results land in ``benchmarks/results/calendar_cost.md``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from _env import package_versions
from _measure import Stats, repeat, stats

import tsengine
from api.app import _predict_and_render
from api.parsing import Payload
from tsengine import events
from tsengine.options import PredictOptions

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "fixtures" / "sp500_trading_days.csv"
RESULTS = ROOT / "benchmarks" / "results"
HORIZON = 10
EPOCH = np.datetime64("1601-01-01", "D")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def train(data: pl.DataFrame, holidays: str | None) -> Any:
    return tsengine.train(
        data,
        target="close",
        datetime_column="date",
        holidays=holidays,
        models=["lightgbm"],
        forecast_window=[1, HORIZON],
    )


def bench_requests(deployments: dict[str, Any], body: bytes, n: int, budget: float) -> dict[str, Stats]:
    """Interleaved rounds, so a busy moment of the machine hits every deployment alike."""
    options = PredictOptions()
    payload = Payload(body, "text/csv")
    times: dict[str, list[float]] = {name: [] for name in deployments}
    for _ in range(5):
        for name, dep in deployments.items():
            times[name] += repeat(
                lambda d=dep: _predict_and_render(d, payload, options, "csv"), n=n // 5, budget=budget / 5
            )
    return {name: stats(t) for name, t in times.items()}


def bench_grid(step: Any, n: int, budget: float) -> dict[str, Any]:
    """Closed-grid index arithmetic: tsengine's against numpy's busday functions with holidays."""
    mask = step.weekmask
    holidays = np.array(step.holidays, dtype="datetime64[D]")
    idx = 100_000 + np.arange(n, dtype=np.int64) % 12_000  # trading days of 1984 to 2030
    ours = step.index_micros(idx)
    days = np.busday_offset(EPOCH, idx, roll="forward", weekmask=mask, holidays=holidays)
    theirs = days.astype(np.int64) * 86_400_000_000 + step.day_start_us
    assert np.array_equal(ours, theirs), "index_micros differs from numpy's busday_offset"
    back, on_grid = step.micros_index(ours)
    assert np.array_equal(back, idx)
    assert bool(on_grid.all())
    assert np.array_equal(back, np.busday_count(EPOCH, days, weekmask=mask, holidays=holidays))
    reps = max(3, 20_000 // n)
    tsengine_s = repeat(lambda: step.micros_index(step.index_micros(idx)), n=reps, budget=budget)

    def numpy_busday() -> None:
        d = np.busday_offset(EPOCH, idx, roll="forward", weekmask=mask, holidays=holidays)
        np.busday_count(EPOCH, d, weekmask=mask, holidays=holidays)
        np.is_busday(d, weekmask=mask, holidays=holidays)

    numpy_s = repeat(numpy_busday, n=reps, budget=budget)
    return {"n": n, "tsengine": stats(tsengine_s), "numpy": stats(numpy_s)}


def bench_events(dep: Any, n: int, budget: float) -> dict[str, Any]:
    """Event features of ``n`` rows: the cached lookup (served) against one rebuilt per call."""
    calendar, step = dep.spec.calendar, dep.spec.time_step
    idx = np.arange(110_000, 110_000 + n, dtype=np.int64) % 5_000 + 108_000  # about 19 years of days
    sids = pl.Series(["__single__"] * n)
    reps = max(3, 20_000 // n)
    cached = repeat(lambda: events.event_columns(calendar, step, sids, idx), n=reps, budget=budget)

    def rebuilt() -> None:
        events._lookup.cache_clear()  # what every call paid before the lookup was cached
        events.event_columns(calendar, step, sids, idx)

    uncached = repeat(rebuilt, n=reps, budget=budget)
    return {"n": n, "cached": stats(cached), "rebuilt": stats(uncached)}


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Event calendars and holiday closures: cost per request",
        "",
        f"Run {results['started']}, {os.cpu_count()} cores, load at start "
        f"{', '.join(f'{x:.2f}' for x in results['load'])}; {results['versions']}.",
        f"Data: `fixtures/sp500_trading_days.csv` (504 trading days); LightGBM deployments, FW [1, {HORIZON}].",
        "",
        "## One-series request in process (100 history rows → 10 forecasts, parse + predict + CSV)",
        "",
        "| deployment | time step | closures | p50 ms | p99 ms | forecast rows/s | p50 / no calendar |",
        "|---|---|---|---|---|---|---|",
    ]
    base = results["requests"]["no calendar"].p50
    for name, s in results["requests"].items():
        dep = results["deployments"][name]
        closures = len(dep.spec.calendar.closures) if dep.spec.calendar else 0
        lines.append(
            f"| {name} | {dep.spec.time_step.describe()} | {closures} | {s.p50:.2f} | {s.p99:.2f} | "
            f"{HORIZON / (s.p50 / 1000):,.0f} | {s.p50 / base:.2f} |"
        )
    lines += [
        "",
        f"## Closed-grid index arithmetic (index → timestamp → index), NYSE holidays of {results['years']}",
        "",
        "| indices | tsengine p50 ms | numpy busday with holidays p50 ms | numpy / tsengine |",
        "|---|---|---|---|",
    ]
    for row in results["grid"]:
        lines.append(
            f"| {row['n']:,} | {row['tsengine'].p50:.3f} | {row['numpy'].p50:.3f} | "
            f"{row['numpy'].p50 / row['tsengine'].p50:.1f} |"
        )
    lines += [
        "",
        "Results checked equal to numpy's before timing.",
        "",
        "## Event features (`--holidays NYSE`)",
        "",
        "| rows | cached lookup p50 ms | lookup rebuilt per call p50 ms | rebuilt / cached |",
        "|---|---|---|---|",
    ]
    for row in results["events"]:
        lines.append(
            f"| {row['n']:,} | {row['cached'].p50:.3f} | {row['rebuilt'].p50:.3f} | "
            f"{row['rebuilt'].p50 / row['cached'].p50:.1f} |"
        )
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2_000, help="one-series requests per deployment")
    parser.add_argument("--budget", type=float, default=20.0, help="seconds per measurement at most")
    parser.add_argument("--out", type=Path, default=RESULTS / "calendar_cost.md")
    args, _unknown = parser.parse_known_args()
    data = pl.read_csv(FIXTURE, schema_overrides={"date": pl.String})
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "load": os.getloadavg(),
        "versions": package_versions(["tsengine", "numpy", "polars", "lightgbm", "holidays"]),
    }
    log("training three deployments")
    deployments = {
        "no calendar": train(data, None),
        "--holidays US": train(data, "US"),
        "--holidays NYSE": train(data, "NYSE"),
    }
    results["deployments"] = deployments
    body = data.filter(pl.col("date") <= "2015-12-18").tail(100).write_csv().encode()
    log("one-series requests")
    results["requests"] = bench_requests(deployments, body, args.requests, args.budget)
    nyse = deployments["--holidays NYSE"]
    step = nyse.spec.time_step
    first, last = (str(np.datetime64(d, "D"))[:4] for d in (step.holidays[0], step.holidays[-1]))
    results["years"] = f"{first}-{last} ({len(step.holidays)} closed days)"
    log("grid arithmetic")
    results["grid"] = [bench_grid(step, n, args.budget) for n in (1_000, 100_000)]
    log("event features")
    results["events"] = [bench_events(nyse, n, args.budget) for n in (1_000, 100_000)]
    text = markdown(results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
