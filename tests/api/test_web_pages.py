"""The web pages over the app in-process: content, same answers as the API, errors, access.

The browser tests (``tests/browser``) drive the same pages in Chromium; these
check what needs no browser, quickly: every page renders from the real core,
the forecast page's CSV is byte for byte the API's answer, errors carry the
API's message and status, and nothing is readable without a key the API
would accept.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import polars as pl
import pytest
from fastapi import FastAPI

import tsengine
from api import Settings, create_app
from tsengine.tabular import train_tabular

from http_flights import DEPLOYMENT_ID

pytestmark = pytest.mark.anyio

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
API = f"/predApi/v1.0/deployments/{DEPLOYMENT_ID}/predictions"
PAGE = f"/ui/deployments/{DEPLOYMENT_ID}"


def _csv(frame: pl.DataFrame) -> bytes:
    return frame.write_csv().encode()


def _embedded_csv(html: str) -> bytes:
    match = re.search(r'data-csv="([^"]*)"', html)
    assert match, "the page has no CSV download"
    return base64.b64decode(match[1])


async def _forecast(client: httpx.AsyncClient, body: bytes, **fields: str) -> httpx.Response:
    return await client.post(
        f"{PAGE}/forecast",
        files={"file": ("history.csv", body, "text/csv")},
        data=fields,
        headers={"HX-Request": "true"},
    )


async def _page_and_api(
    client: httpx.AsyncClient, deployment_id: str, body: bytes
) -> tuple[httpx.Response, httpx.Response]:
    """The forecast page's answer to an uploaded CSV (checked 200) and the predApi's CSV answer to it."""
    page = await client.post(
        f"/ui/deployments/{deployment_id}/forecast",
        files={"file": ("data.csv", body, "text/csv")},
        headers={"HX-Request": "true"},
    )
    assert page.status_code == 200, page.text
    api = await client.post(
        f"/predApi/v1.0/deployments/{deployment_id}/predictions",
        content=body,
        headers={"Content-Type": "text/csv", "Accept": "text/csv"},
    )
    return page, api


def _serving(registry: Path, deployment: tsengine.Deployment) -> tuple[FastAPI, httpx.AsyncClient]:
    """``deployment`` saved in ``registry``, an app over that registry, and an in-process client of it."""
    tsengine.Registry(registry).save(deployment)
    app = create_app(Settings(registry=registry))
    return app, httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@pytest.fixture
def fresh(
    tmp_path: Path, train_flights: Callable[..., tsengine.Deployment]
) -> tuple[FastAPI, httpx.AsyncClient]:
    """An app over a registry of its own (nothing logged yet), and a client of it."""
    return _serving(tmp_path, train_flights())


async def test_home_lists_deployments_without_loading_models(
    fresh: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _app, client = fresh
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert f'<tr data-id="{DEPLOYMENT_ID}">' in html
    assert "FDW [-14, 0] · FW [1, 7]" in html  # the windows, from the stored spec
    assert "seasonal_naive" in html
    assert "never" in html  # no prediction logged yet


async def test_forecast_page_csv_is_the_apis_answer(client: httpx.AsyncClient, posted: pl.DataFrame) -> None:
    body = _csv(posted)
    page = await _forecast(client, body)
    assert page.status_code == 200, page.text
    api = await client.post(API, content=body, headers={"Content-Type": "text/csv", "Accept": "text/csv"})
    assert api.status_code == 200
    assert _embedded_csv(page.text) == api.content
    # the chart data: one entry per series, the API's rows
    assert page.text.count('id="forecast-chart"') == 1
    assert "3 series" in page.text
    assert "21 rows" in page.text


async def test_forecast_page_passes_the_apis_options(client: httpx.AsyncClient, posted: pl.DataFrame) -> None:
    body = _csv(posted)
    fields = {"predictionsStartDate": "2013-04-01", "predictionsEndDate": "2013-04-10"}
    page = await _forecast(client, body, **fields)
    assert page.status_code == 200, page.text
    api = await client.post(
        API, params=fields, content=body, headers={"Content-Type": "text/csv", "Accept": "text/csv"}
    )
    assert _embedded_csv(page.text) == api.content
    assert 'id="forecast-distance"' in page.text  # historical mode charts one distance at a time


async def test_forecast_page_accepts_pasted_json(client: httpx.AsyncClient, posted: pl.DataFrame) -> None:
    rows = posted.write_json().encode()
    page = await client.post(f"{PAGE}/forecast", data={"data": rows.decode()}, headers={"HX-Request": "true"})
    assert page.status_code == 200, page.text
    api = await client.post(
        API, content=rows, headers={"Content-Type": "application/json", "Accept": "text/csv"}
    )
    assert _embedded_csv(page.text) == api.content


async def test_forecast_errors_show_the_apis_message_and_status(
    client: httpx.AsyncClient, posted: pl.DataFrame
) -> None:
    body = _csv(posted)
    fields = {"forecastPoint": "not a date"}
    page = await _forecast(client, body, **fields)
    api = await client.post(API, params=fields, content=body, headers={"Content-Type": "text/csv"})
    assert page.status_code == api.status_code >= 400
    assert api.json()["message"] in page.text.replace("&#39;", "'").replace("&#34;", '"')

    broken = body.replace(b"2013-04-10", b"2013-99-10", 1)
    page = await _forecast(client, broken)
    api = await client.post(API, content=broken, headers={"Content-Type": "text/csv"})
    assert page.status_code == api.status_code == 422
    assert 'role="alert"' in page.text

    empty = await _forecast(client, b"")
    assert empty.status_code == 422
    assert "Choose a CSV or JSON file" in empty.text


async def test_forecast_without_htmx_renders_the_whole_page(
    client: httpx.AsyncClient, posted: pl.DataFrame
) -> None:
    response = await client.post(
        f"{PAGE}/forecast",
        files={"file": ("history.csv", _csv(posted), "text/csv")},
        data={"relaxKnownInAdvanceFeaturesCheck": "true"},
    )
    assert response.status_code == 200
    assert "<html" in response.text
    assert 'id="forecast-result"' in response.text
    assert 'name="relaxKnownInAdvanceFeaturesCheck" value="true" checked' in response.text


async def test_forecast_upload_over_the_body_limit_is_413(
    make_client: Callable[..., httpx.AsyncClient], posted: pl.DataFrame
) -> None:
    client = make_client(max_body_bytes=2_000)
    page = await _forecast(client, _csv(posted))
    assert page.status_code == 413
    assert "limit" in page.text


async def test_deployment_page_shows_spec_leaderboard_backtest_and_intervals(
    client: httpx.AsyncClient,
) -> None:
    html = (await client.get(PAGE)).text
    for fragment in (
        "Backtest leaderboard",
        'id="leaderboard"',
        'id="distance-chart"',
        'id="backtest-chart"',
        "80 % intervals",
        "Humility rules",
        "[-14, 0]",
    ):
        assert fragment in html, fragment


async def test_pages_of_a_deployment_with_several_percentiles(tmp_path: Path, posted: pl.DataFrame) -> None:
    """The deployment page lists the other levels; the forecast page's CSV carries them, as the API's does."""
    deployment = tsengine.train(
        posted,
        target="delayed",
        datetime_column="date",
        series_id_column="series",
        known_in_advance=["scheduled", "holiday"],
        models=["seasonal_naive"],
        backtests=4,  # a held-out check needs origins before and after
        forecast_window=[1, 7],
        feature_derivation_window=[-14, 0],
        interval_percentile=(80, 50, 95),
        deployment_id="levels",
    )
    async with _serving(tmp_path, deployment)[1] as client:
        html = (await client.get("/ui/deployments/levels")).text
        assert "80 % intervals" in html
        more = re.search(r'<p id="intervals-more">(.*?)</p>', html)
        assert more is not None
        assert re.search(r"50 % \(held-out check [\d.]+ %\), 95 % \(held-out check [\d.]+ %\)", more.group(1))
        page, api = await _page_and_api(client, "levels", _csv(posted))
    assert api.status_code == 200, api.text
    assert _embedded_csv(page.text) == api.content
    assert b"PREDICTION_50_PERCENTILE_LOW" in api.content
    assert b"PREDICTION_95_PERCENTILE_HIGH" in api.content


async def test_unknown_deployment_pages_are_404_with_the_apis_message(client: httpx.AsyncClient) -> None:
    for path in ("/ui/deployments/nope", "/ui/deployments/nope/forecast", "/ui/deployments/nope/monitoring"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert "deployment &#39;nope&#39; not found" in response.text


async def test_monitoring_page_reports_accuracy_after_actuals(
    fresh: tuple[FastAPI, httpx.AsyncClient], posted: pl.DataFrame, flights: pl.DataFrame
) -> None:
    app, client = fresh
    assert (
        await client.post(API, content=_csv(posted), headers={"Content-Type": "text/csv"})
    ).status_code == 200
    actuals = flights.filter(pl.col("date") > "2013-04-23").select(
        pl.concat_str("series", pl.lit("|"), "date").alias("associationId"),
        pl.col("delayed").cast(pl.Float64).alias("actualValue"),
        pl.col("date").alias("timestamp"),
    )
    sent = await client.post(
        f"/api/v2/deployments/{DEPLOYMENT_ID}/actuals/fromJSON/",
        json={"data": actuals.to_dicts()},
    )
    assert sent.status_code == 202, sent.text
    assert app.state.monitor.log.flush()
    html = (await client.get(f"{PAGE}/monitoring")).text
    assert 'id="accuracy"' in html
    assert 'id="feature-drift"' in html
    assert 'id="monitor-chart-1"' in html
    assert "21 predictions with actuals" in html
    home = (await client.get("/")).text
    assert "never" not in home  # the list shows the last prediction's time


async def test_tabular_deployment_predict_page(
    make_client: Callable[..., httpx.AsyncClient], tmp_path: Path
) -> None:
    credit = pl.read_csv(FIXTURES / "tabular_binary.csv")
    registry = tsengine.Registry(tmp_path)
    registry.save(train_tabular(credit, target="status", task="binary", deployment_id="credit"))
    client = make_client(registry_path=tmp_path)
    rows = _csv(credit.head(40).drop("status"))
    page, api = await _page_and_api(client, "credit", rows)
    assert _embedded_csv(page.text) == api.content
    assert page.text.count("<tr>") == 41  # header + 40 rows
    assert "binary" in (await client.get("/")).text


async def test_openapi_lists_every_api_route_and_no_page(client: httpx.AsyncClient) -> None:
    paths = set((await client.get("/openapi.json")).json()["paths"])
    for path in (
        "/predApi/v1.0/deployments/{deployment_id}/predictions",
        "/api/v2/batchPredictions/",
        "/api/v2/batchPredictions/{job_id}/download/",
        "/api/v2/deployments/{deployment_id}/accuracy/",
        "/api/v2/deployments/{deployment_id}/featureDrift/",
        "/metrics",
    ):
        assert path in paths, path
    assert not any(path == "/" or path.startswith("/ui") for path in paths)


# ------------------------------------------------------------------------ access


@pytest.fixture
def locked(registry_path: Path) -> httpx.AsyncClient:
    app = create_app(Settings(registry=registry_path, api_keys=["k-one", "k-two"]))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


def _page_paths() -> list[str]:
    return [
        "/",
        PAGE,
        f"{PAGE}/forecast",
        f"{PAGE}/monitoring",
        "/ui/batch",
        "/ui/batch/rows",
        "/ui/batch/some-job/download",
    ]


async def test_every_page_requires_a_key_when_the_api_does(
    locked: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    for path in _page_paths()[:-1]:  # each is a page when open (the download's job is unknown: 404)
        assert (await client.get(path)).status_code == 200, path
    for path in _page_paths():
        response = await locked.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/ui/login?next=")
        assert DEPLOYMENT_ID not in response.text or path != "/"
    post = await locked.post(f"{PAGE}/forecast", data={"data": "a,b\n1,2"})
    assert post.status_code == 303
    # htmx follows redirects itself: HX-Redirect sends the whole page to the login form
    assert post.headers["hx-redirect"].startswith("/ui/login")


async def test_login_sets_a_session_cookie_that_opens_the_pages(locked: httpx.AsyncClient) -> None:
    wrong = await locked.post("/ui/login", data={"api_key": "nope", "next": "/ui/batch"})
    assert wrong.status_code == 401
    assert "Invalid API token" in wrong.text
    assert "tsengine_session" not in wrong.headers.get("set-cookie", "")

    ok = await locked.post("/ui/login", data={"api_key": "k-two", "next": "/ui/batch"})
    assert ok.status_code == 303
    assert ok.headers["location"] == "/ui/batch"
    cookie = ok.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "k-two" not in cookie  # the cookie is a signature, not the key
    home = await locked.get("/")
    assert home.status_code == 200
    assert DEPLOYMENT_ID in home.text

    await locked.post("/ui/logout")
    assert (await locked.get("/")).status_code == 303


async def test_a_removed_key_ends_its_sessions(registry_path: Path) -> None:
    first = create_app(Settings(registry=registry_path, api_keys=["old"]))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=first), base_url="http://t") as client:
        await client.post("/ui/login", data={"api_key": "old"})
        cookies = client.cookies
        assert (await client.get("/")).status_code == 200
    rotated = create_app(Settings(registry=registry_path, api_keys=["new"]))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=rotated), base_url="http://t", cookies=cookies
    ) as client:
        assert (await client.get("/")).status_code == 303


async def test_api_credentials_open_the_pages_too(locked: httpx.AsyncClient) -> None:
    assert (await locked.get("/", headers={"Authorization": "Bearer k-one"})).status_code == 200
    assert (await locked.get("/", headers={"Authorization": "Bearer wrong"})).status_code == 303


async def test_login_never_redirects_off_site(locked: httpx.AsyncClient) -> None:
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        response = await locked.post("/ui/login", data={"api_key": "k-one", "next": target})
        assert response.headers["location"] == "/", target


async def test_datarobot_key_is_asked_when_configured(registry_path: Path) -> None:
    app = create_app(Settings(registry=registry_path, datarobot_key="drk"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.get("/")).status_code == 303
        form = (await client.get("/ui/login")).text
        assert 'name="datarobot_key"' in form
        assert 'name="api_key"' not in form
        assert (await client.post("/ui/login", data={"datarobot_key": "bad"})).status_code == 401
        assert (await client.post("/ui/login", data={"datarobot_key": "drk"})).status_code == 303
        assert (await client.get("/")).status_code == 200


async def test_pages_of_a_trading_day_deployment_closed_on_exchange_holidays(tmp_path: Path) -> None:
    """The business-day grid with closed holidays through the pages' own grid arithmetic (charts, labels)."""
    data = pl.read_csv(FIXTURES / "sp500_trading_days.csv", schema_overrides={"date": pl.String})
    deployment = tsengine.train(
        data,
        target="close",
        datetime_column="date",
        holidays="NYSE",
        models=["ets", "seasonal_naive"],
        forecast_window=[1, 10],
        deployment_id="sp500",
    )
    body = _csv(data.filter(pl.col("date") <= "2015-12-18").tail(80))
    async with _serving(tmp_path, deployment)[1] as client:
        overview = await client.get("/ui/deployments/sp500")
        assert overview.status_code == 200
        assert "closed on holidays" in overview.text
        page, api = await _page_and_api(client, "sp500", body)
    csv = _embedded_csv(page.text)
    assert csv == api.content
    assert b"2015-12-24" in csv
    assert b"2015-12-25" not in csv  # Christmas is off the grid
    assert "2015-12-28" in page.text  # the chart's labels come from the same grid
