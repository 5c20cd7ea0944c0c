"""How fast the web pages are for a 1,000-series deployment, against the API in the same run.

Run ``python benchmarks/pages.py``.  It trains a LightGBM deployment on 1,000
daily series tiled from ``fixtures/flights_daily.csv``, starts the real server
(``tsengine serve``), and times, over one keep-alive connection:

* page loads (GET): the deployments list, the deployment page (leaderboard,
  error by distance, the 1,000-series backtest trace), the forecast page;
* a forecast through the page (POST of the 1,000 series' last 100 rows with
  ``HX-Request``: chart data for every series, table, embedded CSV) against the
  same body POSTed to the predApi route as CSV (the baseline: what the page adds
  to a prediction).

Server-side times are the middleware's ``X-DataRobot-Execution-Time`` (integer
ms, on every response, pages included).  Results: ``benchmarks/results/pages.md``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import _data
import _server
import httpx
import numpy as np
from _env import package_versions

from tsengine import Registry, train

RESULTS = Path(__file__).resolve().parent / "results"
DEPLOYMENT_ID = "bench"


def _time(client: httpx.Client, method: str, url: str, n: int, **kwargs: object) -> dict[str, float]:
    for _ in range(2):  # warm the deployment cache and the templates
        client.request(method, url, **kwargs)  # type: ignore[arg-type]
    e2e, server, size = [], [], 0
    for _ in range(n):
        t0 = time.perf_counter()
        response = client.request(method, url, **kwargs)  # type: ignore[arg-type]
        e2e.append(time.perf_counter() - t0)
        if response.status_code != 200:
            msg = f"{method} {url}: {response.status_code} {response.text[:500]}"
            raise RuntimeError(msg)
        server.append(float(response.headers["X-DataRobot-Execution-Time"]) / 1000)
        size = len(response.content)
    ms_e2e, ms_server = np.asarray(e2e) * 1000, np.asarray(server) * 1000
    return {
        "n": n,
        "server_p50": float(np.percentile(ms_server, 50)),
        "server_p99": float(np.percentile(ms_server, 99)),
        "e2e_p50": float(np.percentile(ms_e2e, 50)),
        "e2e_p99": float(np.percentile(ms_e2e, 99)),
        "bytes": size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--loads", type=int, default=40, help="timed page loads per page")
    parser.add_argument("--forecasts", type=int, default=10, help="timed forecasts through page and API")
    parser.add_argument("--out", type=Path, default=RESULTS / "pages.md")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tsengine-pages-bench-"))
    registry = work / "registry"
    full = _data.tiled_daily(args.series)
    t0 = time.perf_counter()
    deployment = train(
        full,
        target=_data.TARGET_COL,
        datetime_column=_data.DATETIME_COL,
        series_id_column=_data.SERIES_COL,
        models=["lightgbm", "seasonal_naive"],
        deployment_id=DEPLOYMENT_ID,
        backtests=2,
    )
    trained = time.perf_counter() - t0
    Registry(registry).save(deployment)
    body = _data.to_csv_bytes(_data.history_tail(full, 100))

    port = _server.free_port()
    page = f"/ui/deployments/{DEPLOYMENT_ID}"
    results: dict[str, dict[str, float]] = {}
    with (
        _server.start_server(
            _server.tsengine_command(registry, port), port=port, log=work / "serve.log"
        ) as srv,
        httpx.Client(base_url=srv.url, timeout=300.0) as client,
    ):
        results["deployments list (GET /)"] = _time(client, "GET", "/", args.loads)
        results["deployment page (GET)"] = _time(client, "GET", page, args.loads)
        results["forecast page (GET)"] = _time(client, "GET", f"{page}/forecast", args.loads)
        results["forecast through the page (POST)"] = _time(
            client,
            "POST",
            f"{page}/forecast",
            args.forecasts,
            files={"file": ("history.csv", body, "text/csv")},
            headers={"HX-Request": "true"},
        )
        results["same forecast, predApi CSV (baseline)"] = _time(
            client,
            "POST",
            f"/predApi/v1.0/deployments/{DEPLOYMENT_ID}/predictions",
            args.forecasts,
            content=body,
            headers={"Content-Type": "text/csv", "Accept": "text/csv"},
        )

    page_post = results["forecast through the page (POST)"]["server_p50"]
    api_post = results["same forecast, predApi CSV (baseline)"]["server_p50"]
    rows = args.series * len(deployment.spec.distances)
    lines = [
        "# Web pages for a 1,000-series deployment",
        "",
        f"Produced by `python benchmarks/pages.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        "2 cores, quiet machine.",
        f"Packages: {package_versions(['tsengine', 'polars', 'lightgbm', 'fastapi', 'jinja2', 'uvicorn'])}.",
        "",
        f"Deployment: LightGBM vs seasonal naive on {args.series:,} daily series ({full.height:,} rows; "
        f"trained in {trained:.0f} s), forecast window {list(deployment.spec.forecast_window)}. "
        f"`tsengine serve`, one worker, one keep-alive connection. The forecast posts the last 100 rows of every "
        f"series ({len(body) / 1e6:.1f} MB of CSV) and answers {rows:,} forecast rows.",
        "",
        "| request | n | server p50 ms | server p99 ms | end-to-end p50 ms | end-to-end p99 ms | response bytes |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {name} | {r['n']} | {r['server_p50']:.0f} | {r['server_p99']:.0f} | {r['e2e_p50']:.0f} | "
            f"{r['e2e_p99']:.0f} | {r['bytes']:,} |"
            for name, r in results.items()
        ),
        "",
        f"Forecast page load: server p50 **{results['forecast page (GET)']['server_p50']:.0f} ms** "
        "(target: under 1 s).",
        f"A forecast through the page costs **{page_post / api_post:.2f}×** the same predApi request "
        f"({page_post:.0f} vs {api_post:.0f} ms server p50): the page also builds every series' chart data, "
        "renders the CSV and embeds it for the download button.",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
