"""S3 intake and output: any S3-protocol store (AWS, MinIO, Ceph, moto) through boto3.

The intake downloads the object to the job's folder before anything is scored
(time series need whole series, see :mod:`tsengine.batch.adapters`); boto3's
``download_file`` streams it to disk, so a large object never sits in memory.

The CSV output is one S3 multipart upload: parts are uploaded while the job
runs and the object only appears under its key when :meth:`S3Sink.commit`
completes the upload; a failed or cancelled job aborts it, so readers never see
a partial result.  Parquet output is written locally (its footer comes last)
and uploaded on commit.

Every failure to reach the store becomes a :class:`~tsengine.errors.ValidationError`
naming the URL and the endpoint.  Credentials never appear in messages: they
are scrubbed from whatever boto3 reports.
"""

from __future__ import annotations

import contextlib
import urllib.parse
from pathlib import Path
from typing import Any, Literal

import boto3
import boto3.exceptions
import botocore.exceptions
import polars as pl
import s3transfer.exceptions
from botocore.config import Config

from tsengine.batch.adapters import AdapterContext, FileSink, Source, csv_bytes
from tsengine.batch.spec import AdapterSettings, CsvSettings
from tsengine.errors import ParameterError, ValidationError

__all__ = ["PART_BYTES", "S3Sink", "parse_s3_url", "s3_client", "s3_intake", "s3_sink"]

# S3 wants parts of at least 5 MiB (but the last); 8 MiB parts allow 80 GB in 10,000 parts.
PART_BYTES = 8 * 1024 * 1024
# Fail fast on an unreachable endpoint, but survive a transient error or a slow read.
_CONFIG = Config(
    connect_timeout=10,
    read_timeout=60,
    retries={"max_attempts": 3, "mode": "standard"},
)
_ERRORS: tuple[type[Exception], ...] = (
    botocore.exceptions.BotoCoreError,
    botocore.exceptions.ClientError,
    boto3.exceptions.Boto3Error,
    s3transfer.exceptions.RetriesExceededError,
    s3transfer.exceptions.S3UploadFailedError,
    s3transfer.exceptions.S3DownloadFailedError,
)
_REASONS = {
    "404": "no such object",
    "NoSuchKey": "no such object",
    "NoSuchBucket": "no such bucket",
    "403": "access denied",
    "AccessDenied": "access denied",
    "InvalidAccessKeyId": "the access key is not known to the store",
    "SignatureDoesNotMatch": "the secret key does not match the access key",
    "NoSuchUpload": "the multipart upload no longer exists",
}


def parse_s3_url(url: Any, setting: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into bucket and key.

    Args:
        url: the ``url`` setting.
        setting: its field name for the message (``intakeSettings.url``).

    Raises:
        ParameterError: not an ``s3://`` URL, or no bucket or key (a folder is not an object).
    """
    parts = urllib.parse.urlsplit(str(url or ""))
    bucket, key = parts.netloc, parts.path.lstrip("/")
    if parts.scheme.lower() != "s3" or not bucket or not key or key.endswith("/"):
        msg = f"{setting}: expected s3://bucket/key naming one object, got {str(url)!r}"
        raise ParameterError(msg)
    return bucket, key


def s3_client(settings: AdapterSettings, ctx: AdapterContext) -> tuple[Any, list[str]]:
    """A boto3 S3 client for the adapter's endpoint and credential, and the values to hide.

    Without ``credentialId`` boto3's standard chain applies (environment,
    shared config, instance role).  A fresh session per client, because boto3's
    default session is not safe to create clients from on several threads.
    """
    secret = ctx.secret(settings.get("credentialId")) or {}
    keys: dict[str, Any] = {}
    if secret:
        keys = {
            "aws_access_key_id": secret.get("awsAccessKeyId"),
            "aws_secret_access_key": secret.get("awsSecretAccessKey"),
            "aws_session_token": secret.get("awsSessionToken"),
        }
    region = secret.get("region") or secret.get("awsRegion")
    session = boto3.session.Session(**keys, region_name=region)
    client = session.client("s3", endpoint_url=settings.get("endpointUrl") or None, config=_CONFIG)
    hidden = [str(v) for v in keys.values() if v]
    return client, hidden


def _endpoint(settings: AdapterSettings) -> str:
    return str(settings.get("endpointUrl") or "the default AWS endpoint")


def _reason(exc: Exception, hidden: list[str]) -> str:
    """A one-line reason without credentials (boto3 may echo the access key)."""
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        text = _REASONS.get(code) or f"{code}: {error.get('Message', '')}".strip(": ")
    else:
        cause = exc.__cause__ or exc.__context__
        text = str(exc)
        if isinstance(exc, s3transfer.exceptions.RetriesExceededError) and exc.last_exception is not None:
            text = str(exc.last_exception)
        elif not text and cause is not None:
            text = str(cause)
    text = text.splitlines()[0] if text else type(exc).__name__
    for value in hidden:
        text = text.replace(value, "***")
    return text[:300]


def _error(
    action: str, url: str, settings: AdapterSettings, exc: Exception, hidden: list[str]
) -> ValidationError:
    msg = f"cannot {action} {url} at endpoint {_endpoint(settings)}: {_reason(exc, hidden)}"
    return ValidationError(msg)


def s3_intake(settings: AdapterSettings, csv: CsvSettings, ctx: AdapterContext) -> Source:
    """Download the intake object into the job's folder.

    Raises:
        ParameterError: a malformed URL.
        ValidationError: the endpoint, bucket or object cannot be reached or read.
    """
    url = str(settings.get("url"))
    bucket, key = parse_s3_url(url, "intakeSettings.url")
    fmt: Literal["csv", "parquet"] = (
        "parquet" if settings.format == "parquet" or key.lower().endswith((".parquet", ".pq")) else "csv"
    )
    path = ctx.folder / f"intake.{fmt}"
    path.parent.mkdir(parents=True, exist_ok=True)
    client, hidden = s3_client(settings, ctx)
    try:
        client.download_file(bucket, key, str(path))
    except _ERRORS as exc:
        path.unlink(missing_ok=True)
        if _missing_bucket(client, bucket, exc):
            msg = f"cannot read {url} at endpoint {_endpoint(settings)}: no such bucket"
            raise ValidationError(msg) from None
        error = _error("read", url, settings, exc, hidden)
        raise error from None
    return Source(path, fmt, csv)


def _missing_bucket(client: Any, bucket: str, exc: Exception) -> bool:
    """Whether a 404 on the object is really a missing bucket (HEAD responses carry no error code)."""
    if (
        not isinstance(exc, botocore.exceptions.ClientError)
        or exc.response.get("Error", {}).get("Code") != "404"
    ):
        return False
    try:
        client.head_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError as probe:
        return str(probe.response.get("Error", {}).get("Code")) in ("404", "NoSuchBucket")
    except _ERRORS:
        return False
    return False


def s3_sink(settings: AdapterSettings, csv: CsvSettings, ctx: AdapterContext) -> S3Sink:
    """Open the S3 output (checks the bucket is writable before anything is scored).

    Parquet when ``format`` says so or the key ends in ``.parquet``, as the
    filesystem output decides.

    Raises:
        ParameterError: a malformed URL.
        ValidationError: the endpoint or bucket cannot be reached or written.
    """
    url = str(settings.get("url"))
    bucket, key = parse_s3_url(url, "outputSettings.url")
    client, hidden = s3_client(settings, ctx)
    fmt: Literal["csv", "parquet"] = (
        "parquet" if settings.format == "parquet" or key.lower().endswith((".parquet", ".pq")) else "csv"
    )
    return S3Sink(
        client,
        bucket=bucket,
        key=key,
        fmt=fmt,
        csv=csv,
        folder=ctx.folder,
        settings=settings,
        hidden=hidden,
    )


class S3Sink:
    """Scored chunks to one S3 object that appears only when the job commits.

    CSV goes through a multipart upload created at open: written bytes are
    buffered and uploaded as a part every :data:`PART_BYTES`; :meth:`commit`
    uploads the rest and completes the upload, :meth:`abort` aborts it (S3 then
    discards the parts).  Parquet is written to ``output.parquet`` in the job's
    folder and uploaded on commit, since a Parquet file is only valid once its
    footer is written.
    """

    def __init__(
        self,
        client: Any,
        *,
        bucket: str,
        key: str,
        fmt: Literal["csv", "parquet"],
        csv: CsvSettings,
        folder: Path,
        settings: AdapterSettings,
        hidden: list[str],
    ) -> None:
        """Start the multipart upload (CSV) or the local file (Parquet).

        Both start with a multipart upload, which fails at once on a missing
        bucket or a read-only credential; for Parquet it is aborted right away.
        """
        self._client = client
        self.bucket = bucket
        self.key = key
        self.url = f"s3://{bucket}/{key}"
        self.fmt = fmt
        self.csv = csv
        self._settings = settings
        self._hidden = hidden
        self._buffer = bytearray()
        self._parts: list[dict[str, Any]] = []
        self._header = True
        self._bytes = 0
        self._done = False
        self._local: FileSink | None = None
        self._upload_id: str | None = self._call(
            "write",
            lambda: client.create_multipart_upload(
                Bucket=bucket, Key=key, ContentType="text/csv" if fmt == "csv" else "application/octet-stream"
            )["UploadId"],
        )
        if fmt == "parquet":
            self._abort_upload()
            self._local = FileSink(folder / "output.parquet", fmt="parquet", csv=csv)

    def _call(self, action: str, fn: Any) -> Any:
        try:
            return fn()
        except _ERRORS as exc:
            raise _error(action, self.url, self._settings, exc, self._hidden) from None

    @property
    def bytes_written(self) -> int:
        """Bytes of output so far (uploaded or buffered CSV, or the local Parquet file)."""
        return self._local.bytes_written if self._local is not None else self._bytes

    def write(self, frame: pl.DataFrame) -> None:
        """Append one chunk; uploads a part when the buffer reaches :data:`PART_BYTES`."""
        if self._local is not None:
            self._local.write(frame)
            return
        data = csv_bytes(frame, self.csv, header=self._header)
        self._header = False
        self._buffer.extend(data)
        self._bytes += len(data)
        if len(self._buffer) >= PART_BYTES:
            self._upload_part()

    def _upload_part(self) -> None:
        number = len(self._parts) + 1
        body = bytes(self._buffer)
        response = self._call(
            "write",
            lambda: self._client.upload_part(
                Bucket=self.bucket, Key=self.key, UploadId=self._upload_id, PartNumber=number, Body=body
            ),
        )
        self._parts.append({"PartNumber": number, "ETag": response["ETag"]})
        self._buffer.clear()

    def commit(self) -> None:
        """Make the object visible under its key.

        An output with no bytes at all (no chunk written) is put as an empty
        object: a multipart upload cannot be completed without a part.
        """
        if self._local is not None:
            local = self._local
            local.commit()
            try:
                self._call("write", lambda: self._client.upload_file(str(local.final), self.bucket, self.key))
            finally:
                local.final.unlink(missing_ok=True)
            self._done = True
            return
        if not self._parts and not self._buffer:
            self._abort_upload()
            self._call("write", lambda: self._client.put_object(Bucket=self.bucket, Key=self.key, Body=b""))
            self._done = True
            return
        if self._buffer:
            self._upload_part()
        self._call(
            "write",
            lambda: self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            ),
        )
        self._upload_id = None
        self._done = True

    def _abort_upload(self) -> None:
        """Abort the multipart upload; best effort (a leftover upload is invisible and expires by lifecycle)."""
        if self._upload_id is None:
            return
        upload_id, self._upload_id = self._upload_id, None
        with contextlib.suppress(*_ERRORS):
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=upload_id)

    def abort(self) -> None:
        """Discard everything written; idempotent, never raises."""
        self._buffer.clear()
        self._abort_upload()
        if self._local is not None and not self._done:
            self._local.abort()
            self._local.final.unlink(missing_ok=True)
