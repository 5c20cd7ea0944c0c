"""The small-body CSV reader gives exactly polars' frame, or declines.

The property draws raw CSV text from an alphabet rich in the cases where type
inference is subtle (signs, dots, exponents, ``nan``, ``inf``, booleans, long
digit runs, empty fields, ragged and empty lines, quotes) and checks that
whenever :func:`read_small_csv` answers, polars' reader (the codec's slow path)
answers the same frame, dtypes included.
"""

from __future__ import annotations

import io

import polars as pl
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from tsengine.codec import CSV_INFER_ROWS
from tsengine.small_csv import MAX_BYTES, read_small_csv

_TOKENS = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(min_value=-1e6, max_value=1e6).map(lambda x: f"{x:.3f}"),
    st.sampled_from(
        [
            "",
            "",
            "007",
            "-0",
            "+1",
            "1.",
            ".5",
            "1e5",
            "1E-3",
            "NaN",
            "nan",
            "inf",
            "-Infinity",
            "true",
            "FALSE",
            "True",
            "-",
            ".",
            "e",
            "abc",
            "A-1",
            "2024-01-31",
            "2024-01-31 10:00:00",
            "é",
            " 1",
            "1 ",
            "x y",
            "1_000",
        ]
    ),
    st.text(alphabet="0123456789.-+eEabnx ", max_size=6),
)
_NAMES = st.text(alphabet="abcxyz_0 ", min_size=0, max_size=4)
_OVERRIDES = st.dictionaries(
    st.sampled_from(["a", "b", "c", "missing"]),
    st.sampled_from([pl.String(), pl.Int64(), pl.Float64(), pl.Int32()]),
    max_size=2,
)


def _polars(data: bytes, overrides: dict[str, pl.DataType]) -> pl.DataFrame | None:
    try:
        return pl.read_csv(
            io.BytesIO(data),
            schema_overrides=overrides,
            infer_schema_length=CSV_INFER_ROWS,
            try_parse_dates=False,
        )
    except pl.exceptions.PolarsError:
        return None


@st.composite
def _bodies(draw: st.DrawFn) -> bytes:
    width = draw(st.integers(min_value=1, max_value=4))
    names = draw(
        st.sampled_from(
            [["a", "b", "c", "d"][:width], draw(st.lists(_NAMES, min_size=width, max_size=width))]
        )
    )
    rows = draw(st.integers(min_value=1, max_value=12))
    # each column draws from one kind of token, so that cleanly typed columns occur often
    kinds = [
        _TOKENS,
        st.integers(-999, 10**18 - 1).map(str),
        st.floats(min_value=-1e9, max_value=1e9).map(lambda x: f"{x:.4f}"),
        st.text(alphabet="ABCxyzé -_/:", min_size=1, max_size=6),
        st.dates().map(str),
        st.just(""),
    ]
    column_tokens = [draw(st.sampled_from(kinds)) | st.just("") for _ in names]
    lines = [",".join(names)]
    for _ in range(rows):
        cells = [draw(tokens) for tokens in column_tokens]
        if draw(st.integers(0, 30)) == 0:
            cells = cells[:-1]  # a ragged row
        lines.append(",".join(cells))
    text = "\n".join(lines) + draw(st.sampled_from(["\n", "\n", "", "\n\n", "\r\n"]))
    if draw(st.integers(0, 30)) == 0:
        text = text.replace("a", '"a"', 1)
    return text.encode()


@settings(max_examples=500, deadline=None)
@given(data=_bodies(), overrides=_OVERRIDES)
def test_small_reader_agrees_with_polars(data: bytes, overrides: dict[str, pl.DataType]) -> None:
    fast = read_small_csv(data, overrides)
    event("fast path" if fast is not None else "declined")
    if fast is None:
        return
    slow = _polars(data, overrides)
    assert slow is not None, f"polars refuses {data!r} but the small reader answered"
    assert_frame_equal(fast, slow, check_exact=True)


@pytest.mark.parametrize(
    "data",
    [
        b"series,date,y\nA,2024-01-01,1\nA,2024-01-02,2.5\nA,2024-01-03,\n",
        b"date,y,flag\n2024-01-01,3,x\n2024-01-02,4,\n",
        b"a,b\n1,2",
    ],
)
def test_typical_small_bodies_take_the_fast_path(data: bytes) -> None:
    fast = read_small_csv(data, {"series": pl.String(), "date": pl.String()})
    assert fast is not None
    assert_frame_equal(fast, _polars(data, {"series": pl.String(), "date": pl.String()}))


@pytest.mark.parametrize(
    "data",
    [
        b'a,b\n"1,2",3\n',  # quotes
        b"a,b\r\n1,2\r\n",  # CRLF
        b"a,a\n1,2\n",  # duplicate names
        b"a,b\n1,2\n\n3,4\n",  # an empty line is a row of nulls in polars
        b"a,b\n1\n",  # ragged
        b"a\n1e5\n",  # exponent
        b"a\ntrue\n",  # boolean
        b"a\n12345678901234567890\n",  # beyond 18 digits
        b"a\n1\n" + b"2\n" * 1_000,  # more rows than inference samples
        b"a\n" + b"x" * MAX_BYTES + b"\n",  # big
        b"a\n\xff\n",  # not UTF-8
    ],
)
def test_the_rest_goes_to_polars(data: bytes) -> None:
    assert read_small_csv(data, {}) is None
