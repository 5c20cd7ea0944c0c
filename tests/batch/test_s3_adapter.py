"""S3 intake and output against moto's real S3 server (HTTP, multipart uploads, errors)."""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from services import free_port, new_bucket, s3_client

from tsengine.batch import s3 as s3_module
from tsengine.batch.adapters import AdapterContext, intake_source, open_sink
from tsengine.batch.spec import AdapterSettings, CsvSettings
from tsengine.batch.store import BatchStore
from tsengine.errors import ParameterError, ValidationError

SECRET = "SUPERSECRET"
ACCESS = "AKIAEXAMPLEACCESS"


@pytest.fixture
def ctx(tmp_path: Path) -> AdapterContext:
    store = BatchStore.in_folder(tmp_path / "store")
    store.put_credential(
        {"credentialId": "c1", "name": "n", "credentialType": "s3"},
        {"awsAccessKeyId": ACCESS, "awsSecretAccessKey": SECRET},
    )
    return AdapterContext(job_id="j", folder=tmp_path / "job", store=store)


def _settings(url: str, endpoint: str, **extra: str) -> AdapterSettings:
    return AdapterSettings("s3", {"url": url, "credentialId": "c1", "endpointUrl": endpoint, **extra})


def _frame(n: int, offset: int = 0) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "series": [f"s{i % 3}" for i in range(offset, offset + n)],
            "date": [f"2024-01-{(i % 28) + 1:02d}" for i in range(offset, offset + n)],
            "delayed (actual)_PREDICTION": [i * 0.5 for i in range(offset, offset + n)],
        }
    )


def _keys(endpoint: str, bucket: str) -> list[str]:
    return [o["Key"] for o in s3_client(endpoint).list_objects_v2(Bucket=bucket).get("Contents", [])]


def _uploads(endpoint: str, bucket: str) -> list[str]:
    return [u["Key"] for u in s3_client(endpoint).list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


# ---------------------------------------------------------------------- intake


def test_csv_intake_downloads_the_object(s3_endpoint: str, ctx: AdapterContext) -> None:
    bucket = new_bucket(s3_endpoint)
    body = b"series;date;y\na;2024-01-01;1.5\nb;2024-01-02;\n"
    s3_client(s3_endpoint).put_object(Bucket=bucket, Key="in/data.csv", Body=body)
    csv = CsvSettings(delimiter=";")
    source = intake_source(_settings(f"s3://{bucket}/in/data.csv", s3_endpoint), csv, ctx)
    assert source.format == "csv"
    assert source.csv == csv
    assert source.path == ctx.folder / "intake.csv"
    assert source.path.read_bytes() == body


def test_parquet_intake_by_key_suffix_and_by_format(s3_endpoint: str, ctx: AdapterContext) -> None:
    bucket = new_bucket(s3_endpoint)
    frame = _frame(100)
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    client = s3_client(s3_endpoint)
    client.put_object(Bucket=bucket, Key="a.parquet", Body=buffer.getvalue())
    client.put_object(Bucket=bucket, Key="b.bin", Body=buffer.getvalue())
    for key, extra in (("a.parquet", {}), ("b.bin", {"format": "parquet"})):
        source = s3_module.s3_intake(
            _settings(f"s3://{bucket}/{key}", s3_endpoint, **extra), CsvSettings(), ctx
        )
        assert source.format == "parquet"
        assert source.path.name == "intake.parquet"
        assert_frame_equal(pl.read_parquet(source.path), frame)


def test_intake_uses_the_environment_chain_without_credential(
    s3_endpoint: str, ctx: AdapterContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = new_bucket(s3_endpoint)
    s3_client(s3_endpoint).put_object(Bucket=bucket, Key="x.csv", Body=b"a\n1\n")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "env-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    settings = AdapterSettings("s3", {"url": f"s3://{bucket}/x.csv", "endpointUrl": s3_endpoint})
    assert intake_source(settings, CsvSettings(), ctx).path.read_bytes() == b"a\n1\n"


def test_missing_object_and_bucket_are_validation_errors(s3_endpoint: str, ctx: AdapterContext) -> None:
    bucket = new_bucket(s3_endpoint)
    with pytest.raises(
        ValidationError,
        match=rf"cannot read s3://{bucket}/nope.csv at endpoint {s3_endpoint}: no such object",
    ):
        s3_module.s3_intake(_settings(f"s3://{bucket}/nope.csv", s3_endpoint), CsvSettings(), ctx)
    assert not (ctx.folder / "intake.csv").exists()
    with pytest.raises(
        ValidationError, match="cannot read s3://no-such-bucket-here/x.csv at endpoint .*: no such bucket"
    ):
        s3_module.s3_intake(_settings("s3://no-such-bucket-here/x.csv", s3_endpoint), CsvSettings(), ctx)
    with pytest.raises(ValidationError, match="no such bucket|no such object") as info:
        s3_module.s3_sink(_settings("s3://no-such-bucket-here/out.csv", s3_endpoint), CsvSettings(), ctx)
    assert "s3://no-such-bucket-here/out.csv" in info.value.message


def test_unreachable_endpoint_names_it_and_hides_the_keys(ctx: AdapterContext) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ValidationError) as info:
        s3_module.s3_intake(_settings("s3://bucket/key.csv", endpoint), CsvSettings(), ctx)
    message = info.value.message
    assert message.startswith(f"cannot read s3://bucket/key.csv at endpoint {endpoint}: ")
    assert SECRET not in message
    assert ACCESS not in message
    with pytest.raises(ValidationError) as info:
        s3_module.s3_sink(_settings("s3://bucket/out.csv", endpoint), CsvSettings(), ctx)
    assert endpoint in info.value.message
    assert SECRET not in info.value.message
    assert ACCESS not in info.value.message


@pytest.mark.parametrize(
    ("url", "setting"),
    [
        ("s3://bucket", "intakeSettings.url"),
        ("s3://bucket/folder/", "intakeSettings.url"),
        ("http://x/y", "intakeSettings.url"),
    ],
)
def test_url_without_key_is_a_parameter_error(url: str, setting: str, ctx: AdapterContext) -> None:
    with pytest.raises(ParameterError, match=setting):
        s3_module.s3_intake(_settings(url, "http://127.0.0.1:1"), CsvSettings(), ctx)


def test_output_url_without_key_names_the_output_setting(ctx: AdapterContext) -> None:
    with pytest.raises(ParameterError, match="outputSettings.url"):
        s3_module.s3_sink(_settings("s3://bucket/", "http://127.0.0.1:1"), CsvSettings(), ctx)


# ---------------------------------------------------------------------- output


def test_csv_output_is_one_object_after_commit_only(s3_endpoint: str, ctx: AdapterContext) -> None:
    bucket = new_bucket(s3_endpoint)
    url = f"s3://{bucket}/out/result.csv"
    sink = open_sink(_settings(url, s3_endpoint), CsvSettings(), ctx)
    chunks = [_frame(50, 0), _frame(50, 50), _frame(7, 100)]
    for chunk in chunks:
        sink.write(chunk)
    assert _keys(s3_endpoint, bucket) == []  # nothing visible before commit
    assert _uploads(s3_endpoint, bucket) == ["out/result.csv"]
    sink.commit()
    body = s3_client(s3_endpoint).get_object(Bucket=bucket, Key="out/result.csv")["Body"].read()
    assert sink.bytes_written == len(body)
    assert_frame_equal(pl.read_csv(body), pl.read_csv(pl.concat(chunks).write_csv().encode()))
    assert body.count(b"series") == 1  # one header
    assert _uploads(s3_endpoint, bucket) == []


def test_csv_output_uploads_parts_and_keeps_the_dialect(
    s3_endpoint: str, ctx: AdapterContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3_module, "PART_BYTES", 5 * 1024 * 1024)  # S3's minimum part size
    bucket = new_bucket(s3_endpoint)
    csv = CsvSettings(delimiter=";")
    sink = s3_module.s3_sink(_settings(f"s3://{bucket}/big.csv", s3_endpoint), csv, ctx)
    chunks = [_frame(120_000, i * 120_000) for i in range(3)]  # ~3.5 MB each as CSV
    for chunk in chunks:
        sink.write(chunk)
    sink.commit()
    assert len(sink._parts) == 2  # one full part after two chunks, the rest on commit
    body = s3_client(s3_endpoint).get_object(Bucket=bucket, Key="big.csv")["Body"].read()
    assert len(body) == sink.bytes_written
    assert_frame_equal(pl.read_csv(body, separator=";"), pl.concat(chunks))


def test_empty_csv_output_is_an_empty_object(s3_endpoint: str, ctx: AdapterContext) -> None:
    bucket = new_bucket(s3_endpoint)
    sink = s3_module.s3_sink(_settings(f"s3://{bucket}/empty.csv", s3_endpoint), CsvSettings(), ctx)
    sink.commit()
    assert s3_client(s3_endpoint).get_object(Bucket=bucket, Key="empty.csv")["Body"].read() == b""
    assert _uploads(s3_endpoint, bucket) == []


def test_abort_leaves_no_object_and_no_upload(s3_endpoint: str, ctx: AdapterContext) -> None:
    bucket = new_bucket(s3_endpoint)
    for fmt in ("csv", "parquet"):
        sink = s3_module.s3_sink(
            _settings(f"s3://{bucket}/out.{fmt}", s3_endpoint, format=fmt), CsvSettings(), ctx
        )
        sink.write(_frame(10))
        sink.abort()
        sink.abort()  # idempotent
    assert _keys(s3_endpoint, bucket) == []
    assert _uploads(s3_endpoint, bucket) == []
    assert not list(ctx.folder.glob("output.parquet*"))


def test_parquet_output_round_trips_exactly(s3_endpoint: str, ctx: AdapterContext) -> None:
    bucket = new_bucket(s3_endpoint)
    sink = s3_module.s3_sink(_settings(f"s3://{bucket}/r.parquet", s3_endpoint), CsvSettings(), ctx)
    chunks = [
        _frame(30).with_columns(pl.col("date").str.to_date(), pl.lit(None, pl.Float64).alias("lo")),
        _frame(5, 30).with_columns(pl.col("date").str.to_date(), pl.lit(1.0).alias("lo")),
    ]
    for chunk in chunks:
        sink.write(chunk)
    assert _keys(s3_endpoint, bucket) == []
    sink.commit()
    assert sink.bytes_written > 0
    body = s3_client(s3_endpoint).get_object(Bucket=bucket, Key="r.parquet")["Body"].read()
    assert_frame_equal(pl.read_parquet(io.BytesIO(body)), pl.concat(chunks))
    assert not (ctx.folder / "output.parquet").exists()  # the local copy is deleted
