"""The one CSV/JSON decoder: the CLI's files and the server's bodies give the same frames.

The property tests write generated frames as CSV and JSON bytes and read them
both ways, through ``tsengine.io.read_table`` (``tsengine predict FILE``) and
``api.parsing.to_frame`` (``POST …/predictions``); the frames must be equal in
columns, dtypes and values, or both sides must refuse the bytes with the same
message.  The unit tests pin the codec's own messages.
"""

from __future__ import annotations

import datetime as dt
import re
import string
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from api.parsing import Payload, to_frame
from tsengine import codec
from tsengine.errors import BadRequestError
from tsengine.io import read_table

_MEDIA = {"csv": "text/csv", "json": "application/json"}

# Odd column names: spaces, quotes, commas, separators, accents, digits, a leading '#'.
_NAMES = st.text(
    alphabet=st.sampled_from(
        [*string.ascii_letters, *string.digits, " ", ",", '"', "'", ";", "é", "ß", "#", "-", "."]
    ),
    min_size=1,
    max_size=12,
).filter(lambda name: "_duplicated_" not in name)

_DATES = st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2040, 12, 31))
_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%Y-%m-%dT%H:%M:%S", "%d.%m.%Y %H:%M")


@st.composite
def _column(draw: st.DrawFn, rows: int) -> pl.Series:
    kind = draw(st.sampled_from(["string", "int", "float", "null", "date"]))
    maybe = st.none() | st.just(0)  # None: a null cell; else a value
    if kind == "null":
        return pl.Series([None] * rows, dtype=pl.Null)
    if kind == "date":
        fmt = draw(st.sampled_from(_DATE_FORMATS))
        dates = draw(st.lists(_DATES, min_size=rows, max_size=rows))
        return pl.Series([d.strftime(fmt) for d in dates], dtype=pl.String)
    values = {
        "string": st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8),
        "int": st.integers(min_value=-(2**53), max_value=2**53),
        "float": st.floats(allow_nan=False, allow_infinity=False, width=64),
    }[kind]
    cells = draw(st.lists(st.tuples(maybe, values), min_size=rows, max_size=rows))
    dtype = {"string": pl.String, "int": pl.Int64, "float": pl.Float64}[kind]
    return pl.Series([None if gap is None else value for gap, value in cells], dtype=dtype)


@st.composite
def frames(draw: st.DrawFn) -> tuple[pl.DataFrame, dict[str, pl.DataType]]:
    """A frame of 1-30 rows and 1-6 columns, and schema overrides for some of them."""
    rows = draw(st.integers(min_value=1, max_value=30))
    names = draw(st.lists(_NAMES, min_size=1, max_size=6, unique=True))
    frame = pl.DataFrame([draw(_column(rows)).alias(name) for name in names])
    kept = draw(st.lists(st.sampled_from(names), unique=True, max_size=2))
    overrides: dict[str, pl.DataType] = {name: pl.String() for name in kept}
    if draw(st.booleans()):
        overrides["not a column"] = pl.String()  # a deployment column the data lacks
    return frame, overrides


def _encode(frame: pl.DataFrame, fmt: codec.Format) -> bytes:
    return frame.write_csv().encode() if fmt == "csv" else frame.write_json().encode()


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    # Module-scoped: hypothesis runs many examples per test function call.
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def _outcome(read: Callable[[], pl.DataFrame]) -> pl.DataFrame | tuple[type, int, str]:
    """The frame, or what was refused, with the source's name and charset hint taken out."""
    try:
        return read()
    except BadRequestError as exc:
        message = re.sub(r"request body|body|file 'rows\.\w+'", "<source>", exc.message)
        message = re.sub(r"does not decode; .*", "does not decode; <hint>", message)
        return type(exc), exc.status, message


def _cli_and_http(
    folder: Path, data: bytes, fmt: codec.Format, overrides: dict[str, pl.DataType]
) -> tuple[pl.DataFrame | tuple[type, int, str], pl.DataFrame | tuple[type, int, str]]:
    path = folder / f"rows.{fmt}"
    path.write_bytes(data)
    cli = _outcome(lambda: read_table(path, schema_overrides=overrides))
    http = _outcome(
        lambda: to_frame(Payload.from_content_type(data, _MEDIA[fmt]), schema_overrides=overrides)
    )
    return cli, http


def _assert_same(
    cli: pl.DataFrame | tuple[type, int, str], http: pl.DataFrame | tuple[type, int, str]
) -> None:
    if isinstance(cli, pl.DataFrame) and isinstance(http, pl.DataFrame):
        assert_frame_equal(cli, http, check_dtypes=True, check_exact=True)
    else:
        assert cli == http


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=frames(), fmt=st.sampled_from(["csv", "json"]))
def test_cli_and_http_read_the_same_bytes_to_the_same_frame(
    folder: Path, case: tuple[pl.DataFrame, dict[str, pl.DataType]], fmt: codec.Format
) -> None:
    frame, overrides = case
    cli, http = _cli_and_http(folder, _encode(frame, fmt), fmt, overrides)
    _assert_same(cli, http)
    assert isinstance(cli, pl.DataFrame), cli  # generated frames are all well-formed
    # (not the names: polars keeps a quoted header's doubled quotes, '"a""b"' -> 'a""b', on both sides)
    assert cli.width == frame.width
    assert cli.height == frame.height
    for name in overrides:
        if name in cli.columns:
            assert cli.schema[name] == pl.String  # datetimes and ids stay as written


@settings(max_examples=150, deadline=None)
@given(
    data=st.binary(max_size=64) | st.text(alphabet='ab,;"\n\r []{}:1.-', max_size=40).map(str.encode),
    fmt=st.sampled_from(["csv", "json"]),
)
def test_cli_and_http_accept_and_refuse_the_same_arbitrary_bytes(
    folder: Path, data: bytes, fmt: codec.Format
) -> None:
    cli, http = _cli_and_http(folder, data, fmt, {"a": pl.String()})
    _assert_same(cli, http)


# ------------------------------------------------------------------------ messages

_FILE = codec.Source.file("/srv/secret/rows.csv")


@pytest.mark.parametrize(
    ("data", "fmt", "message"),
    [
        (b"", None, "The file 'rows.csv' is empty; send the rows as CSV"),
        (b" \n\t", "csv", "The file 'rows.csv' is empty"),
        (b"a,b\n", "csv", "The file 'rows.csv' has a header but no data rows"),
        (b"a,b\n\xff,1\n", "csv", "The file 'rows.csv' is not valid UTF-8: byte 0xff at offset 4"),
        (b"a\xff,b\n1,2\n", "csv", "The file 'rows.csv' is not valid UTF-8: byte 0xff at offset 1"),
        (
            b'[{"a": "\xff"}]',
            "json",
            "not valid UTF-8: byte 0xff at offset 8 does not decode; save it as UTF-8",
        ),
        (b'a,b\n"1,2\n', "csv", "The CSV file 'rows.csv' is malformed"),
        (b"a,a\n1,2\n", "csv", "Column 'a' appears more than once in the CSV header"),
        (b"a,\n1,2\n", "csv", "A column in the CSV header has no name"),
        (b"[{]", "json", "The JSON file 'rows.csv' is malformed"),
        (b"[{]", None, "The JSON file 'rows.csv' is malformed"),  # sniffed
        (b'{"data": []}', "json", "The JSON file 'rows.csv' must be an array of records"),
        (b"[]", "json", "The JSON file 'rows.csv' holds no records"),
        (b'{"rows": [{"a": 1}, "x"]}', "json", "Record 1 of the JSON file 'rows.csv' is a str"),
        (b'[{"a": [1]}]', "json", "Column 'a' holds JSON arrays or objects"),
        (b'[{"a": {"b": 1}}, {"a": [1]}]', "json", "The JSON records cannot form a table"),
    ],
)
def test_a_files_errors_name_the_file_but_not_its_folder(
    data: bytes, fmt: codec.Format | None, message: str
) -> None:
    with pytest.raises(BadRequestError) as info:
        codec.decode(data, fmt, schema_overrides={}, source=_FILE)
    assert message in info.value.message
    assert "secret" not in info.value.message
    assert info.value.status == 400


def test_a_bodys_errors_keep_datarobots_wording() -> None:
    with pytest.raises(BadRequestError, match="^The request body is empty; send the rows as CSV"):
        codec.decode(b"", schema_overrides={})
    with pytest.raises(BadRequestError, match="^The CSV body is malformed"):
        codec.decode(b'a,b\n"1,2\n', "csv", schema_overrides={})
    with pytest.raises(BadRequestError, match="declare the real charset, e.g. Content-Type: text/csv"):
        codec.decode(b"a\n\xe9\n", "csv", schema_overrides={}, charset="utf-8")
    with pytest.raises(BadRequestError, match="^Unknown charset 'klingon' in Content-Type"):
        codec.decode(b"a\n1\n", "csv", schema_overrides={}, charset="klingon")


def test_a_declared_charset_and_a_bom_are_undone() -> None:
    latin = "city,date\nK\u00f6ln,2020-01-01\n".encode("latin-1")
    assert codec.decode(latin, schema_overrides={}, charset="latin-1")["city"].to_list() == ["K\u00f6ln"]
    bom = b"\xef\xbb\xbfcity\nBonn\n"
    assert codec.decode(bom, "csv", schema_overrides={}).columns == ["city"]


def test_overrides_keep_columns_as_written_in_csv_and_json() -> None:
    overrides: dict[str, pl.DataType] = {"store": pl.String(), "date": pl.String(), "absent": pl.Int8()}
    csv = codec.decode(b"store,date,y\n007,01/09/2018,1\n", schema_overrides=overrides)
    records = b'[{"store": 7, "date": "01/09/2018", "y": 1}]'
    json = codec.decode(records, schema_overrides=overrides)
    assert csv["store"].to_list() == ["007"]
    assert json["store"].to_list() == ["7"]  # a JSON number has no leading zeros to keep
    assert csv.schema == json.schema == {"store": pl.String, "date": pl.String, "y": pl.Int64}


def test_sniff_and_extensions_pick_the_format(tmp_path: Path) -> None:
    assert codec.sniff(b"  \n[{}]") == "json"
    assert codec.sniff(b'{"rows": []}') == "json"
    assert codec.sniff(b"a,b\n") == "csv"
    rows = b'{"rows": [{"date": "2020-01-01", "y": 1.5}]}'
    for name in ("rows.json", "rows.JSON", "rows.data"):
        (tmp_path / name).write_bytes(rows)
        assert read_table(tmp_path / name).to_dicts() == [{"date": "2020-01-01", "y": 1.5}]
    (tmp_path / "rows.csv").write_bytes(rows)
    with pytest.raises(BadRequestError, match="'rows.csv' has a header but no data rows"):  # read as CSV
        read_table(tmp_path / "rows.csv")
