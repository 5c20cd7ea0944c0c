"""Session fixtures for the batch tests: a real PostgreSQL server and moto's S3 server.

Both start once per session, only when a test asks for them.  A missing
PostgreSQL skips its tests loudly on a workstation and fails them in CI
(``CI`` set), where ``.ci/run`` installs it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from services import PG_MISSING, moto_s3_server, postgres_bin, postgres_server


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """``postgresql+psycopg://postgres@127.0.0.1:PORT/tsengine_test`` of a server started for the session."""
    bindir = postgres_bin()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail(PG_MISSING)
        pytest.skip(PG_MISSING)
    with postgres_server(bindir) as url:
        yield url


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of moto's S3 server started for the session."""
    with moto_s3_server() as endpoint:
        yield endpoint
