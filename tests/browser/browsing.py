"""Helpers of the browser tests: the system Chromium, ``tsengine serve`` on loopback, screenshots.

Chromium (Debian's package) is driven by Playwright against ``tsengine serve`` on loopback.

Nothing is downloaded: Playwright launches the system Chromium by its path
(``TSENGINE_CHROMIUM`` or the first of ``chromium``/``chromium-browser`` on the
PATH).  ``.ci/run`` installs Debian's ``chromium`` when it is missing; a
missing browser fails these tests in CI (``CI`` set) and skips them, loudly,
elsewhere.

Screenshots of every page go to ``test-artifacts/screenshots/`` (or
``TSENGINE_ARTIFACTS``); with ``TSENGINE_UPDATE_SCREENSHOTS=1`` they also
replace the ones committed under ``docs/screenshots/`` for the README.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import polars as pl
from services import free_port

import tsengine

ROOT = Path(__file__).resolve().parents[2]
FLIGHTS = ROOT / "fixtures" / "flights_daily.csv"
DEPLOYMENT_ID = "flights"
CHROMIUM_MISSING = (
    "Chromium is not installed: apt-get install chromium (or set TSENGINE_CHROMIUM to its path); "
    ".ci/run installs it in CI"
)


def chromium_path() -> str | None:
    """The system Chromium's executable, or None."""
    configured = os.environ.get("TSENGINE_CHROMIUM")
    if configured:
        return configured if Path(configured).is_file() else None
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def artifacts() -> Path:
    folder = Path(os.environ.get("TSENGINE_ARTIFACTS", ROOT / "test-artifacts")) / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot as a test artifact (and for the docs when asked)."""
    path = artifacts() / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("TSENGINE_UPDATE_SCREENSHOTS") == "1":
        docs = ROOT / "docs" / "screenshots"
        docs.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, docs / path.name)
    return path


def train_registry(path: Path) -> Path:
    """The twelve NYC flight series of the fixture, two quick models, three backtest origins."""
    frame = pl.read_csv(FLIGHTS, schema_overrides={"date": pl.String})
    deployment = tsengine.train(
        frame,
        target="delayed",
        datetime_column="date",
        series_id_column="series",
        known_in_advance=["scheduled", "holiday"],
        models=["seasonal_naive", "theta"],
        forecast_window=[1, 14],
        feature_derivation_window=[-28, 0],
        backtests=3,
        deployment_id=DEPLOYMENT_ID,
    )
    tsengine.Registry(path).save(deployment)
    return path


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            msg = f"tsengine serve exited with {process.returncode}: {log.read_text()[-2000:]}"
            raise RuntimeError(msg)
        try:
            if httpx.get(f"{url}/ping", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    msg = f"tsengine serve did not answer /ping within 60 s: {log.read_text()[-2000:]}"
    raise RuntimeError(msg)


def serve(registry: Path, log: Path, **env: str) -> Iterator[str]:
    """``tsengine serve`` (the real CLI, uvicorn and all) on a free loopback port."""
    port = free_port()
    executable = Path(sys.executable).with_name("tsengine")
    command = (
        [str(executable)]
        if executable.exists()
        else [sys.executable, "-c", "from tsengine.cli import main; main()"]
    )
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "serve", "--registry", str(registry), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
