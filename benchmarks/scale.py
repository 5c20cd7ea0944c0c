"""Training at scale: time and peak memory from 100 to 100,000 daily series, per stage.

Run ``python benchmarks/scale.py`` (defaults: 100, 300, 1,000, 3,000 and 10,000
series; ``--series 100 1000 100000`` for others; ``--dask local:2`` adds the same
sizes trained on a 2-worker ``LocalCluster``).  Each size is trained in a process
of its own, one at a time, so that its peak RSS (``VmHWM``, plus the workers'
for Dask) is that training's alone.

Data: ``fixtures/flights_daily.csv``'s 12 real daily series tiled into ``N``
series of 2 years (730 days) each (``_data.tiled_years``: copies scaled by a
log-uniform factor, earlier year shifted back with fresh noise).  Training
uses the default candidates and backtests, as ``tsengine train`` does.

Per stage: the time between the progress messages ``train`` emits: validating
data; fitting, then backtesting, each candidate (a LightGBM fit includes its
feature matrix); choosing per series; selection, intervals and the summary.

Results: ``benchmarks/results/scale.md`` and ``scale.png`` (log-log time and peak
RSS against series).  Measurements are merged into
``benchmarks/.cache/scale-results.json``, so a run of one size updates its row.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
RESULTS = HERE / "results"
STORE = CACHE / "scale-results.json"
DEFAULT_SERIES = (100, 300, 1_000, 3_000, 10_000)
TARGET_SERIES, TARGET_SECONDS, TARGET_MB = 10_000, 600.0, 6_144.0


def _peak_mb(pid: int | str = "self") -> float:
    """Peak resident set (VmHWM) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(n_series: int, dask: str | None, out: Path) -> None:
    """Train on ``n_series`` series in this process and write what was measured to ``out``."""
    import _data

    from tsengine.train import train

    t0 = time.perf_counter()
    data = _data.tiled_years(n_series)
    built = time.perf_counter() - t0
    stages: list[tuple[str, float]] = []

    def progress(message: str) -> None:
        stages.append((message, time.perf_counter()))

    with contextlib.ExitStack() as stack:
        client = None
        if dask:
            from tsengine.distributed import connect

            client = stack.enter_context(connect(dask))
        start = time.perf_counter()
        deployment = train(
            data,
            target=_data.TARGET_COL,
            datetime_column=_data.DATETIME_COL,
            series_id_column=_data.SERIES_COL,
            deployment_id=f"scale-{n_series}",
            progress=progress,
            dask=client,
        )
        end = time.perf_counter()
        workers_peak = sum(client.run(lambda: _peak_mb()).values()) if client is not None else 0.0
    breakdown: dict[str, float] = {}
    for (name, at), (_, until) in zip(stages, [*stages[1:], ("end", end)], strict=True):
        breakdown[name] = breakdown.get(name, 0.0) + until - at
    peak = _peak_mb()
    result = {
        "series": n_series,
        "rows": data.height,
        "mode": f"dask {dask}" if dask else "single process",
        "seconds": end - start,
        "data_seconds": built,
        "peak_mb": peak,
        "workers_peak_mb": workers_peak,
        "stages": breakdown,
        "model": deployment.model.kind,
        "leaderboard": [(r["model"], round(r["mase"], 4)) for r in deployment.metadata["leaderboard"]],
        "measured": time.strftime("%Y-%m-%d %H:%M %Z"),
    }
    out.write_text(json.dumps(result))


def _run_child(n_series: int, dask: str | None) -> dict[str, Any]:
    CACHE.mkdir(exist_ok=True)
    out = CACHE / f"scale-{n_series}-{'dask' if dask else 'single'}.json"
    cmd = [sys.executable, __file__, "--child", str(n_series), "--out", str(out)]
    if dask:
        cmd += ["--dask", dask]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=HERE)
    result: dict[str, Any] = json.loads(out.read_text())
    result["wall_seconds"] = time.perf_counter() - started
    return result


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10, 4))
    for mode in sorted({r["mode"] for r in rows}):
        mine = sorted((r for r in rows if r["mode"] == mode), key=lambda r: r["series"])
        xs = [r["series"] for r in mine]
        ax_t.plot(xs, [r["seconds"] for r in mine], "o-", label=mode)
        ax_m.plot(xs, [r["peak_mb"] + r["workers_peak_mb"] for r in mine], "o-", label=mode)
    ax_t.axhline(TARGET_SECONDS, color="grey", linestyle=":", label="10 min")
    ax_m.axhline(TARGET_MB, color="grey", linestyle=":", label="6 GB")
    for ax, label in ((ax_t, "training seconds"), (ax_m, "peak RSS (MB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("daily series (730 days each)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle("tsengine train, default candidates, 2 cores")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _markdown(rows: list[dict[str, Any]]) -> str:
    from _env import package_versions

    lines = [
        "# Training at scale",
        "",
        "Produced by `python benchmarks/scale.py` (see its docstring for the data and method).",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        + package_versions(["polars", "numpy", "lightgbm", "statsmodels", "dask"])
        + ".",
        "",
        "![scaling](scale.png)",
        "",
        "| mode | series | rows | train s | s per 1k series | peak RSS MB | chosen | measured |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["mode"], r["series"])):
        peak = r["peak_mb"] + r["workers_peak_mb"]
        lines.append(
            f"| {r['mode']} | {r['series']:,} | {r['rows']:,} | {r['seconds']:.1f} | "
            f"{1000 * r['seconds'] / r['series']:.1f} | {peak:,.0f} | {r['model']} | {r['measured']} |"
        )
    target = next((r for r in rows if r["series"] == TARGET_SERIES and r["mode"] == "single process"), None)
    lines += ["", "## Target: 10,000 daily series x 2 years in <= 10 min and <= 6 GB peak RSS on 2 cores", ""]
    if target is None:
        lines.append("Not measured in these results.")
    else:
        time_ok, memory_ok = target["seconds"] <= TARGET_SECONDS, target["peak_mb"] <= TARGET_MB
        lines.append(
            f"Measured {target['seconds']:.0f} s (time {'**met**' if time_ok else '**not met**'}) and "
            f"{target['peak_mb']:,.0f} MB peak RSS (memory {'**met**' if memory_ok else '**not met**'})."
        )
    lines += _extrapolated(rows)
    lines += _versus(rows)
    lines += _estimate(rows)
    lines += ["", "## Where the time goes (seconds per stage)", ""]
    for r in sorted(rows, key=lambda r: (r["mode"], r["series"])):
        if r["mode"] != "single process" or r["series"] not in (
            1_000,
            TARGET_SERIES,
            max(x["series"] for x in rows),
        ):
            continue  # on a cluster the candidates run side by side: their spans are not a breakdown
        lines += [f"### {r['mode']}, {r['series']:,} series", "", "| stage | s | share |", "|---|---|---|"]
        for stage, seconds in r["stages"].items():
            lines.append(f"| {stage} | {seconds:.1f} | {100 * seconds / r['seconds']:.0f} % |")
        lines.append("")
    return "\n".join(lines) + "\n"


PER_SERIES_KINDS = ("ets", "theta", "arima", "seasonal_naive")
NIXTLA = "Nixtla's published statsforecast figure: 10 M series on 128 CPUs in about 44 minutes"


def _extrapolated(rows: list[dict[str, Any]]) -> list[str]:
    """Peak RSS at 100,000 series from the slope of the two largest single-process runs."""
    single = sorted((r for r in rows if r["mode"] == "single process"), key=lambda r: r["series"])
    if len(single) < 2 or single[-1]["series"] >= 100_000:
        return []
    a, b = single[-2], single[-1]
    per_series = (b["peak_mb"] - a["peak_mb"]) / (b["series"] - a["series"])
    at = b["peak_mb"] + per_series * (100_000 - b["series"])
    return [
        "",
        f"100,000 series were not run: peak RSS grew {per_series:.2f} MB per series from "
        f"{a['series']:,} to {b['series']:,} series, so about {at / 1024:.0f} GB at 100,000, more than this "
        "machine's 23 GB.",
    ]


def _versus(rows: list[dict[str, Any]]) -> list[str]:
    """Dask against one process at the sizes measured both ways."""
    single = {r["series"]: r for r in rows if r["mode"] == "single process"}
    pairs = [
        (r, single[r["series"]]) for r in rows if r["mode"] != "single process" and r["series"] in single
    ]
    if not pairs:
        return []
    lines = ["", "## Dask LocalCluster against one process (same machine)", ""]
    lines += [
        "| series | mode | train s | single process s | ratio | peak RSS MB (driver + workers) | measured |"
    ]
    lines += ["|---|---|---|---|---|---|---|"]
    for r, s in sorted(pairs, key=lambda p: p[0]["series"]):
        when = (
            r["measured"]
            if r["measured"][:10] == s["measured"][:10]
            else f"{r['measured']} / {s['measured']}"
        )
        lines.append(
            f"| {r['series']:,} | {r['mode']} | {r['seconds']:.1f} | {s['seconds']:.1f} | "
            f"{r['seconds'] / s['seconds']:.2f} | {r['peak_mb'] + r['workers_peak_mb']:,.0f} | {when} |"
        )
    lines += [
        "",
        "Both on the same 2 cores: the cluster cannot be faster here (its two workers share the cores "
        "the single process uses, and add task transfer and a driver); what it buys is that the "
        "per-series candidates spread over as many machines as the cluster has. Runs measured on "
        "different days (two dates) vary by 10-15 % on this shared machine: compare the same-day pairs.",
    ]
    return lines


def _origins(run: dict[str, Any]) -> int:
    """Backtest origins of a run, read from its stage names (``backtesting ets at 3 origin(s)``)."""
    for stage in run["stages"]:
        words = stage.split(" ")
        if words[0] == "backtesting" and "at" in words:
            return int(words[words.index("at") + 1])
    return 0


def _estimate(rows: list[dict[str, Any]]) -> list[str]:
    """The 10-million-series paper estimate, from the largest single-process run's stage times."""
    single = [r for r in rows if r["mode"] == "single process"]
    if not single:
        return []
    big = max(single, key=lambda r: r["series"])
    stat = sum(
        seconds
        for stage, seconds in big["stages"].items()
        if stage.split(" ")[0] in {"fitting", "backtesting"} and stage.split(" ")[1] in PER_SERIES_KINDS
    )
    rest = big["seconds"] - stat
    per_series_ms = 1000 * stat / big["series"]
    total_rows = 10_000_000 * big["rows"] / big["series"]
    lines = [
        "",
        "## Paper estimate: 10 million series",
        "",
        f"From the {big['series']:,}-series run: the statistical candidates ({', '.join(PER_SERIES_KINDS)}; final fit "
        f"and {_origins(big)} backtest refits each) took "
        f"{stat:.0f} s, **{per_series_ms:.1f} ms per series**, on one core (numpy, single-threaded); these are the "
        "stages Dask spreads over partitions of series, and they scale linearly (see the table above). "
        f"The rest ({rest:.0f} s: the global LightGBM and linear candidates, on training rows capped at 600,000 "
        "pairs, plus validation and selection) does not grow with the series count except through "
        "scoring the backtests.",
        "",
        "| machines x cores | statistical candidates, 10 M series |",
        "|---|---|",
    ]
    for machines, cores in ((1, 128), (4, 32), (16, 32), (64, 32)):
        minutes = per_series_ms * 10_000_000 / (machines * cores) / 1000 / 60
        lines.append(f"| {machines} x {cores} = {machines * cores} | {minutes:,.0f} min |")
    lines += [
        "",
        f"For comparison, {NIXTLA}. Our figure counts {len(PER_SERIES_KINDS)} models x {1 + _origins(big)} fits "
        "per series; the global candidates come on top.",
        "",
        "What would bottleneck first, before the CPUs: **the global candidates and the driver**. "
        f"10 M series of this length are {total_rows / 1e9:.1f} billion rows; the driver validates the whole "
        "frame and builds the backtest rows of every candidate (10 M x 28 distances x 3 origins = 840 M rows per "
        "candidate) for selection and intervals, and LightGBM and the linear model are fitted and backtested "
        "on one worker, which must hold the whole panel. Past a few million series these need "
        "to become distributed too: the data read per partition on the workers (not on the driver), "
        "selection from per-partition backtest summaries, and `lightgbm.dask` or a sample of series for the "
        "global models (their training rows are capped at 600,000 pairs anyway).",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--series", type=int, nargs="+", default=list(DEFAULT_SERIES))
    parser.add_argument("--dask", default=None, help="also train on this cluster, e.g. local:2")
    parser.add_argument("--no-single", action="store_true", help="only the Dask runs")
    parser.add_argument("--report-only", action="store_true", help="rewrite the results from the stored runs")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.dask, args.out)
        return
    stored: dict[str, dict[str, Any]] = json.loads(STORE.read_text()) if STORE.exists() else {}
    modes = ([] if args.no_single else [None]) + ([args.dask] if args.dask else [])
    for n_series in [] if args.report_only else args.series:
        for dask in modes:
            print(
                f"training {n_series:,} series ({'dask ' + dask if dask else 'single process'})", flush=True
            )
            result = _run_child(n_series, dask)
            print(f"  {result['seconds']:.1f} s, peak {result['peak_mb']:,.0f} MB", flush=True)
            stored[f"{result['mode']}/{n_series}"] = result
            CACHE.mkdir(exist_ok=True)
            STORE.write_text(json.dumps(stored, indent=1))
    rows = list(stored.values())
    RESULTS.mkdir(exist_ok=True)
    _plot(rows, RESULTS / "scale.png")
    (RESULTS / "scale.md").write_text(_markdown(rows))


if __name__ == "__main__":
    main()
