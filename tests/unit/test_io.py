"""Reading tables and frames at the edge of the core."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tsengine.errors import BadRequestError, ParameterError
from tsengine.io import read_table, to_polars


def test_to_polars_accepts_polars_lazy_pandas_and_records() -> None:
    frame = pl.DataFrame({"date": ["2018-01-09"], "y": [1.5]})
    assert to_polars(frame) is frame
    assert_frame_equal(to_polars(frame.lazy()), frame)
    assert_frame_equal(to_polars(pd.DataFrame({"date": ["2018-01-09"], "y": [1.5]}, index=[7])), frame)
    assert_frame_equal(to_polars([{"date": "2018-01-09", "y": 1.5}]), frame)


def test_to_polars_rejects_other_types_naming_them() -> None:
    with pytest.raises(ParameterError, match="got tuple"):
        to_polars(("a", 1))


def test_read_table_keeps_datetime_text_as_written(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("date,store,y\n01/09/2018,007,1\n01/10/2018,007,2\n")
    frame = read_table(path, schema_overrides={"date": pl.String(), "store": pl.String()})
    assert frame["date"].to_list() == ["01/09/2018", "01/10/2018"]
    assert frame["store"].to_list() == ["007", "007"]
    assert frame.schema["y"] == pl.Int64


def test_read_table_reads_parquet(tmp_path: Path) -> None:
    frame = pl.DataFrame({"date": ["2018-01-09"], "y": [1.5]})
    frame.write_parquet(tmp_path / "x.parquet")
    assert_frame_equal(read_table(tmp_path / "x.parquet"), frame)


def test_missing_file_is_a_bad_request_naming_it(tmp_path: Path) -> None:
    with pytest.raises(BadRequestError, match="no such file: .*absent.csv"):
        read_table(tmp_path / "absent.csv")


def test_unreadable_file_is_a_bad_request_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(BadRequestError, match="cannot read .*broken.parquet.* as Parquet"):
        read_table(path)
