"""Multi-value CLI options: repeated flags, commas, and several words after one flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from tsengine.cli import expand_multi_options, transform_lines


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--known-in-advance", "a", "b"], ["--known-in-advance", "a", "--known-in-advance", "b"]),
        (["--known-in-advance", "a,b"], ["--known-in-advance", "a", "--known-in-advance", "b"]),
        (
            ["--known-in-advance", "a", "--known-in-advance", "b"],
            ["--known-in-advance", "a", "--known-in-advance", "b"],
        ),
        (
            ["--models", "lightgbm, ets", "--name", "x"],
            ["--models", "lightgbm", "--models", "ets", "--name", "x"],
        ),
        (["--name", "x", "--seed", "3"], ["--name", "x", "--seed", "3"]),
        (["--known-in-advance"], ["--known-in-advance"]),
        (["--known-in-advance", "--name", "x"], ["--known-in-advance", "--name", "x"]),
    ],
)
def test_multi_value_options_expand_to_repeated_flags(argv: list[str], expected: list[str]) -> None:
    assert expand_multi_options(argv) == expected


def test_expansion_stops_at_the_data_file(tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text("a\n1\n")
    argv = ["train", "--known-in-advance", "promo", "holiday", str(data), "--name", "x"]
    assert expand_multi_options(argv) == [
        "train",
        "--known-in-advance",
        "promo",
        "--known-in-advance",
        "holiday",
        str(data),
        "--name",
        "x",
    ]


def test_a_file_named_like_the_first_value_is_still_a_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "promo").write_text("")
    assert expand_multi_options(["--known-in-advance", "promo"]) == ["--known-in-advance", "promo"]


def test_info_names_each_lightgbm_transform_and_the_errors_behind_it() -> None:
    alone = {
        "kind": "lightgbm",
        "transform": "log",
        "validation_mae": {"scale": 4.25, "log": 3.9},
        "rounds": 80,
    }
    assert transform_lines(alone) == ["lightgbm: log (validation MAE: scale 4.25, log 3.9)"]
    ensemble = {
        "kind": "ensemble",
        "members": [
            {"kind": "ets", "configurations": {"A": 3}},
            alone,
            {"kind": "lightgbm_diff", "transform": "diff", "validation_mae": {}, "rounds": 40},
        ],
    }
    assert transform_lines(ensemble) == [
        "lightgbm: log (validation MAE: scale 4.25, log 3.9)",
        "lightgbm_diff: diff",
    ]
    assert transform_lines({"kind": "seasonal_naive"}) == []


def test_train_help_names_every_model_a_client_may_pass() -> None:
    """The opt-in candidates are not in the default set, but ``--models`` accepts them: the help must say so."""
    from typer.testing import CliRunner

    from tsengine.cli import app
    from tsengine.models import MODELS

    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "400", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    line = next(row for row in result.output.splitlines() if "--models" in row)
    for kind in MODELS:
        assert kind in line, kind
