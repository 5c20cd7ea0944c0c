"""Fixtures shared by every test package, and the hypothesis profiles.

Profiles (pick one with ``HYPOTHESIS_PROFILE``): ``ci`` (the default: few
examples, derandomized so CI runs are reproducible), ``dev`` (more examples,
random), ``expensive`` (1,000 examples; ``nox -s properties``).

Fixtures here are generic on purpose: package-specific ones live in the
package's own ``conftest.py`` or test module.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, settings
from services import PG_MISSING, moto_s3_server, postgres_bin, postgres_server

import tsengine

settings.register_profile(
    "ci",
    max_examples=30,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile(
    "expensive",
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SMALL_SERIES = ("EWR-UA", "JFK-B6", "LGA-DL")
SMALL_FIRST_DATE = "2013-08-04"  # the last 150 days of 2013


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The folder of real-data CSV fixtures (see ``fixtures/README.md``)."""
    return FIXTURES


@pytest.fixture(scope="session")
def flights_csv() -> Path:
    """Daily NYC flight delays, 12 series, 2013; KIA ``scheduled`` and ``holiday``."""
    return FIXTURES / "flights_daily.csv"


def _read_fixture(name: str, *, datetime_column: str) -> pl.DataFrame:
    return pl.read_csv(FIXTURES / name, schema_overrides={datetime_column: pl.String})


@pytest.fixture(scope="session")
def small_flights() -> pl.DataFrame:
    """Three flight series over the last 150 days of 2013 (450 rows)."""
    frame = _read_fixture("flights_daily.csv", datetime_column="date")
    return frame.filter(pl.col("series").is_in(SMALL_SERIES) & (pl.col("date") >= SMALL_FIRST_DATE))


@pytest.fixture(scope="session")
def small_deployment(small_flights: pl.DataFrame) -> tsengine.Deployment:
    """A real deployment (LightGBM vs seasonal naive) on :func:`small_flights`.

    Windows: FDW ``[-28, 0]``, FW ``[1, 7]``; KIA ``scheduled`` and ``holiday``;
    80 % intervals.  Trains in well under a second.
    """
    return tsengine.train(
        small_flights,
        target="delayed",
        datetime_column="date",
        series_id_column="series",
        known_in_advance=["scheduled", "holiday"],
        models=["lightgbm", "seasonal_naive"],
        forecast_window=[1, 7],
        feature_derivation_window=[-28, 0],
        backtests=2,
        deployment_id="small-flights",
    )


@pytest.fixture(scope="session")
def cli_registry(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``tsengine train ARGS`` into a fresh registry folder, through the CLI; returns the folder."""
    from typer.testing import CliRunner

    from tsengine.cli import app

    def train(label: str, args: list[str]) -> Path:
        path = tmp_path_factory.mktemp(f"{label}-registry")
        result = CliRunner().invoke(app, ["train", *args, "--registry", str(path)])
        assert result.exit_code == 0, result.stderr
        return path

    return train


@pytest.fixture
def tmp_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tsengine.Registry:
    """An empty registry in a temporary folder, also set as ``$TSENGINE_REGISTRY``."""
    path = tmp_path / "registry"
    monkeypatch.setenv("TSENGINE_REGISTRY", str(path))
    return tsengine.Registry(path)


# A real PostgreSQL and moto's S3 server, started once per session when a test asks for them.
# A missing PostgreSQL skips its tests loudly on a workstation and fails them in CI
# (``CI`` set), where ``.ci/run`` installs it.


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


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> str:
    """A new, empty database on the session's PostgreSQL: each test starts with no tables."""
    import uuid

    import sqlalchemy as sa

    name = f"t_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"


class _QuickPolls:
    """The ``time`` module with ``sleep`` capped: the ``datarobot`` client polls a job every 5 s."""

    def __init__(self, cap: float) -> None:
        import time

        self._time, self._cap = time, cap

    def sleep(self, seconds: float) -> None:
        self._time.sleep(min(seconds, self._cap))

    def __getattr__(self, name: str) -> object:
        return getattr(self._time, name)


@pytest.fixture(scope="session")
def quick_client_polls() -> Iterator[None]:
    """Let the unmodified ``datarobot`` client poll its jobs every 50 ms instead of every 1-5 s.

    Only the waits between its status requests shrink (what a job's
    ``wait_for_completion`` and downloads sleep); every request it makes, and
    what it does with each answer, is the client's own.  Most client tests
    spent 5 s of their time in one such sleep.
    """
    from datarobot.models import batch_job
    from datarobot.utils import waiters

    modules = (waiters, batch_job)
    originals = [module.time for module in modules]
    for module in modules:
        module.time = _QuickPolls(0.05)  # type: ignore[assignment]
    yield
    for module, original in zip(modules, originals, strict=True):
        module.time = original  # type: ignore[assignment]
