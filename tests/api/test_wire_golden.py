"""Golden files: the JSON and CSV wire shapes of every deployment kind, pinned.

Each case posts fixed rows to a deployment trained on a fixture and compares the
answer with ``tests/golden/<case>.json|csv``: the same keys in the same order,
the same types, the same strings, numbers equal to 1e-6 (relative), so a change
of the wire shape fails here even where every other test only reads values.
Regenerate deliberately with ``TSENGINE_UPDATE_GOLDEN=1 python -m pytest
tests/api/test_wire_golden.py`` and review the diff.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any

import httpx
import orjson
import polars as pl
import pytest

import tsengine
from api import Settings, create_app
from tsengine.tabular import train_tabular

from http_flights import flights, train_flights

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
UPDATE = os.environ.get("TSENGINE_UPDATE_GOLDEN") == "1"


def _credit() -> pl.DataFrame:
    return pl.read_csv(ROOT / "fixtures" / "tabular_binary.csv")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("golden-registry")
    registry = tsengine.Registry(path)
    registry.save(train_flights())
    ames = pl.read_csv(ROOT / "fixtures" / "tabular_regression.csv")
    registry.save(
        train_tabular(
            ames, target="sale_price", task="regression", datetime_column="sale_date", deployment_id="ames"
        )
    )
    registry.save(
        train_tabular(_credit(), target="status", task="binary", deployment_id="credit", threshold=0.4)
    )
    homes = _credit().head(2000).filter(pl.col("home").is_in(["owner", "rent", "parents", "priv"]))
    registry.save(train_tabular(homes, target="home", task="multiclass", deployment_id="home"))
    return path


def _history() -> bytes:
    posted = flights().with_columns(
        pl.when(pl.col("date") <= "2013-04-23").then(pl.col("delayed")).alias("delayed")
    )
    return posted.filter(pl.col("date") >= "2013-03-20").write_csv().encode()


CASES: dict[str, tuple[str, dict[str, str], Any]] = {
    "timeseries_forecast": ("flights", {}, _history),
    "timeseries_historical_passthrough": (
        "flights",
        {
            "predictionsStartDate": "2013-04-15",
            "predictionsEndDate": "2013-04-17",
            "passthroughColumns": "holiday",
        },
        _history,
    ),
    "tabular_regression": (
        "ames",
        {},
        lambda: (
            pl.read_csv(ROOT / "fixtures" / "tabular_regression.csv")
            .head(4)
            .drop("sale_price")
            .write_csv()
            .encode()
        ),
    ),
    "tabular_binary_explained": (
        "credit",
        {"maxExplanations": "2"},
        lambda: _credit().head(4).drop("status").write_csv().encode(),
    ),
    "tabular_multiclass": ("home", {}, lambda: _credit().head(4).drop("home").write_csv().encode()),
}


def _same(actual: Any, expected: Any, where: str) -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict), where
        assert list(actual) == list(expected), f"{where}: keys {list(actual)} != {list(expected)}"
        for key in expected:
            _same(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), where
        assert len(actual) == len(expected), f"{where}: {len(actual)} items != {len(expected)}"
        for k, (a, e) in enumerate(zip(actual, expected, strict=True)):
            _same(a, e, f"{where}[{k}]")
    elif isinstance(expected, float) and not isinstance(actual, bool) and isinstance(actual, int | float):
        assert math.isclose(actual, expected, rel_tol=1e-6, abs_tol=1e-9), f"{where}: {actual} != {expected}"
    else:
        assert type(actual) is type(expected), (
            f"{where}: {type(actual).__name__} != {type(expected).__name__}"
        )
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def _cell(text: str) -> Any:
    try:
        return float(text) if any(c in text for c in ".eE") or text.lstrip("-").isdigit() else text
    except ValueError:
        return text


def _csv_rows(body: str) -> list[list[Any]]:
    return [[_cell(c) for c in row] for row in csv.reader(io.StringIO(body))]


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("output", ["json", "csv"])
async def test_wire_shape_matches_the_golden_file(registry: Path, case: str, output: str) -> None:
    deployment_id, params, body = CASES[case]
    app = create_app(Settings(registry=registry, monitoring_enabled=False))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.post(
            f"/predApi/v1.0/deployments/{deployment_id}/predictions",
            params=params,
            content=body(),
            headers={
                "Content-Type": "text/csv",
                "Accept": "text/csv" if output == "csv" else "application/json",
            },
        )
    assert response.status_code == 200, response.text
    golden = GOLDEN / f"{case}.{output}"
    if UPDATE:
        GOLDEN.mkdir(parents=True, exist_ok=True)
        text = (
            orjson.dumps(response.json(), option=orjson.OPT_INDENT_2).decode() + "\n"
            if output == "json"
            else response.text
        )
        golden.write_text(text)
    assert golden.exists(), f"no golden file {golden.name}: run with TSENGINE_UPDATE_GOLDEN=1"
    if output == "json":
        _same(response.json(), orjson.loads(golden.read_bytes()), case)
    else:
        actual, expected = _csv_rows(response.text), _csv_rows(golden.read_text())
        assert actual[0] == expected[0], "CSV header"
        _same(actual[1:], expected[1:], case)
