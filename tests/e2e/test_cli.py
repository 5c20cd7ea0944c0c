"""The ``tsengine`` command on a real fixture: train, list, info, predict, and its errors.

Most cases run the typer app in-process (``CliRunner``); one runs the installed
console script in a subprocess, exactly as a user would.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import polars as pl
import pytest
from typer.testing import CliRunner

from tsengine.cli import app

SERIES = ("EWR-UA", "JFK-B6", "LGA-DL")
LAST = "2013-12-20"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, flights_csv: Path) -> dict[str, Path]:
    """CSV slices of fixtures/flights_daily.csv: training data, history, history + forecast rows."""
    frame = pl.read_csv(flights_csv, schema_overrides={"date": pl.String})
    frame = frame.filter(pl.col("series").is_in(SERIES) & (pl.col("date") >= "2013-08-04"))
    folder = tmp_path_factory.mktemp("cli-data")
    paths = {
        "train": folder / "train.csv",
        "history": folder / "history.csv",
        "with_forecast_rows": folder / "with_forecast_rows.csv",
        "no_target": folder / "no_target.csv",
    }
    frame.write_csv(paths["train"])
    frame.filter(pl.col("date") <= LAST).write_csv(paths["history"])
    frame.filter(pl.col("date") <= "2013-12-27").with_columns(
        pl.when(pl.col("date") > LAST).then(None).otherwise(pl.col("delayed")).alias("delayed")
    ).write_csv(paths["with_forecast_rows"])
    frame.drop("delayed").write_csv(paths["no_target"])
    return paths


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, data: dict[str, Path]) -> Path:
    """A registry holding deployment ``flights``, trained through the CLI."""
    path = tmp_path_factory.mktemp("cli-registry")
    result = CliRunner().invoke(
        app,
        [
            "train",
            str(data["train"]),
            "--name",
            "flights",
            "--target",
            "delayed",
            "--datetime",
            "date",
            "--series-id",
            "series",
            "--known-in-advance",
            "scheduled",
            "--known-in-advance",
            "holiday",
            "--forecast-window",
            "1",
            "7",
            "--feature-derivation-window",
            "28",
            "--models",
            "lightgbm,seasonal_naive",
            "--registry",
            str(path),
        ],
    )
    assert result.exit_code == 0, result.stderr
    assert "trained flights" in result.stderr
    return path


def _run(registry: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [*args, "--registry", str(registry)])
    return result.exit_code, result.stdout, result.stderr


def _csv(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text))


def test_list_shows_the_trained_deployment(registry: Path) -> None:
    code, out, _ = _run(registry, "list")
    assert code == 0
    assert "flights" in out
    assert "delayed" in out


def test_list_of_an_empty_registry_says_so(tmp_path: Path) -> None:
    code, _, err = _run(tmp_path / "empty", "list")
    assert code == 0
    assert "no deployments in" in err


def test_info_json_describes_spec_and_leaderboard(registry: Path) -> None:
    code, out, _ = _run(registry, "info", "flights", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["id"] == "flights"
    assert info["time_step"] == "1 day"
    assert info["forecast_window"] == [1, 7]
    assert info["feature_derivation_window"] == [-28, 0]
    assert info["known_in_advance"] == ["scheduled", "holiday"]
    assert {row["model"] for row in info["leaderboard"]} == {"lightgbm", "seasonal_naive"}
    check = info["intervals"]["check"]  # the intervals' own held-out calibration check
    assert check["origins"] >= 1
    assert 0.0 <= check["coverage"] <= 100.0


def test_info_table_names_the_fields(registry: Path) -> None:
    code, out, _ = _run(registry, "info", "flights")
    assert code == 0
    assert "target: delayed" in out
    assert "backtest leaderboard" in out
    assert "selected: " in out
    assert "intervals: 80 % conformal" in out


def test_predict_history_only_writes_datarobot_csv(registry: Path, data: dict[str, Path]) -> None:
    code, out, err = _run(registry, "predict", "flights", str(data["history"]), "--relax-known-in-advance")
    assert code == 0, err
    assert "warning:" in err
    assert "imputed missing known-in-advance values" in err
    table = _csv(out)
    assert list(table.columns)[:5] == [
        "series",
        "FORECAST_POINT",
        "date",
        "FORECAST_DISTANCE",
        "delayed (actual)_PREDICTION",
    ]
    assert len(table) == 3 * 7
    assert set(table["FORECAST_POINT"]) == {"2013-12-20T00:00:00Z"}
    assert table["date"].tolist()[:7] == [f"2013-12-{d}" for d in range(21, 28)]


def test_predict_with_forecast_rows_and_forecast_point_as_json(registry: Path, data: dict[str, Path]) -> None:
    code, out, err = _run(
        registry,
        "predict",
        "flights",
        str(data["with_forecast_rows"]),
        "--forecast-point",
        LAST,
        "--format",
        "json",
    )
    assert code == 0, err
    rows = json.loads(out)["data"]
    assert len(rows) == 21
    assert {r["forecastPoint"] for r in rows} == {"2013-12-20T00:00:00Z"}
    assert rows[0]["timestamp"] == "2013-12-21T00:00:00.000000Z"
    assert rows[0]["predictionValues"][0]["label"] == "delayed (actual)"
    assert set(rows[0]["predictionIntervals"]) == {"80"}


def test_forecast_point_inferred_from_the_latest_target_matches_the_explicit_one(
    registry: Path, data: dict[str, Path]
) -> None:
    _, inferred, _ = _run(registry, "predict", "flights", str(data["with_forecast_rows"]))
    _, explicit, _ = _run(
        registry, "predict", "flights", str(data["with_forecast_rows"]), "--forecast-point", LAST
    )
    assert inferred == explicit


def test_historical_mode_predicts_the_range(registry: Path, data: dict[str, Path]) -> None:
    code, out, err = _run(
        registry, "predict", "flights", str(data["train"]), "--start", "2013-12-01", "--end", "2013-12-08"
    )
    assert code == 0, err
    table = _csv(out)
    assert len(table) == 3 * 7 * 7
    assert table["date"].min() == "2013-12-01"
    assert table["date"].max() == "2013-12-07"


def test_predict_writes_to_an_output_file(registry: Path, data: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    code, out, err = _run(
        registry,
        "predict",
        "flights",
        str(data["history"]),
        "--relax-known-in-advance",
        "--format",
        "json",
        "--passthrough",
        "scheduled",
        "-o",
        str(target),
    )
    assert code == 0, err
    assert out == ""
    rows = json.loads(target.read_bytes())["data"]
    assert rows[0]["passthroughValues"] == {"scheduled": None}


def test_unknown_deployment_exits_2_naming_it(registry: Path, data: dict[str, Path]) -> None:
    code, out, err = _run(registry, "predict", "nope", str(data["history"]))
    assert code == 2
    assert out == ""
    assert "deployment 'nope' not found" in err


def test_missing_column_exits_2_naming_it(registry: Path, data: dict[str, Path]) -> None:
    code, _, err = _run(registry, "predict", "flights", str(data["no_target"]))
    assert code == 2
    assert "missing required column(s) 'delayed'" in err


def test_bad_format_exits_2_naming_it(registry: Path, data: dict[str, Path]) -> None:
    code, _, err = _run(registry, "predict", "flights", str(data["history"]), "--format", "xml")
    assert code == 2
    assert "--format must be csv or json, got 'xml'" in err


def test_forecast_point_with_start_exits_2(registry: Path, data: dict[str, Path]) -> None:
    code, _, err = _run(
        registry,
        "predict",
        "flights",
        str(data["history"]),
        "--forecast-point",
        LAST,
        "--start",
        "2013-12-01",
        "--end",
        "2013-12-08",
    )
    assert code == 2
    assert "forecastPoint cannot be combined with predictionsStartDate/predictionsEndDate" in err


def test_start_without_end_exits_2(registry: Path, data: dict[str, Path]) -> None:
    code, _, err = _run(registry, "predict", "flights", str(data["history"]), "--start", "2013-12-01")
    assert code == 2
    assert "predictionsStartDate was given without predictionsEndDate" in err


def test_unparseable_forecast_point_exits_2_naming_the_option(registry: Path, data: dict[str, Path]) -> None:
    code, _, err = _run(registry, "predict", "flights", str(data["history"]), "--forecast-point", "soon")
    assert code == 2
    assert "--forecast-point: 'soon' is not a datetime" in err


def test_missing_kia_without_relax_exits_2_naming_feature(registry: Path, data: dict[str, Path]) -> None:
    code, _, err = _run(registry, "predict", "flights", str(data["history"]))
    assert code == 2
    assert "known-in-advance feature(s) 'scheduled', 'holiday'" in err


def test_missing_input_file_exits_2_naming_it(registry: Path, tmp_path: Path) -> None:
    code, _, err = _run(registry, "predict", "flights", str(tmp_path / "absent.csv"))
    assert code == 2
    assert "absent.csv" in err


def test_json_rows_file_predicts_like_the_csv_file_and_the_server(
    registry: Path, data: dict[str, Path], tmp_path: Path
) -> None:
    """The CLI reads files with the server's body decoder: JSON records (or {"rows": ...}) work too."""
    records = pl.read_csv(data["with_forecast_rows"], infer_schema_length=0).to_dicts()
    rows_json = tmp_path / "rows.json"
    rows_json.write_bytes(json.dumps({"rows": records}).encode())
    args = ("--forecast-point", LAST, "--format", "json")
    code, from_csv, err = _run(registry, "predict", "flights", str(data["with_forecast_rows"]), *args)
    assert code == 0, err
    code, from_json, err = _run(registry, "predict", "flights", str(rows_json), *args)
    assert code == 0, err
    assert json.loads(from_json) == json.loads(from_csv)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b"date,date,delayed\n2013-12-01,2013-12-01,1\n",
            "Column 'date' appears more than once in the CSV header",
        ),
        (b"date,series,delayed\n", "The file 'bad.csv' has a header but no data rows"),
        (b"date,series\n\xff,1\n", "The file 'bad.csv' is not valid UTF-8: byte 0xff"),
    ],
)
def test_a_malformed_rows_file_exits_2_with_the_servers_message(
    registry: Path, tmp_path: Path, body: bytes, message: str
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(body)
    code, out, err = _run(registry, "predict", "flights", str(bad))
    assert code == 2
    assert out == ""
    assert message in " ".join(err.split())
    assert str(tmp_path) not in " ".join(err.split())


def test_train_without_datetime_exits_2(registry: Path, data: dict[str, Path]) -> None:
    code, _, err = _run(registry, "train", str(data["train"]), "--name", "x", "--target", "delayed")
    assert code == 2
    assert "--datetime is required" in err


def test_train_with_unknown_model_exits_2_naming_it(registry: Path, data: dict[str, Path]) -> None:
    code, _, err = _run(
        registry,
        "train",
        str(data["train"]),
        "--name",
        "x",
        "--target",
        "delayed",
        "--datetime",
        "date",
        "--models",
        "prophet",
    )
    assert code == 2
    assert "unknown model(s) ['prophet']" in err


def test_installed_console_script_predicts_and_reports_errors(registry: Path, data: dict[str, Path]) -> None:
    script = shutil.which("tsengine", path=os.path.dirname(sys.executable)) or shutil.which("tsengine")
    assert script is not None, "the tsengine console script is not installed"
    env = {**os.environ, "TSENGINE_REGISTRY": str(registry)}
    ok = subprocess.run(
        [script, "predict", "flights", str(data["with_forecast_rows"]), "--format", "json"],
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr.decode()
    assert len(json.loads(ok.stdout)["data"]) == 21
    bad = subprocess.run(
        [script, "predict", "unknown-id", str(data["history"])],
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stdout == b""
    assert b"deployment 'unknown-id' not found" in bad.stderr


def test_sixteen_months_train_without_backtest_and_predict_with_intervals(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    """Too little history for any backtest: the CLI says so, and predictions still carry intervals."""
    short = tmp_path / "short.csv"
    pl.read_csv(fixtures_dir / "monthly_retail_single.csv").head(16).write_csv(short)
    reg = tmp_path / "reg"
    code, _, err = _run(
        reg, "train", str(short), "--name", "short", "--target", "turnover", "--datetime", "month"
    )
    assert code == 0, err
    assert "no backtest: too little history" in err
    assert "ets" in err
    code, out, err = _run(reg, "predict", "short", str(short))
    assert code == 0, err
    frame = _csv(out)
    assert len(frame) == 12
    low, high = frame["PREDICTION_80_PERCENTILE_LOW"], frame["PREDICTION_80_PERCENTILE_HIGH"]
    assert (low < high).all()
    code, out, _ = _run(reg, "info", "short")
    assert code == 0
    assert "random-walk intervals" in out
    assert "shortened to 13 steps" in out
