"""TimeSeriesSpec: JSON round trip, version guard, default windows, derived fields."""

from __future__ import annotations

import orjson
import pytest

from tsengine.spec import SPEC_FORMAT_VERSION, TimeSeriesSpec, default_windows
from tsengine.timestep import MONTH_END, TimeStep


def _spec(**changes: object) -> TimeSeriesSpec:
    base: dict[str, object] = {
        "datetime_column": "date",
        "target": "sales",
        "time_step": TimeStep("month", anchor_day=MONTH_END),
        "feature_derivation_window": (-24, 0),
        "forecast_window": (2, 6),
        "series_id_column": "store",
        "known_in_advance": ("promo", "holiday"),
        "features": ("price",),
        "datetime_format": "%d/%m/%Y",
        "allow_partial_history": True,
        "min_history": 3,
        "series_id_type": "int",
        "utc_offset": "+02:00",
        "kia_fill": {"promo": 0.5, "holiday": "no"},
        "categorical": ("holiday",),
    }
    base.update(changes)
    return TimeSeriesSpec(**base)  # type: ignore[arg-type]


def test_json_round_trip_gives_an_equal_spec() -> None:
    spec = _spec()
    data = orjson.loads(orjson.dumps(spec.to_dict()))
    assert TimeSeriesSpec.from_dict(data) == spec


def test_round_trip_of_a_minimal_single_series_spec() -> None:
    spec = TimeSeriesSpec("t", "y", TimeStep("hour", count=3, phase=3_600_000_000), (-8, 0), (1, 1))
    assert TimeSeriesSpec.from_dict(orjson.loads(orjson.dumps(spec.to_dict()))) == spec


def test_to_dict_records_the_format_version() -> None:
    assert _spec().to_dict()["format_version"] == SPEC_FORMAT_VERSION


def test_newer_format_version_is_rejected_naming_both_versions() -> None:
    data = _spec().to_dict()
    data["format_version"] = SPEC_FORMAT_VERSION + 1
    with pytest.raises(
        ValueError, match=rf"version {SPEC_FORMAT_VERSION + 1} is newer.*\({SPEC_FORMAT_VERSION}\)"
    ):
        TimeSeriesSpec.from_dict(data)


def test_unknown_time_step_unit_is_rejected_naming_it() -> None:
    data = _spec().to_dict()
    data["time_step"]["unit"] = "fortnight"
    with pytest.raises(ValueError, match="'fortnight'"):
        TimeSeriesSpec.from_dict(data)


def test_derived_fields() -> None:
    spec = _spec()
    assert spec.fdw == 24
    assert list(spec.distances) == [2, 3, 4, 5, 6]
    assert spec.required_columns == ("date", "store", "sales", "promo", "holiday", "price")


def test_required_columns_of_single_series_have_no_series_id() -> None:
    spec = _spec(series_id_column=None, known_in_advance=(), features=())
    assert spec.required_columns == ("date", "sales")


@pytest.mark.parametrize(
    ("unit", "count", "fdw", "fw"),
    [
        ("second", 1, (-120, 0), (1, 60)),
        ("minute", 1, (-120, 0), (1, 60)),
        ("minute", 2, (-60, 0), (1, 30)),
        ("minute", 5, (-576, 0), (1, 12)),
        ("minute", 15, (-192, 0), (1, 4)),
        ("minute", 30, (-96, 0), (1, 2)),
        ("second", 600, (-288, 0), (1, 1)),
        ("hour", 1, (-168, 0), (1, 24)),
        ("day", 1, (-56, 0), (1, 28)),
        ("day", 2, (-28, 0), (1, 14)),
        ("week", 1, (-104, 0), (1, 13)),
        ("month", 1, (-36, 0), (1, 12)),
        ("quarter", 1, (-32, 0), (1, 8)),
        ("year", 1, (-20, 0), (1, 5)),
        ("year", 10, (-8, 0), (1, 1)),
    ],
)
def test_default_windows_per_unit(unit: str, count: int, fdw: tuple[int, int], fw: tuple[int, int]) -> None:
    assert default_windows(TimeStep(unit, count=count)) == (fdw, fw)  # type: ignore[arg-type]


@pytest.mark.parametrize("unit", ["second", "minute", "hour", "day", "week", "month", "quarter", "year"])
def test_default_windows_are_valid(unit: str) -> None:
    (a, zero), (b, c) = default_windows(TimeStep(unit))  # type: ignore[arg-type]
    assert a < 0
    assert zero == 0
    assert 1 <= b <= c


def test_spec_is_frozen() -> None:
    spec = _spec()
    with pytest.raises(AttributeError):
        spec.target = "other"  # type: ignore[misc]
