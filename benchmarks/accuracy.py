"""Accuracy benchmark: tsengine against Nixtla's statsforecast and mlforecast.

Run: ``python benchmarks/accuracy.py [--windows K]`` (the nox session
``bench`` calls it with ``--windows 3``).

For each real data set in ``fixtures/`` the last forecast window of every
series is held out; every method trains on the rest in this same run and
forecasts the held-out window from the same forecast point.  Scores: MASE
(scaled by the in-sample seasonal-naive MAE of each series, mean over series),
sMAPE (mean over rows), empirical coverage of the 80 % interval, fit and
predict wall time.  Every method is scored by ``tsengine.backtest.score`` on
``tsengine.backtest.naive_scales``, the functions behind tsengine's own
backtest leaderboard, so the table and ``tsengine info`` measure alike.  The table is printed and written to
``benchmarks/results/accuracy.md`` with the machine, date and package versions.

One held-out window of 8 to 147 series is a noisy verdict (the best of five
peers is partly the luckiest), so ``--windows K`` repeats the whole comparison
on the K - 1 horizons before the last one as well (train on all but k
horizons, forecast the next one, k = 1..K) and adds a table of MASE averaged
over the K windows.

Peers are configured as their documentation suggests: statsforecast's AutoETS,
AutoARIMA, AutoTheta and SeasonalNaive with the data's season length;
mlforecast's LightGBM on lags 1..season (and 2·season), with the
known-in-advance features as exogenous columns and conformal intervals over
three windows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from _env import package_versions

from tsengine.backtest import naive_scales
from tsengine.backtest import score as backtest_score

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
RESULTS = ROOT / "benchmarks" / "results" / "accuracy.md"
LEVEL = 80


@dataclass(frozen=True)
class DataSet:
    name: str
    file: str
    target: str
    time_col: str
    id_col: str
    freq: str
    season: int
    horizon: int
    kia: tuple[str, ...] = ()
    note: str = ""  # what a reader must know about the held-out window, printed under its table


DATASETS = (
    DataSet(
        "flights_daily",
        "flights_daily.csv",
        "delayed",
        "date",
        "series",
        "D",
        7,
        28,
        ("scheduled", "holiday"),
    ),
    DataSet(
        "us_employment_monthly", "us_employment_monthly.csv", "employed", "month", "series_id", "MS", 12, 12
    ),
    DataSet(
        "tourism_quarterly",
        "tourism_quarterly.csv",
        "takings",
        "quarter_start",
        "state",
        "QS",
        4,
        8,
        note=(
            "The last held-out window (2014 Q3 to 2016 Q2) starts at a documented break in series: from the"
            " September quarter 2014 the ABS added 279 establishments to the survey frame (NSW 73, Victoria 50,"
            " Queensland 105), so data before and after are not strictly comparable (ABS 8635.0, Tourist"
            " Accommodation, Australia, 2014-15, Technical Note). National takings grew -1.5 to +0.7 % a year in"
            " the four quarters to 2014 Q2 and 9.6 to 13.5 % in the four from 2014 Q3. No method fitted on the"
            " quarters before can see the jump: every method's first-window MASE and coverage carry it, and the"
            " windows before it (table below) show the data without it"
        ),
    ),
    DataSet(
        "visnights_quarterly", "visnights_quarterly.csv", "nights", "quarter_start", "region", "QS", 4, 8
    ),
)


def load(ds: DataSet, k: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Long frame in Nixtla's columns (unique_id, ds, y, KIA), split into train and test.

    ``k`` = 1 holds out the last horizon of each series; ``k`` = 2 the one
    before it (and drops the last), and so on.
    """
    df = pd.read_csv(FIXTURES / ds.file, parse_dates=[ds.time_col])
    df = df.rename(columns={ds.id_col: "unique_id", ds.time_col: "ds", ds.target: "y"})
    df = df[["unique_id", "ds", "y", *ds.kia]].sort_values(["unique_id", "ds"]).reset_index(drop=True)
    rank = df.groupby("unique_id").cumcount(ascending=False)
    train = df[rank >= k * ds.horizon]
    test = df[(rank < k * ds.horizon) & (rank >= (k - 1) * ds.horizon)]
    return train.reset_index(drop=True), test.reset_index(drop=True)


def mase_scale(train: pd.DataFrame, season: int) -> pl.DataFrame:
    """Per-series in-sample seasonal-naive MAE: tsengine's own MASE denominator."""
    frame = pl.from_pandas(train[["unique_id", "ds", "y"]]).sort("unique_id", "ds")
    return naive_scales(frame, season, series="unique_id", target="y")


def score(test: pd.DataFrame, pred: pd.DataFrame, scales: pl.DataFrame) -> dict[str, float]:
    """MASE, sMAPE and interval coverage of ``pred`` (unique_id, ds, yhat[, lo, hi]).

    Scored by :func:`tsengine.backtest.score`, the function behind tsengine's
    leaderboard, so every method here is measured exactly as training measures
    its candidates.  A held-out row without a forecast is an error, not a row
    left out of the mean.
    """
    m = test.merge(pred, on=["unique_id", "ds"], how="left")
    missing = m[m["yhat"].isna()]
    if len(missing):
        first = missing.iloc[0]
        raise RuntimeError(
            f"{len(missing)} held-out rows have no forecast, e.g. series {first['unique_id']!r} at {first['ds']}"
        )
    interval = ["lo", "hi"] if "lo" in m and m["lo"].notna().any() else []
    rows = (
        pl.from_pandas(
            m[["unique_id", "ds", "y", "yhat", *interval]].rename(columns={"lo": "low", "hi": "high"})
        )
        .with_columns(pl.col("unique_id").cast(pl.String))
        .sort("unique_id", "ds")
        .with_columns(pl.int_range(1, pl.len() + 1).over("unique_id").alias("distance"))
        .join(scales.with_columns(pl.col("unique_id").cast(pl.String)), on="unique_id", how="left")
    )
    s = backtest_score(rows, series="unique_id", distance="distance")
    return {"mase": s["mase"], "smape": s["smape"], "coverage": s.get("coverage", float("nan"))}


def fit_tsengine(ds: DataSet, train: pd.DataFrame, **options: Any) -> Any:
    """A tsengine deployment of ``ds`` trained on ``train`` (Nixtla's columns), forecasting one horizon."""
    import tsengine

    return tsengine.train(
        train.rename(columns={"unique_id": ds.id_col, "ds": ds.time_col, "y": ds.target}),
        target=ds.target,
        datetime_column=ds.time_col,
        series_id_column=ds.id_col,
        known_in_advance=list(ds.kia),
        forecast_window=(1, ds.horizon),
        **options,
    )


def predict_tsengine(
    ds: DataSet, deployment: Any, history: pd.DataFrame, future: pd.DataFrame
) -> pd.DataFrame:
    """Post ``history`` and the ``future`` rows (no target) as a client would; forecasts in Nixtla's columns.

    Columns ``unique_id``, ``ds``, ``yhat``, ``lo`` and ``hi`` (NaN without intervals).
    """
    posted = pd.concat([history, future.drop(columns="y", errors="ignore")], ignore_index=True)
    request = posted.rename(columns={"unique_id": ds.id_col, "ds": ds.time_col, "y": ds.target})
    request[ds.time_col] = request[ds.time_col].dt.strftime("%Y-%m-%d")
    out = deployment.predict(pl.from_pandas(request))
    return pd.DataFrame(
        {
            "unique_id": out.get_column("seriesId").cast(pl.String).to_list(),
            "ds": pd.to_datetime(out.get_column("timestamp").to_list()).tz_localize(None),
            "yhat": out.get_column("prediction").to_numpy(),
            **{
                key: out.get_column(col).to_numpy() if col in out.columns else np.nan
                for key, col in (("lo", "predictionIntervalLow"), ("hi", "predictionIntervalHigh"))
            },
        }
    )


def run_tsengine(
    ds: DataSet, train: pd.DataFrame, test: pd.DataFrame
) -> tuple[pd.DataFrame, float, float, str]:
    t0 = time.perf_counter()
    dep = fit_tsengine(ds, train, interval_percentile=LEVEL)
    fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = predict_tsengine(ds, dep, train, test)
    predict = time.perf_counter() - t0
    board = ", ".join(f"{r['model']} {r['mase']:.3f}" for r in dep.metadata["leaderboard"])
    origins = len(dep.metadata["training"]["backtest_origins"])
    selection = dep.metadata.get("selection", {})
    desc = dep.model.describe()
    if "weights" in desc:
        members = ", ".join(
            f"{m['kind']} {w:.2f}" for m, w in zip(desc["members"], desc["weights"], strict=True)
        )
        chosen = f"`{dep.model.kind}` ({members})"
    else:
        chosen = f"`{dep.model.kind}`"
    return (
        pred,
        fit,
        predict,
        f"selected {chosen}: {selection.get('reason', '')}; backtest MASE at {origins} origins: {board}",
    )


def run_statsforecast(ds: DataSet, train: pd.DataFrame) -> dict[str, tuple[pd.DataFrame, float, float]]:
    from statsforecast import StatsForecast
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta, SeasonalNaive

    out = {}
    y = train[["unique_id", "ds", "y"]]
    for model in (
        AutoETS(season_length=ds.season),
        AutoARIMA(season_length=ds.season),
        AutoTheta(season_length=ds.season),
        SeasonalNaive(season_length=ds.season),
    ):
        name = repr(model)
        print(f"  {ds.name}: statsforecast {name}", file=sys.stderr, flush=True)
        sf = StatsForecast(models=[model], freq=ds.freq, n_jobs=1)
        t0 = time.perf_counter()
        sf.fit(y)
        fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        fc = sf.predict(h=ds.horizon, level=[LEVEL])
        predict = time.perf_counter() - t0
        fc = fc.reset_index() if "unique_id" not in fc.columns else fc
        pred = fc.rename(columns={name: "yhat", f"{name}-lo-{LEVEL}": "lo", f"{name}-hi-{LEVEL}": "hi"})
        out[f"statsforecast {name}"] = (pred[["unique_id", "ds", "yhat", "lo", "hi"]], fit, predict)
    return out


def run_mlforecast(ds: DataSet, train: pd.DataFrame, test: pd.DataFrame) -> tuple[pd.DataFrame, float, float]:
    import lightgbm as lgb
    from mlforecast import MLForecast
    from mlforecast.utils import PredictionIntervals

    lags = sorted({*range(1, ds.season + 1), 2 * ds.season})
    fcst = MLForecast(
        models={"lgbm": lgb.LGBMRegressor(verbosity=-1, random_state=0, n_estimators=200, n_jobs=1)},
        freq=ds.freq,
        lags=lags,
        date_features=["dayofweek"] if ds.freq == "D" else [],
    )
    t0 = time.perf_counter()
    fcst.fit(train, static_features=[], prediction_intervals=PredictionIntervals(n_windows=3, h=ds.horizon))
    fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    x_df = test[["unique_id", "ds", *ds.kia]] if ds.kia else None
    fc = fcst.predict(ds.horizon, X_df=x_df, level=[LEVEL])
    predict = time.perf_counter() - t0
    pred = fc.rename(columns={"lgbm": "yhat", f"lgbm-lo-{LEVEL}": "lo", f"lgbm-hi-{LEVEL}": "hi"})
    return pred[["unique_id", "ds", "yhat", "lo", "hi"]], fit, predict


def versions() -> str:
    return package_versions(
        ("tsengine", "polars", "numpy", "lightgbm", "statsmodels", "statsforecast", "mlforecast", "pandas")
    )


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


Row = tuple[str, dict[str, float], float, float]


def compare(ds: DataSet, k: int) -> tuple[list[Row], str]:
    """Every method on split ``k`` of ``ds``: score rows (tsengine first) and tsengine's selection note."""
    train, test = load(ds, k)
    scales = mase_scale(train, ds.season)
    print(f"  {ds.name} window {k}: tsengine", file=sys.stderr, flush=True)
    pred, fit, predict, note = run_tsengine(ds, train, test)
    print(f"  {ds.name} window {k}: tsengine fit {fit:.1f}s", file=sys.stderr, flush=True)
    rows: list[Row] = [("**tsengine**", score(test, pred, scales), fit, predict)]
    for name, (p, f, pr) in run_statsforecast(ds, train).items():
        rows.append((name, score(test, p, scales), f, pr))
    print(f"  {ds.name} window {k}: mlforecast", file=sys.stderr, flush=True)
    p, f, pr = run_mlforecast(ds, train, test)
    rows.append(("mlforecast LightGBM", score(test, p, scales), f, pr))
    return rows, note


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--windows", type=int, default=1, help="held-out horizons to average over (default 1)"
    )
    parser.add_argument(
        "--only", default="", help="comma-separated data set names to run, without writing the results file"
    )
    args = parser.parse_args(argv)
    only = {n for n in args.only.split(",") if n}
    if unknown := only - {ds.name for ds in DATASETS}:
        parser.error(f"--only: unknown data set(s) {', '.join(sorted(unknown))}")
    if args.windows < 1:
        parser.error("--windows must be at least 1")
    warnings.filterwarnings("ignore")
    lines = [
        "# Accuracy benchmark",
        "",
        f"Generated by `python benchmarks/accuracy.py --windows {args.windows}` on {dt.date.today().isoformat()}.",
        f"Machine: {cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}.",
        f"Packages: {versions()}.",
        "",
        "Split: the last forecast window of every series is held out (28 days, 12 months, 8 quarters);",
        "every method fits on the rest in the same run and forecasts from the same forecast point.",
        "MASE: mean over series of MAE / in-sample seasonal-naive MAE (scored for every method by",
        "`tsengine.backtest.score`, the scorer of tsengine's backtest leaderboard). sMAPE in %. Coverage: share of",
        f"held-out actuals inside the {LEVEL}% interval. Times in seconds (tsengine fit includes its",
        "backtests of every candidate; its predict is a full request: validation, window, model, intervals).",
        "",
    ]
    summary = []
    rolling: list[tuple[str, list[str], np.ndarray, np.ndarray]] = []
    for ds in DATASETS:
        if only and ds.name not in only:
            continue
        runs = [compare(ds, k) for k in range(1, args.windows + 1)]
        rows, note = runs[0]
        best_peer = min(r[1]["mase"] for r in rows[1:])
        ratio = rows[0][1]["mase"] / best_peer
        summary.append((ds.name, rows[0][1]["mase"], best_peer, ratio, rows[0][1]["coverage"]))
        n_series = load(ds)[0]["unique_id"].nunique()
        section = [
            f"## {ds.name} ({n_series} series, horizon {ds.horizon}, season {ds.season})",
            "",
            "| method | MASE | sMAPE | 80% coverage | fit s | predict s |",
            "|---|---:|---:|---:|---:|---:|",
            *(
                f"| {name} | {sc['mase']:.3f} | {sc['smape']:.2f} | {sc['coverage']:.1f} | {f:.2f} | {pr:.3f} |"
                for name, sc, f, pr in rows
            ),
            "",
            f"tsengine MASE / best peer MASE = **{ratio:.3f}**; {note}.",
            "",
            *([f"Note: {ds.note}.", ""] if ds.note else []),
        ]
        lines += section
        print("\n".join(section), flush=True)
        if args.windows > 1:
            names = [r[0] for r in rows]
            mase = np.asarray([[r[1]["mase"] for r in run] for run, _ in runs])
            cover = np.asarray([[r[1]["coverage"] for r in run] for run, _ in runs])
            rolling.append((ds.name, names, mase, cover))
    tail = [
        "## Summary",
        "",
        "| data set | tsengine MASE | best peer MASE | ratio | tsengine 80% coverage |",
        "|---|---:|---:|---:|---:|",
        *[f"| {n} | {a:.3f} | {b:.3f} | {r:.3f} | {c:.1f} |" for n, a, b, r, c in summary],
        "",
        *(rolling_section(rolling, args.windows) if rolling else []),
    ]
    lines += tail
    if not only:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text("\n".join(lines))
    print("\n".join(tail))
    return 0


def rolling_section(rolling: list[tuple[str, list[str], np.ndarray, np.ndarray]], windows: int) -> list[str]:
    """Markdown: MASE of every method on each held-out window and on average."""
    lines = [
        f"## Over the last {windows} horizons",
        "",
        f"The same comparison repeated with the last {windows} horizons held out in turn (window k trains on",
        "all but the last k horizons and forecasts the next one). MASE per window and its mean; the ratio",
        "is tsengine's mean MASE over the best peer's mean MASE.",
        "",
        "| data set | method | "
        + " | ".join(f"window {k}" for k in range(1, windows + 1))
        + " | mean | coverage |",
        "|---|---|" + "---:|" * (windows + 2),
    ]
    ratios = []
    for name, methods, mase, cover in rolling:
        means = mase.mean(axis=0)
        for j, method in enumerate(methods):
            cells = " | ".join(f"{v:.3f}" for v in mase[:, j])
            lines.append(f"| {name} | {method} | {cells} | {means[j]:.3f} | {cover[:, j].mean():.1f} |")
        ratios.append((name, means[0] / means[1:].min(), cover[:, 0].mean()))
    lines += [
        "",
        "| data set | tsengine mean MASE / best peer mean MASE | tsengine mean 80% coverage |",
        "|---|---:|---:|",
    ]
    lines += [f"| {n} | {r:.3f} | {c:.1f} |" for n, r, c in ratios]
    return [*lines, ""]


if __name__ == "__main__":
    sys.exit(main())
