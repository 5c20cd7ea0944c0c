"""Body and query parsing: every input form to one frame, strict query parameters."""

from __future__ import annotations

import bz2
import datetime as dt
import gzip
from typing import Any

import polars as pl
import pytest

from api.parsing import (
    Payload,
    choose_format,
    decompress,
    parse_options,
    read_body,
    to_frame,
)
from tsengine.errors import BadRequestError, ParameterError, PayloadTooLargeError
from tsengine.options import PredictOptions

OVERRIDES: dict[str, pl.DataType] = {"date": pl.String(), "series": pl.String()}
CSV = b"series,date,y\n1,2020-01-01,3\n2,2020-01-02,4.5\n"
EXPECTED = pl.DataFrame({"series": ["1", "2"], "date": ["2020-01-01", "2020-01-02"], "y": [3.0, 4.5]})


def frame(data: bytes, content_type: str | None) -> pl.DataFrame:
    return to_frame(Payload.from_content_type(data, content_type), schema_overrides=OVERRIDES)


# ------------------------------------------------------------------ query options


def test_no_parameters_is_forecast_mode_with_defaults() -> None:
    assert parse_options([]) == PredictOptions()


@pytest.mark.parametrize("key", ["wd", "forecast_point", "ForecastPoint", ""])
def test_unknown_key_is_rejected_with_datarobots_message(key: str) -> None:
    with pytest.raises(ParameterError) as info:
        parse_options([("maxExplanations", "0"), (key, "1")])
    assert info.value.message == f"'{key}': {key} is not allowed key"
    assert info.value.status == 422


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("True", True), ("1", True), ("false", False), ("False", False), ("0", False)],
)
def test_relax_kia_accepts_client_spellings(value: str, expected: bool) -> None:
    options = parse_options([("relaxKnownInAdvanceFeaturesCheck", value)])
    assert options.relax_known_in_advance is expected


@pytest.mark.parametrize("value", ["yes", "TRUE", "", "2"])
def test_bad_bool_names_the_parameter(value: str) -> None:
    with pytest.raises(ParameterError, match="relaxKnownInAdvanceFeaturesCheck must be true or"):
        parse_options([("relaxKnownInAdvanceFeaturesCheck", value)])


def test_exclude_adjusted_predictions_is_validated_though_unused() -> None:
    parse_options([("excludeAdjustedPredictions", "True")])
    with pytest.raises(ParameterError, match="excludeAdjustedPredictions must be true or false"):
        parse_options([("excludeAdjustedPredictions", "maybe")])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2018-01-09", dt.datetime(2018, 1, 9)),
        ("2018-01-09T00:00:00Z", dt.datetime(2018, 1, 9)),
        ("2018-01-09T02:00:00+02:00", dt.datetime(2018, 1, 9)),
        ("2018-01-09T00:00:00.000000Z", dt.datetime(2018, 1, 9)),
        ("2018-01-09 13:30:00", dt.datetime(2018, 1, 9, 13, 30)),
        ("2018-01-09T02:00:00 02:00", dt.datetime(2018, 1, 9)),  # unencoded "+"
        ("2018-01-09 02:00:00.5 0200", dt.datetime(2018, 1, 9, 0, 0, 0, 500000)),
    ],
)
def test_forecast_point_formats(value: str, expected: dt.datetime) -> None:
    assert parse_options([("forecastPoint", value)]).forecast_point == expected


def test_client_historical_defaults_parse() -> None:
    options = parse_options(
        [
            ("predictionsStartDate", "1900-01-01T00:00:00.000000Z"),
            ("predictionsEndDate", "2262-04-11T23:47:16.854775+00:00"),
        ]
    )
    assert options.start == dt.datetime(1900, 1, 1)
    assert options.end == dt.datetime(2262, 4, 11, 23, 47, 16, 854775)


@pytest.mark.parametrize("value", ["yesterday", "", "2018-13-45", "9999-12-31T23:59:59-01:00"])
def test_bad_datetime_names_parameter_and_value(value: str) -> None:
    with pytest.raises(ParameterError) as info:
        parse_options([("forecastPoint", value)])
    assert info.value.message.startswith("forecastPoint")
    assert repr(value) in info.value.message


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (
            [("forecastPoint", "2018-01-09"), ("predictionsStartDate", "2018-01-01")],
            "forecastPoint cannot be combined with predictionsStartDate",
        ),
        ([("predictionsStartDate", "2018-01-01")], "predictionsStartDate was given without"),
        ([("predictionsEndDate", "2018-01-01")], "predictionsEndDate was given without"),
        (
            [("predictionsStartDate", "2018-01-02"), ("predictionsEndDate", "2018-01-01")],
            "must be before predictionsEndDate",
        ),
        (
            [("passthroughColumns", "a"), ("passthroughColumnsSet", "all")],
            "passthroughColumns and passthroughColumnsSet cannot both be passed",
        ),
        ([("passthroughColumns", " ")], "passthroughColumns must not be blank"),
        ([("passthroughColumnsSet", "some")], "passthroughColumnsSet must be 'all'"),
        ([("maxExplanations", "-1")], "maxExplanations must be 0 or more"),
        ([("maxExplanations", "three")], "maxExplanations must be a whole number"),
        ([("maxExplanations", "1" * 40)], "maxExplanations must be a whole number"),
        ([("thresholdLow", "low")], "thresholdLow must be a finite number"),
        ([("thresholdHigh", "nan")], "thresholdHigh must be a finite number"),
        ([("thresholdHigh", "1e999")], "thresholdHigh must be a finite number"),
        (
            [("thresholdLow", "0.9"), ("thresholdHigh", "0.1")],
            "thresholdLow (0.9) must not exceed thresholdHigh (0.1)",
        ),
        ([("explanationAlgorithm", "xemp")], "explanationAlgorithm 'xemp' is not supported"),
        ([("maxNgramExplanations", "-2")], "maxNgramExplanations must be 0 or more"),
        ([("maxNgramExplanations", "many")], "maxNgramExplanations must be a whole number"),
        (
            [("forecastPoint", "2018-01-09"), ("forecastPoint", "2018-01-10")],
            "forecastPoint was given more than once",
        ),
        ([("maxCodes", "1"), ("maxExplanations", "2")], "maxCodes is the old name"),
    ],
)
def test_bad_parameters_are_422_naming_them(items: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(ParameterError) as info:
        parse_options(items)
    assert message in info.value.message
    assert info.value.status == 422


def test_passthrough_columns_repeat_and_keep_order() -> None:
    options = parse_options([("passthroughColumns", "b"), ("passthroughColumns", "a")])
    assert options.passthrough_columns == ("b", "a")
    assert parse_options([("passthroughColumnsSet", "all")]).passthrough_all


def test_max_codes_is_max_explanations_and_defaults_per_route() -> None:
    assert parse_options([("maxCodes", "2")]).max_explanations == 2
    assert parse_options([], default_max_explanations=3).max_explanations == 3
    assert parse_options([("maxExplanations", "0")], default_max_explanations=3).max_explanations == 0
    assert parse_options([("maxCodes", "2"), ("maxExplanations", "2")]).max_explanations == 2


def test_thresholds_and_algorithm_and_ngrams_accept_client_values() -> None:
    options = parse_options(
        [
            ("thresholdLow", "0.2"),
            ("thresholdHigh", "5e-1"),
            ("explanationAlgorithm", "SHAP"),
            ("maxNgramExplanations", "all"),
        ]
    )
    assert (options.threshold_low, options.threshold_high) == (0.2, 0.5)


# ------------------------------------------------------------------- output format


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "json"),
        ("", "json"),
        ("*/*", "json"),
        ("application/json", "json"),
        ("text/csv", "csv"),
        ("text/csv; charset=utf-8", "csv"),
        ("text/csv, application/json", "csv"),
        ("application/json, text/csv", "json"),
        ("application/json;q=0.5, text/csv", "csv"),
        ("text/csv;q=0", "json"),
        ("text/html", "json"),
        ("text/csv;q=oops", "json"),
    ],
)
def test_choose_format_from_accept(accept: str | None, expected: str) -> None:
    assert choose_format(accept) == expected


# ---------------------------------------------------------------------------- body


@pytest.mark.parametrize(
    "content_type",
    [
        "text/csv",
        "text/plain",
        "text/csv; charset=utf8",
        None,
        "application/octet-stream",
        "application/x-www-form-urlencoded",
    ],
)
def test_csv_keeps_override_columns_as_strings(content_type: str | None) -> None:
    assert frame(CSV, content_type).equals(EXPECTED)


def test_csv_column_changing_type_after_the_sampled_rows_still_parses() -> None:
    body = b"series,date,y\n" + b"1,2020-01-01,3\n" * 1_500 + b"2,2020-01-02,4.5\n"
    parsed = frame(body, "text/csv")
    assert parsed.height == 1_501
    assert parsed["y"].dtype == pl.Float64
    assert parsed["y"][-1] == 4.5


@pytest.mark.parametrize("content_type", ["application/json", "text/json", None])
def test_json_records_and_rows_give_the_csv_frame(content_type: str | None) -> None:
    records = b'[{"series": 1, "date": "2020-01-01", "y": 3}, {"series": 2, "date": "2020-01-02", "y": 4.5}]'
    assert frame(records, content_type).equals(EXPECTED)
    assert frame(b'{"rows": ' + records + b"}", content_type).equals(EXPECTED)


def test_latin1_charset_is_decoded() -> None:
    data = "city,date\nK\u00f6ln,2020-01-01\n".encode("latin-1")
    out = frame(data, "text/csv; charset=latin-1")
    assert out["city"].to_list() == ["K\u00f6ln"]
    out = frame('[{"city": "K\u00f6ln"}]'.encode("cp1252"), "application/json; charset=cp1252")
    assert out["city"].to_list() == ["K\u00f6ln"]


def test_utf8_bom_is_dropped() -> None:
    assert frame(b"\xef\xbb\xbf" + CSV, "text/csv").columns == ["series", "date", "y"]


@pytest.mark.parametrize(
    ("data", "content_type", "message"),
    [
        (b"", "text/csv", "The request body is empty"),
        (b"  \n", "application/json", "The request body is empty"),
        (b"a,b\n", "text/csv", "has a header but no data rows"),
        (b"a,b\n\xff,1\n", "text/csv", "not valid UTF-8: byte 0xff at offset 4"),
        (b'[{"a": "\xff"}]', "application/json", "not valid UTF-8: byte 0xff at offset 8"),
        (b"\xff\xfe", "text/csv; charset=utf-8", "not valid UTF-8"),
        (b"a\n\xe9\n", "text/csv; charset=klingon", "Unknown charset 'klingon'"),
        (b'a,b\n"1,2\n', "text/csv", "The CSV body is malformed"),
        (b"a,b\n1,2,3\n", "text/csv", "The CSV body is malformed"),
        (b"a,a\n1,2\n", "text/csv", "Column 'a' appears more than once"),
        (b"a,\n1,2\n", "text/csv", "has no name"),
        (b"[{]", "application/json", "The JSON body is malformed"),
        (b'{"data": []}', "application/json", "must be an array of records"),
        (b'"text"', "application/json", "must be an array of records"),
        (b"[]", "application/json", "holds no records"),
        (b'{"rows": []}', "application/json", "holds no records"),
        (b'[{"a": 1}, 2]', "application/json", "Record 1 of the JSON body is a int"),
        (b'[{"a": [1]}]', "application/json", "Column 'a' holds JSON arrays or objects"),
        (b'[{"a": {"b": 1}}, {"a": [1]}]', "application/json", "cannot form a table"),
        (b"a,b\n1,2\n", "application/xml", "Content-Type 'application/xml' is not supported"),
    ],
)
def test_bad_bodies_are_400_naming_the_problem(data: bytes, content_type: str, message: str) -> None:
    with pytest.raises(BadRequestError) as info:
        frame(data, content_type)
    assert message in info.value.message
    assert info.value.status == 400


def test_parser_hints_are_trimmed_from_messages() -> None:
    payload = Payload(b"series,date,y\n1,2020-01-01,3\n2,2020-01-02,x\n", "text/csv")
    with pytest.raises(BadRequestError) as info:
        to_frame(payload, schema_overrides={"y": pl.Float64()})
    assert "could not parse `x` as dtype `f64` at column 'y'" in info.value.message
    assert "You might want to try" not in info.value.message


# ------------------------------------------------------------ encodings and limits


@pytest.mark.parametrize(
    ("encoding", "compress"), [("gzip", gzip.compress), ("bz2", bz2.compress), ("GZIP", gzip.compress)]
)
def test_decompress(encoding: str, compress: object) -> None:
    assert callable(compress)
    assert decompress(compress(CSV), encoding, limit=1000) == CSV


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress])
def test_concatenated_members_are_all_read(compress: Any) -> None:
    assert (
        decompress(
            compress(CSV) + compress(b"3,2020-01-03,5\n"),
            "gzip" if compress is gzip.compress else "bz2",
            limit=1000,
        )
        == CSV + b"3,2020-01-03,5\n"
    )


def test_identity_encoding_is_a_no_op() -> None:
    assert decompress(CSV, "identity", limit=1) == CSV
    assert decompress(CSV, None, limit=1) == CSV


@pytest.mark.parametrize(
    ("data", "encoding", "message"),
    [
        (CSV, "gzip", "not valid gzip data"),
        (CSV, "bz2", "not valid bz2 data"),
        (gzip.compress(CSV)[:-12], "gzip", "truncated"),
        (CSV, "br", "Content-Encoding 'br' is not supported"),
    ],
)
def test_bad_compressed_bodies_are_400(data: bytes, encoding: str, message: str) -> None:
    with pytest.raises(BadRequestError, match=message):
        decompress(data, encoding, limit=10_000)


@pytest.mark.parametrize(("encoding", "compress"), [("gzip", gzip.compress), ("bz2", bz2.compress)])
def test_decompression_bomb_is_413(encoding: str, compress: object) -> None:
    assert callable(compress)
    bomb = compress(b"0" * 1_000_000)
    with pytest.raises(PayloadTooLargeError, match="once decompressed"):
        decompress(bomb, encoding, limit=10_000)


async def _chunks(*parts: bytes):  # type: ignore[no-untyped-def]
    for part in parts:
        yield part


@pytest.mark.anyio
async def test_read_body_joins_chunks_up_to_the_limit() -> None:
    assert await read_body(_chunks(b"ab", b"cd"), limit=4, content_length=None) == b"abcd"


@pytest.mark.anyio
async def test_read_body_stops_at_the_first_chunk_past_the_limit() -> None:
    consumed: list[bytes] = []

    async def endless():  # type: ignore[no-untyped-def]
        while True:
            consumed.append(b"x" * 10)
            yield consumed[-1]

    with pytest.raises(PayloadTooLargeError, match="over the 25-byte limit"):
        await read_body(endless(), limit=25, content_length=None)
    assert len(consumed) == 3


@pytest.mark.anyio
async def test_read_body_refuses_a_declared_oversize_without_reading() -> None:
    async def never():  # type: ignore[no-untyped-def]
        raise AssertionError("the body must not be read")
        yield b""

    with pytest.raises(PayloadTooLargeError, match="is 100 bytes, over the 10-byte limit"):
        await read_body(never(), limit=10, content_length="100")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
