"""The pages in a real Chromium against ``tsengine serve``: what a planner does, click by click."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from browsing import DEPLOYMENT_ID, FLIGHTS, screenshot, serve

API = f"/predApi/v1.0/deployments/{DEPLOYMENT_ID}/predictions"
FORECAST_WINDOW = 14
SERIES = 12


def _api_csv(server: str, body: bytes, **params: str) -> bytes:
    response = httpx.post(
        f"{server}{API}",
        params=params,
        content=body,
        headers={"Content-Type": "text/csv", "Accept": "text/csv"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return response.content


def _one_series(days: int = 60) -> str:
    """A short paste (typing 100 kB into a textarea takes Chromium most of a minute)."""
    frame = pl.read_csv(FLIGHTS, schema_overrides={"date": pl.String})
    return frame.filter(pl.col("series") == "JFK-B6").tail(days).write_csv()


def _dataset(page: Any, selector: str) -> dict[str, str]:
    return page.eval_on_selector(selector, "el => ({...el.dataset})")


def test_list_then_deployment_page(page: Any, server: str) -> None:
    page.goto(server + "/")
    row = page.locator(f'tr[data-id="{DEPLOYMENT_ID}"]')
    assert "FDW [-28, 0] · FW [1, 14]" in row.inner_text()
    screenshot(page, "deployments")
    row.get_by_role("link", name=DEPLOYMENT_ID).click()
    page.wait_for_selector("#backtest-chart[data-ready]")
    page.wait_for_selector("#distance-chart[data-ready]")
    models = page.locator("#leaderboard tbody tr").count()
    assert models == 2
    assert _dataset(page, "#distance-chart")["seriesCount"] == str(models)
    # actuals plus one forecast line per backtest origin
    assert _dataset(page, "#backtest-chart")["seriesCount"] == "4"
    first = _dataset(page, "#backtest-chart")["series"]
    page.select_option("#backtest-series", index=3)
    assert _dataset(page, "#backtest-chart")["series"] != first
    assert "Held-out check" in page.locator("#intervals-check").inner_text()
    screenshot(page, "deployment")


def test_forecast_upload_chart_switch_series_and_download(page: Any, server: str) -> None:
    page.goto(f"{server}/ui/deployments/{DEPLOYMENT_ID}/forecast")
    page.set_input_files("#file", str(FLIGHTS))
    page.check("#relax")
    page.get_by_role("button", name="Forecast").click()
    page.wait_for_selector("#forecast-chart[data-ready]")
    chart = _dataset(page, "#forecast-chart")
    # actual, forecast, low, high; one band between low and high
    assert chart["seriesCount"] == "4"
    assert chart["bands"] == "1"
    assert page.evaluate("window.tsengineCharts['forecast-chart'].bands.length") == 1
    assert chart["points"] == str(FORECAST_WINDOW)
    assert int(chart["history"]) > 0
    assert int(chart["events"]) > 0  # the fixture's holidays, marked
    assert "holiday on" in page.locator("#events").inner_text()
    assert page.locator("#forecast-series option").count() == SERIES
    assert page.locator("#forecast-table tbody tr").count() == FORECAST_WINDOW
    screenshot(page, "forecast")

    page.select_option("#forecast-series", index=5)
    assert _dataset(page, "#forecast-chart")["series"] == page.locator("#forecast-series").input_value()
    assert _dataset(page, "#forecast-chart")["series"] != chart["series"]

    with page.expect_download() as download:
        page.click("#download")
    downloaded = Path(download.value.path()).read_bytes()
    expected = _api_csv(server, FLIGHTS.read_bytes(), relaxKnownInAdvanceFeaturesCheck="true")
    assert downloaded == expected


def test_forecast_keyboard_only(page: Any, server: str) -> None:
    """Paste, tick and submit without a mouse; the result is announced in a live region."""
    page.goto(f"{server}/ui/deployments/{DEPLOYMENT_ID}/forecast")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.focus("#data")
    page.keyboard.insert_text(_one_series())
    page.focus("#relax")
    page.keyboard.press("Space")
    assert page.is_checked("#relax")
    page.focus("button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_selector("#forecast-chart[data-ready]")
    assert page.get_attribute("#result", "aria-live") == "polite"
    # every control of the form has a label
    unlabeled = page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                 .filter(el => !el.labels || el.labels.length === 0).map(el => el.id || el.name)"""
    )
    assert unlabeled == []


def test_forecast_error_shows_the_apis_message(page: Any, server: str) -> None:
    body = _one_series().replace("2013-12-01", "2013-12-32", 1)
    expected = httpx.post(f"{server}{API}", content=body.encode(), headers={"Content-Type": "text/csv"})
    assert expected.status_code == 422
    page.goto(f"{server}/ui/deployments/{DEPLOYMENT_ID}/forecast")
    page.fill("#data", body)
    page.get_by_role("button", name="Forecast").click()
    alert = page.wait_for_selector("#error")
    assert alert.get_attribute("data-status") == "422"
    assert page.locator("#error .message").inner_text() == expected.json()["message"]
    screenshot(page, "forecast-error")


def test_historical_mode_charts_one_distance_at_a_time(page: Any, server: str) -> None:
    page.goto(f"{server}/ui/deployments/{DEPLOYMENT_ID}/forecast")
    page.set_input_files("#file", str(FLIGHTS))
    page.fill("#predictionsStartDate", "2013-11-01")
    page.fill("#predictionsEndDate", "2013-12-01")
    page.get_by_role("button", name="Forecast").click()
    page.wait_for_selector("#forecast-chart[data-ready]")
    assert page.locator("#forecast-distance option").count() == FORECAST_WINDOW
    assert _dataset(page, "#forecast-chart")["points"] == "30"  # one forecast per day of November
    page.select_option("#forecast-distance", "7")
    assert _dataset(page, "#forecast-chart")["points"] == "30"


def test_monitoring_page_after_predictions(page: Any, server: str) -> None:
    _api_csv(server, FLIGHTS.read_bytes(), relaxKnownInAdvanceFeaturesCheck="true")
    page.goto(f"{server}/ui/deployments/{DEPLOYMENT_ID}/monitoring")
    assert page.locator("#accuracy tbody tr").count() == 5
    page.wait_for_selector("#target-drift")
    screenshot(page, "monitoring")


def test_batch_job_progress_and_download(page: Any, server: str) -> None:
    api = httpx.Client(base_url=f"{server}/api/v2", timeout=60)
    job = api.post(
        "/batchPredictions/",
        json={
            "deploymentId": DEPLOYMENT_ID,
            "intakeSettings": {"type": "localFile"},
            "outputSettings": {"type": "localFile"},
            "timeseriesSettings": {"type": "forecast", "relaxKnownInAdvanceFeaturesCheck": True},
        },
    )
    assert job.status_code == 202, job.text
    job_id = job.json()["id"]
    page.goto(f"{server}/ui/batch")
    row = page.locator(f'tr[data-job="{job_id}"]')
    assert row.get_attribute("data-status") == "INITIALIZING"
    upload = api.put(
        f"/batchPredictions/{job_id}/csvUpload/",
        content=FLIGHTS.read_bytes(),
        headers={"Content-Type": "text/csv"},
    )
    assert upload.status_code == 202, upload.text
    # htmx polls the rows every two seconds while a job is active
    page.wait_for_selector(f'tr[data-job="{job_id}"][data-status="COMPLETED"]', timeout=60_000)
    assert "100" in row.locator("progress").get_attribute("value")
    screenshot(page, "batch")
    with page.expect_download() as download:
        row.get_by_role("link", name="Download CSV").click()
    expected = api.get(f"/batchPredictions/{job_id}/download/")
    assert Path(download.value.path()).read_bytes() == expected.content


def test_phone_width_and_dark_mode(browser: Any, server: str) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, color_scheme="dark")
    page = context.new_page()
    try:
        for path in ("/", f"/ui/deployments/{DEPLOYMENT_ID}", f"/ui/deployments/{DEPLOYMENT_ID}/forecast"):
            page.goto(server + path)
            # wide tables scroll inside their own box; the page itself never scrolls sideways
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(17, 21, 28)"  # the dark palette follows the system
        page.set_input_files("#file", str(FLIGHTS))
        page.check("#relax")
        page.get_by_role("button", name="Forecast").click()
        page.wait_for_selector("#forecast-chart[data-ready]")
        width = page.evaluate("window.tsengineCharts['forecast-chart'].width")
        assert width <= 390
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        screenshot(page, "forecast-phone-dark")
    finally:
        context.close()


@pytest.fixture(scope="module")
def locked_server(registry: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from serve(registry, tmp_path_factory.mktemp("locked") / "serve.log", TSENGINE_API_KEYS="s3cret")


def test_login_is_required_when_keys_are_set(page: Any, locked_server: str) -> None:
    page.goto(f"{locked_server}/ui/deployments/{DEPLOYMENT_ID}")
    assert "/ui/login" in page.url
    assert page.locator(f'a[href="/ui/deployments/{DEPLOYMENT_ID}/forecast"]').count() == 0
    page.fill("#api_key", "wrong")
    page.get_by_role("button", name="Log in").click()
    assert "Invalid API token" in page.locator(".error").inner_text()
    screenshot(page, "login")
    page.fill("#api_key", "s3cret")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"**/ui/deployments/{DEPLOYMENT_ID}")
    page.wait_for_selector("#backtest-chart[data-ready]")
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/ui/login")
