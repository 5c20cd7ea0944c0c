"""How much orjson rendering saves over FastAPI's default JSON path.

A time series response of 1,000 series x 28 forecast distances (28,000 rows,
with 80% prediction intervals) is rendered twice from the same prediction:

* tsengine: ``render.to_json`` (polars builds the nested rows, orjson writes them);
* polars' own ``DataFrame.write_json`` of the same row structs (a candidate that
  skips building Python dicts);
* FastAPI's default: the same rows as Python dicts through ``jsonable_encoder``
  and ``json.dumps`` as ``JSONResponse.render`` does (``_baselines.default_json``).

Both outputs are checked to decode to the same document before timing.

    python benchmarks/json_encoding.py [--series 1000] [--distances 28] [--runs 20]
"""

from __future__ import annotations

import argparse
import datetime as dt
from types import SimpleNamespace

import _baselines
import numpy as np
import orjson
import polars as pl
from _measure import repeat, stats

from tsengine.deployment import Prediction
from tsengine.options import PredictOptions
from tsengine.render import timeseries as render
from tsengine.render import to_json


def prediction(n_series: int, distances: int, *, seed: int = 0) -> Prediction:
    """A forecast-mode result shaped like ``Deployment.predict_result``'s."""
    rng = np.random.default_rng(seed)
    n = n_series * distances
    fp = dt.datetime(2013, 12, 3)
    distance = np.tile(np.arange(1, distances + 1), n_series)
    yhat = rng.gamma(2.0, 10.0, n)
    frame = (
        pl.DataFrame(
            {
                "rowId": np.arange(n, dtype=np.int64),
                "seriesId": np.repeat([f"series-{i:04d}" for i in range(n_series)], distances),
                "forecastPoint": [fp] * n,
                "forecastDistance": distance,
                "prediction": yhat,
                "predictionIntervalLow": yhat * 0.8,
                "predictionIntervalHigh": yhat * 1.2,
            }
        )
        .with_columns(
            timestamp=pl.col("forecastPoint") + pl.duration(days=pl.col("forecastDistance")),
        )
        .with_columns(originalFormatTimestamp=pl.col("timestamp").dt.strftime("%Y-%m-%d"))
    )
    return Prediction(frame, (), 80)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--distances", type=int, default=28)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    deployment = SimpleNamespace(kind="timeseries", spec=SimpleNamespace(target="delayed"))
    result = prediction(args.series, args.distances)
    options = PredictOptions()
    empty = pl.DataFrame()

    def ours() -> bytes:
        return to_json(deployment, result, empty, options)  # type: ignore[arg-type]

    def fastapi_default() -> bytes:
        return _baselines.default_json(deployment, result)

    def polars_writer() -> bytes:
        # A candidate for render.to_json: polars writes the row objects itself.
        rows = result.frame.select(render._ts_json_columns(deployment, result, []))  # type: ignore[arg-type]
        return b'{"data":' + rows.write_json().encode() + b"}"

    fast, slow, candidate = ours(), fastapi_default(), polars_writer()
    assert orjson.loads(fast) == orjson.loads(slow), "the two paths disagree"
    assert orjson.loads(candidate) == orjson.loads(fast), "polars' writer disagrees"

    ours_ms = stats(repeat(ours, n=args.runs, budget=30))
    default_ms = stats(repeat(fastapi_default, n=args.runs, budget=60))
    polars_ms = stats(repeat(polars_writer, n=args.runs, budget=30))
    rows = args.series * args.distances
    print(f"{rows:,} rows, {len(fast) / 1e6:.1f} MB of JSON, {ours_ms.n} runs each")
    print(f"tsengine render.to_json (orjson):        p50 {ours_ms.p50:8.1f} ms")
    print(f"FastAPI jsonable_encoder + json.dumps:   p50 {default_ms.p50:8.1f} ms")
    print(f"polars DataFrame.write_json (candidate): p50 {polars_ms.p50:8.1f} ms")
    print(f"ratio (FastAPI default / tsengine):      {default_ms.p50 / ours_ms.p50:8.1f}x")
    print(f"ratio (tsengine / polars candidate):     {ours_ms.p50 / polars_ms.p50:8.1f}x")


if __name__ == "__main__":
    main()
