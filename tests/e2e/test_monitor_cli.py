"""``tsengine monitor``: settings, actuals upload and the report, on the seasonal-naive flights deployment.

Predictions are recorded through the core (as a server would log them); the
CLI then reads and writes the same ``<registry>/.monitoring`` store.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from tsengine import Registry
from tsengine.cli import app
from tsengine.monitoring.service import Monitor
from tsengine.monitoring.store import MonitoringStore
from tsengine.options import PredictOptions

from http_flights import LAST_HISTORY, flights, train_flights


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A registry with ``flights``, one logged forecast, and the actuals file for it."""
    folder = tmp_path_factory.mktemp("monitor-cli")
    reg = folder / "registry"
    Registry(reg).save(train_flights())
    dep = Registry(reg).load("flights")
    pred = dep.predict_result(
        flights().filter(pl.col("date") <= LAST_HISTORY), PredictOptions(relax_known_in_advance=True)
    )
    monitor = Monitor(MonitoringStore.in_folder(reg / ".monitoring"))
    monitor.record_prediction(dep, pred.frame, None, created=time.time())
    monitor.close()
    actuals = flights().filter(pl.col("date") > LAST_HISTORY)
    path = folder / "actuals.csv"
    actuals.write_csv(path)
    return {"registry": reg, "frame": pred.frame, "actuals": actuals, "path": path, "folder": folder}


def _invoke(*args: str, registry: Any) -> Any:
    return CliRunner().invoke(app, [*args, "--registry", str(registry)])


def _upload(setup: dict[str, Any]) -> Any:
    return _invoke(
        "monitor",
        "actuals",
        "flights",
        str(setup["path"]),
        "--series-column",
        "series",
        "--timestamp-column",
        "date",
        "--actual-value-column",
        "delayed",
        "--json",
        registry=setup["registry"],
    )


def test_settings_show_and_change(setup: dict[str, Any]) -> None:
    shown = _invoke("monitor", "settings", "flights", registry=setup["registry"])
    assert shown.exit_code == 0, shown.output
    doc = json.loads(shown.output)
    assert {"associationId", "targetDrift", "featureDrift"} <= doc.keys()
    changed = _invoke("monitor", "settings", "flights", "--no-target-drift", registry=setup["registry"])
    assert changed.exit_code == 0, changed.output
    assert json.loads(changed.output)["targetDrift"] == {"enabled": False}
    back = _invoke("monitor", "settings", "flights", "--target-drift", registry=setup["registry"])
    assert json.loads(back.output)["targetDrift"] == {"enabled": True}


def test_actuals_then_report(setup: dict[str, Any]) -> None:
    result = _upload(setup)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["received"] == 21
    assert report["inserted"] == 21
    assert report["invalid"] == 0
    assert report["unknownAssociationIds"] == 0

    shown = _invoke("monitor", "flights", "--json", registry=setup["registry"])
    assert shown.exit_code == 0, shown.output
    doc = json.loads(shown.output)
    assert {"accuracy", "featureDrift", "targetDrift", "serviceStats"} <= doc.keys()
    frame = setup["frame"]
    actuals = setup["actuals"]
    assert isinstance(frame, pl.DataFrame)
    assert isinstance(actuals, pl.DataFrame)
    pairs = frame.with_columns(
        pl.col("seriesId").cast(pl.String), pl.col("timestamp").dt.strftime("%Y-%m-%d").alias("date")
    ).join(actuals, left_on=["seriesId", "date"], right_on=["series", "date"])
    assert pairs.height == 21
    expected = math.sqrt(pairs.select(((pl.col("prediction") - pl.col("delayed")) ** 2).mean()).item())
    rmse = doc["accuracy"]["metrics"]["RMSE"]["value"]
    assert rmse == pytest.approx(expected, rel=1e-9)
    assert doc["accuracy"]["sampleSize"] == 21

    # re-sending replaces (no new rows); the rich report renders
    again = json.loads(_upload(setup).output)
    assert again["inserted"] == 0
    assert again["duplicates"] == 21
    table = _invoke("monitor", "flights", registry=setup["registry"])
    assert table.exit_code == 0, table.output
    assert "RMSE" in table.output
    assert "Service health" in table.output


def test_actuals_missing_column_exits_2(setup: dict[str, Any]) -> None:
    bad = Path(str(setup["folder"])) / "bad.csv"
    pl.DataFrame({"series": ["EWR-UA"], "date": ["2013-04-24"]}).write_csv(bad)
    result = _invoke(
        "monitor",
        "actuals",
        "flights",
        str(bad),
        "--series-column",
        "series",
        "--timestamp-column",
        "date",
        "--actual-value-column",
        "delayed",
        registry=setup["registry"],
    )
    assert result.exit_code == 2
    assert "'delayed'" in result.output
    plain = _invoke("monitor", "actuals", "flights", str(bad), registry=setup["registry"])
    assert plain.exit_code == 2


def test_unknown_deployment_and_bad_period(setup: dict[str, Any]) -> None:
    assert _invoke("monitor", "nope", registry=setup["registry"]).exit_code == 2
    result = _invoke(
        "monitor", "flights", "--since", "2024-02-01", "--until", "2024-01-01", registry=setup["registry"]
    )
    assert result.exit_code == 2


def test_plot(setup: dict[str, Any]) -> None:
    pytest.importorskip("matplotlib")
    out = Path(str(setup["folder"])) / "out.png"
    result = _invoke("monitor", "flights", "--plot", str(out), registry=setup["registry"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib(setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = Path(str(setup["folder"])) / "none.png"
    result = _invoke("monitor", "flights", "--plot", str(out), registry=setup["registry"])
    assert result.exit_code == 2
    assert "pip install matplotlib" in result.output
    assert not out.exists()
