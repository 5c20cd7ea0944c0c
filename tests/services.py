"""Real servers for the batch adapter tests: PostgreSQL from Debian's package and moto's S3.

No mocks: the adapters talk to a real PostgreSQL (``initdb`` + ``pg_ctl`` in a
temporary folder) and to moto's standalone S3 server over HTTP, as they would
to production stores.  The fixtures in ``conftest.py`` start one of each per
test session; tests isolate themselves with unique table and bucket names.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PG_MISSING = (
    "PostgreSQL is not installed: apt-get install postgresql (needs /usr/lib/postgresql/*/bin/initdb)"
)
S3_REGION = "us-east-1"
DUMMY_KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def free_port() -> int:
    """A TCP port nobody listens on right now (a small race is accepted; callers retry)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unique_name(prefix: str) -> str:
    """A table or bucket name no other test uses (lower case: valid for both)."""
    return (
        f"{prefix}-{uuid.uuid4().hex[:12]}"
        if prefix.endswith("bucket")
        else f"{prefix}_{uuid.uuid4().hex[:12]}"
    )


# ------------------------------------------------------------------ PostgreSQL


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin folder, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def _as_postgres(argv: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; tests in containers usually are root.
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@contextmanager
def postgres_server(bindir: Path, *, database: str = "tsengine_test") -> Iterator[str]:
    """Run a throwaway PostgreSQL cluster; yields its SQLAlchemy URL (trust auth, user postgres).

    The cluster lives in a fresh temporary folder (data, log and unix socket)
    and listens on a free port of 127.0.0.1 only; it is stopped and deleted on exit.
    """
    root = Path(tempfile.mkdtemp(prefix="tsengine-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data, log = root / "data", root / "server.log"
    started = False
    try:
        initdb = [str(bindir / "initdb"), "-D", str(data), "--auth=trust", "-U", "postgres", "-E", "UTF8"]
        _run([*initdb, "--locale=C", "--no-sync"], cwd=root)
        port, reason = 0, ""
        for _attempt in range(3):  # a free port may be taken before the server binds it
            port = free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off -c full_page_writes=off"
            )
            argv = [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(log),
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "start",
            ]
            done = subprocess.run(
                _as_postgres(argv),
                cwd=root,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode == 0:
                started = True
                break
            reason = done.stderr.strip()
        if not started:
            text = log.read_text(errors="replace") if log.exists() else ""
            msg = f"PostgreSQL did not start: {reason}\n{text[-2000:]}"
            raise RuntimeError(msg)
        _run(
            [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", database],
            cwd=root,
        )
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/{database}"
    finally:
        if started:
            subprocess.run(
                _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                cwd=root,
                capture_output=True,
                check=False,
            )
        shutil.rmtree(root, ignore_errors=True)


def _run(argv: list[str], *, cwd: Path) -> None:
    done = subprocess.run(_as_postgres(argv), cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        msg = f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}"
        raise RuntimeError(msg)


# ------------------------------------------------------------------------- S3


@contextmanager
def moto_s3_server() -> Iterator[str]:
    """Run moto's standalone server on a free port of 127.0.0.1; yields its endpoint URL.

    The server runs in a thread of this process with its own in-memory state;
    nothing global (environment, boto3 defaults) is changed.
    """
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def s3_client(endpoint: str) -> Any:
    """A boto3 client for the moto endpoint with dummy credentials (moto accepts any)."""
    import boto3

    session = boto3.session.Session(**DUMMY_KEYS, region_name=S3_REGION)
    return session.client("s3", endpoint_url=endpoint)


def new_bucket(endpoint: str, prefix: str = "tsengine-bucket") -> str:
    """Create an empty bucket with a unique name and return the name."""
    name = unique_name(prefix)
    s3_client(endpoint).create_bucket(Bucket=name)
    return name
