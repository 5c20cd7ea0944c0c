"""End to end: the real uvicorn server on loopback, called by real clients.

A small deployment is trained (seasonal naive, milliseconds) into a temporary
registry; the server runs in a background thread with the same uvicorn options
``api.server.serve`` uses, and is called by DataRobot's own ``datarobot-predict``
client, by httpx with every input form, and by curl.
"""

from __future__ import annotations

import bz2
import contextlib
import datetime as dt
import gzip
import io
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
import polars as pl
import pytest
from datarobot.errors import ClientError
from datarobot_predict import TimeSeriesType
from datarobot_predict import deployment as dr_deployment

import tsengine
from api import Settings
from api.testing import running

from http_flights import DEPLOYMENT_ID, HORIZON, LAST_HISTORY, SERIES, flights, train_flights

# datarobot-predict builds a urllib3 Retry that urllib3 2.x deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Using an empty collection for 'allowed_methods':FutureWarning"
)

ROOT = Path(__file__).resolve().parents[2]


def posted() -> pl.DataFrame:
    """History up to LAST_HISTORY, a week of forecast rows, a non-ASCII column."""
    return flights().with_columns(
        pl.when(pl.col("date") <= LAST_HISTORY).then(pl.col("delayed")).alias("delayed"),
        pl.lit("K\u00f6ln").alias("city"),
    )


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("registry")
    deployment = train_flights()
    tsengine.Registry(path).save(deployment)
    return path


@pytest.fixture(scope="module")
def base_url(registry: Path) -> Iterator[str]:
    with running(Settings(registry=registry)) as url:
        yield url


def predict_url(base_url: str) -> str:
    return f"{base_url}/predApi/v1.0/deployments/{DEPLOYMENT_ID}/predictions"


def reference_json(base_url: str, **params: Any) -> list[dict[str, Any]]:
    response = httpx.post(
        predict_url(base_url),
        params=params,
        content=posted().write_csv().encode(),
        headers={"content-type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["data"]
    return rows


# ---------------------------------------------------------------- datarobot-predict


def _client_predict(base_url: str, frame: pd.DataFrame, **kwargs: Any) -> Any:
    return dr_deployment.predict(
        DEPLOYMENT_ID, frame, prediction_endpoint=f"{base_url}/predApi/v1.0", **kwargs
    )


def _pandas(frame: pl.DataFrame) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(frame.write_csv().encode()))


@pytest.mark.usefixtures("dr_client")
@pytest.mark.parametrize("forecast_point", [None, dt.datetime(2013, 4, 23)])
def test_datarobot_predict_forecast_mode(base_url: str, forecast_point: dt.datetime | None) -> None:
    result = _client_predict(base_url, _pandas(posted()), forecast_point=forecast_point)
    frame = result.dataframe
    assert list(frame.columns[:5]) == [
        "series",
        "FORECAST_POINT",
        "date",
        "FORECAST_DISTANCE",
        "delayed (actual)_PREDICTION",
    ]
    assert len(frame) == len(SERIES) * HORIZON
    assert set(frame["FORECAST_POINT"]) == {"2013-04-23T00:00:00Z"}
    assert sorted(set(frame["FORECAST_DISTANCE"])) == list(range(1, HORIZON + 1))
    expected = [row["prediction"] for row in reference_json(base_url)]
    assert frame["delayed (actual)_PREDICTION"].tolist() == pytest.approx(expected)
    headers = result.response_headers
    assert headers["X-DataRobot-Execution-Time"].isdigit()
    assert headers["X-DataRobot-Model-Cache-Hit"] in {"true", "false"}
    assert headers["X-DataRobot-Model-Id"]


@pytest.mark.usefixtures("dr_client")
@pytest.mark.parametrize(
    ("start", "end", "dates"),
    [
        (dt.datetime(2013, 4, 10), dt.datetime(2013, 4, 12), {"2013-04-10", "2013-04-11"}),
        (None, None, None),  # the client's extreme defaults: the whole dataset
    ],
)
def test_datarobot_predict_historical_mode(
    base_url: str, start: dt.datetime | None, end: dt.datetime | None, dates: set[str] | None
) -> None:
    result = _client_predict(
        base_url,
        _pandas(flights()),
        time_series_type=TimeSeriesType.HISTORICAL,
        predictions_start_date=start,
        predictions_end_date=end,
    )
    frame = result.dataframe
    assert len(frame) > 0
    assert frame["FORECAST_POINT"].nunique() > 1
    if dates is not None:
        assert set(frame["date"]) == dates
    else:
        assert frame["date"].max() == "2013-04-30"


@pytest.mark.usefixtures("dr_client")
def test_datarobot_predict_surfaces_our_error_message(base_url: str) -> None:
    history = _pandas(flights().filter(pl.col("date") <= LAST_HISTORY))
    with pytest.raises(ClientError) as info:
        _client_predict(base_url, history)
    assert info.value.status_code == 422
    assert "known-in-advance feature(s) 'scheduled', 'holiday' missing" in str(info.value)
    with pytest.raises(ClientError) as info:
        dr_deployment.predict("nope", history, prediction_endpoint=f"{base_url}/predApi/v1.0")
    assert info.value.status_code == 404
    assert "deployment 'nope' not found" in str(info.value)


@pytest.mark.usefixtures("dr_client")
def test_datarobot_predict_relaxed_kia_and_passthrough(base_url: str) -> None:
    history = _pandas(posted().filter(pl.col("date") <= LAST_HISTORY))
    result = _client_predict(
        base_url,
        history,
        relax_known_in_advance_features_check=True,
        passthrough_columns={"city"},
    )
    assert len(result.dataframe) == len(SERIES) * HORIZON
    assert result.response_headers["X-DataRobot-Warnings"]
    # Every forecast row was autoexpanded, so none has an input row to pass through.
    assert result.dataframe["city"].isna().all()


@pytest.mark.usefixtures("dr_client")
def test_a_series_unseen_at_training_is_forecast_over_http(tmp_path: Path) -> None:
    """A new store posted to a deployment trained before it existed: the models fit it (Theta,
    ARIMA) or serve it without the series id (LightGBM), and the server answers as the core does."""
    deployment = tsengine.train(
        flights(),
        target="delayed",
        datetime_column="date",
        series_id_column="series",
        known_in_advance=["scheduled", "holiday"],
        models=["lightgbm", "theta", "arima", "ensemble"],
        forecast_window=[1, HORIZON],
        feature_derivation_window=[-28, 0],
        deployment_id=DEPLOYMENT_ID,
        backtests=2,
    )
    assert {m["kind"] for m in deployment.model.describe()["members"]} == {"lightgbm", "theta", "arima"}
    tsengine.Registry(tmp_path).save(deployment)
    new = posted().filter(pl.col("series") == "JFK-B6").with_columns(pl.lit("JFK-NEW").alias("series"))
    with running(Settings(registry=tmp_path)) as url:
        result = _client_predict(url, _pandas(new))
    frame = result.dataframe
    assert len(frame) == HORIZON
    assert set(frame["series"]) == {"JFK-NEW"}
    expected = deployment.predict(new)["prediction"].to_numpy()
    got = frame["delayed (actual)_PREDICTION"].to_numpy()
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, expected, rtol=1e-9)


# ------------------------------------------------------------------- input forms


def _forms() -> dict[str, dict[str, Any]]:
    csv = posted().write_csv().encode()
    records = orjson.dumps(posted().to_dicts())
    return {
        "csv": {"content": csv, "headers": {"content-type": "text/csv"}},
        "text/plain": {"content": csv, "headers": {"content-type": "text/plain"}},
        "json": {"content": records, "headers": {"content-type": "application/json"}},
        "rows": {
            "content": b'{"rows":' + records + b"}",
            "headers": {"content-type": "application/json"},
        },
        "multipart": {"files": {"file": ("data.csv", csv, "text/csv")}},
        "gzip": {
            "content": gzip.compress(csv),
            "headers": {"content-type": "text/csv", "content-encoding": "gzip"},
        },
        "bz2": {
            "content": bz2.compress(records),
            "headers": {"content-type": "application/json", "content-encoding": "bz2"},
        },
        "latin-1": {
            "content": csv.decode().encode("latin-1"),
            "headers": {"content-type": "text/csv; charset=latin-1"},
        },
    }


def test_every_input_form_over_http_gives_identical_predictions(base_url: str) -> None:
    bodies = {}
    with httpx.Client() as client:
        for name, request in _forms().items():
            response = client.post(predict_url(base_url), params={"passthroughColumns": "city"}, **request)
            assert response.status_code == 200, (name, response.text)
            bodies[name] = response.content
    assert "K\u00f6ln" in bodies["csv"].decode()
    assert {name for name, body in bodies.items() if body != bodies["csv"]} == set()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_file_upload(base_url: str, tmp_path: Path) -> None:
    data = tmp_path / "dataset.csv"
    data.write_bytes(posted().write_csv().encode())
    done = subprocess.run(
        ["curl", "-sS", "-i", "-X", "POST", predict_url(base_url), "-F", f"file=@{data}"],
        capture_output=True,
        check=True,
        timeout=30,
    )
    head, _, body = done.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"x-datarobot-request-id" in head.lower()
    assert len(orjson.loads(body)["data"]) == len(SERIES) * HORIZON


# ------------------------------------------------------------- limits on the wire


@pytest.mark.parametrize("length", [9_000, 30_000])
def test_long_request_line_gets_our_json_414(base_url: str, length: int) -> None:
    """Lines past 8,192 bytes but under uvicorn's limit reach our middleware."""
    url = predict_url(base_url) + "?passthroughColumns=" + "c" * length
    response = httpx.post(url, content=b"a\n1\n")
    assert response.status_code == 414
    assert response.headers["content-type"] == "application/json"
    assert "over the 8192-byte limit" in response.json()["message"]
    assert response.headers["x-datarobot-execution-time"].isdigit()


def test_oversized_body_is_413_before_it_is_read(registry: Path) -> None:
    with running(Settings(registry=registry, max_body_bytes=10_000)) as url:
        data = posted().write_csv().encode()
        response = httpx.post(f"{url}/predApi/v1.0/deployments/{DEPLOYMENT_ID}/predictions", content=data)
        assert response.status_code == 413
        assert "over the 10000-byte limit" in response.json()["message"]

        def chunks() -> Iterator[bytes]:
            for _ in range(25):
                yield b"x" * 4096

        response = httpx.post(f"{url}/predApi/v1.0/deployments/{DEPLOYMENT_ID}/predictions", content=chunks())
        assert response.status_code == 413
        assert "more than 10000 bytes" in response.json()["message"]


def test_auth_over_the_wire(registry: Path) -> None:
    with running(Settings(registry=registry, api_keys=["k1"])) as url:
        assert httpx.get(f"{url}/ping").json() == {"response": "pong"}
        response = httpx.get(f"{url}/deployments")
        assert response.status_code == 401
        assert response.json() == {"message": "Invalid API token"}
        response = httpx.get(f"{url}/deployments", auth=("someone@example.com", "k1"))
        assert response.json() == {"data": [{"id": DEPLOYMENT_ID}]}


# ------------------------------------------------------------------------ serve()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _serve_in_subprocess(registry: Path, *, host: str, workers: int) -> str:
    """Run ``serve`` as ``tsengine serve`` would, predict once, stop it; return stderr."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TSENGINE_")}
    env["PYTHONPATH"] = str(ROOT)
    code = (
        "from pathlib import Path; from api.server import serve; "
        f"serve(registry=Path({str(registry)!r}), host={host!r}, port={port}, "
        f"workers={workers}, log_level='warning')"
    )
    process = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()[1]
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "serve() did not come up within 60 s"
            time.sleep(0.1)
        response = httpx.post(f"http://127.0.0.1:{port}/predictions", content=posted().write_csv().encode())
        assert response.status_code == 200, response.text
        assert len(response.json()["data"]) == len(SERIES) * HORIZON
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    return stderr


def test_serve_warns_loudly_on_an_open_network_bind(registry: Path) -> None:
    stderr = _serve_in_subprocess(registry, host="0.0.0.0", workers=1)
    assert "WARNING: serving" in stderr
    assert "with NO API key" in stderr


@pytest.mark.slow
def test_serve_with_several_workers(registry: Path) -> None:
    stderr = _serve_in_subprocess(registry, host="127.0.0.1", workers=2)
    assert "NO API key" not in stderr
