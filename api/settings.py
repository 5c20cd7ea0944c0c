"""Environment-driven settings of the HTTP server.

Everything the server needs from its operator lives here, read from ``TSENGINE_*``
environment variables (or passed as keyword arguments, which is what tests do).
The settings object is handed to :func:`api.create_app`; nothing reads a global.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = [
    "DEFAULT_CACHE_SIZE",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_REQUEST_LINE",
    "Settings",
]

# DataRobot's documented "maximum data submission size for dedicated predictions is 50 MB";
# its clients (datarobot-predict's REQUEST_LIMIT_BYTES) count that as 50 * 1024 * 1024 bytes.
DEFAULT_MAX_BODY_BYTES = 50 * 1024 * 1024
# DataRobot's documented limit on the HTTP request line (method, path, query, version).
DEFAULT_MAX_REQUEST_LINE = 8192
# DataRobot's documented default size of a prediction server's in-memory model cache.
DEFAULT_CACHE_SIZE = 16


def _default_registry() -> Path:
    # Imported lazily: the registry module is the core's, and settings must stay
    # importable (and cheap) when a test passes ``registry=`` explicitly.
    from tsengine.registry import default_registry_path

    return default_registry_path()


class Settings(BaseSettings):
    """What the operator configures: where deployments live, who may call, and limits.

    Every field reads ``TSENGINE_<FIELD>`` from the environment, e.g.
    ``TSENGINE_API_KEYS=key1,key2``.
    """

    model_config = SettingsConfigDict(env_prefix="TSENGINE_", frozen=True, extra="ignore")

    registry: Path = Field(
        default_factory=_default_registry,
        description=(
            "Directory holding the trained deployments. Defaults to $TSENGINE_REGISTRY, "
            "else ~/.tsengine/registry, so `tsengine train` and `tsengine serve` agree "
            "without flags."
        ),
    )
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Accepted API keys (comma-separated in the environment). Empty means an open "
            "server, which is why `serve` then binds 127.0.0.1 and warns on any other host."
        ),
    )
    datarobot_key: str | None = Field(
        default=None,
        description=(
            "Value the `datarobot-key` header must carry, as DataRobot's managed cloud "
            "requires; unset means the header is not checked."
        ),
    )
    max_body_bytes: int = Field(
        default=DEFAULT_MAX_BODY_BYTES,
        gt=0,
        description=(
            "Largest accepted request body in bytes, before and after decompression "
            "(DataRobot's 50 MB); larger bodies get 413 without being read to the end."
        ),
    )
    max_request_line: int = Field(
        default=DEFAULT_MAX_REQUEST_LINE,
        gt=0,
        description=(
            "Longest accepted HTTP request line in bytes (DataRobot's 8192); longer lines "
            "get 414, typically from very many passthroughColumns."
        ),
    )
    cache_size: int = Field(
        default=DEFAULT_CACHE_SIZE,
        gt=0,
        description=(
            "How many deployments stay loaded in memory (least recently used evicted "
            "first), as DataRobot's prediction servers do."
        ),
    )
    default_deployment: str | None = Field(
        default=None,
        description=(
            "Deployment served by the PPS-style `POST /predictions` and `GET /info`; "
            "unset means the registry's only deployment."
        ),
    )

    batch_workers: int = Field(
        default=1,
        ge=1,
        description=(
            "Batch prediction jobs run at once in this server process (`tsengine serve "
            "--batch-workers`); more wait in the queue. Each job scores numConcurrent chunks at once."
        ),
    )
    batch_store_url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL of the batch job store (e.g. postgresql+psycopg://host/db) so several "
            "servers share jobs; unset means SQLite in <registry>/.batch/batch.sqlite3."
        ),
    )
    dask_scheduler: str | None = Field(
        default=None,
        description=(
            "Score batch prediction jobs on this Dask cluster: tcp://HOST:8786, or local[:N] for N "
            "local worker processes (pip install 'tsengine[dask]'); unset scores them in threads here."
        ),
    )
    batch_max_upload_bytes: int = Field(
        default=10 * 1024**3,
        gt=0,
        description="Largest batch job upload (PUT csvUpload/) in bytes; larger ones get 413.",
    )
    batch_max_queued: int = Field(
        default=100,
        gt=0,
        description="Batch jobs waiting or running before new ones get 429 (backpressure).",
    )
    batch_retention_hours: float = Field(
        default=48.0,
        gt=0,
        description="Hours a finished job's upload and result are kept (DataRobot keeps 48).",
    )

    monitoring_enabled: bool = Field(
        default=True,
        description=(
            "Record predictions, requests and actuals for monitoring (accuracy, drift, service "
            "stats). Off: no prediction log and no monitoring routes."
        ),
    )
    monitoring_url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL of the monitoring store (prediction log, actuals, request stats), e.g. "
            "postgresql+psycopg://host/db; unset means SQLite in <registry>/.monitoring/."
        ),
    )
    monitoring_queue: int = Field(
        default=10_000,
        gt=0,
        description=(
            "Prediction-log events (requests or batch chunks) queued for the writer thread; "
            "beyond it events are dropped and counted in serviceStats, never blocking a prediction."
        ),
    )

    sample_location_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Hosts (comma-separated) the Einstein-style route may fetch a sampleLocation image URL "
            "from, over https only; empty (the default) refuses every URL, so the server cannot be "
            "made to reach inside its own network (SSRF)."
        ),
    )

    @field_validator("api_keys", "sample_location_hosts", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        """Accept ``"k1, k2"`` from the environment as well as a list from Python."""
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @field_validator(
        "datarobot_key",
        "default_deployment",
        "batch_store_url",
        "monitoring_url",
        "dask_scheduler",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        """Treat ``TSENGINE_DATAROBOT_KEY=`` as unset rather than as an empty key."""
        if isinstance(value, str) and not value.strip():
            return None
        return value

    def to_env(self) -> dict[str, str]:
        """Environment variables that rebuild these settings in another process.

        Used by ``serve(workers=N)``: uvicorn then starts the app from a factory
        string in each worker, and the workers read their settings from here.
        """
        env = {
            "TSENGINE_REGISTRY": str(self.registry),
            "TSENGINE_API_KEYS": ",".join(self.api_keys),
            "TSENGINE_MAX_BODY_BYTES": str(self.max_body_bytes),
            "TSENGINE_MAX_REQUEST_LINE": str(self.max_request_line),
            "TSENGINE_CACHE_SIZE": str(self.cache_size),
            "TSENGINE_BATCH_WORKERS": str(self.batch_workers),
            "TSENGINE_BATCH_MAX_UPLOAD_BYTES": str(self.batch_max_upload_bytes),
            "TSENGINE_BATCH_MAX_QUEUED": str(self.batch_max_queued),
            "TSENGINE_BATCH_RETENTION_HOURS": str(self.batch_retention_hours),
            "TSENGINE_SAMPLE_LOCATION_HOSTS": ",".join(self.sample_location_hosts),
        }
        if self.batch_store_url is not None:
            env["TSENGINE_BATCH_STORE_URL"] = self.batch_store_url
        if self.dask_scheduler is not None:
            env["TSENGINE_DASK_SCHEDULER"] = self.dask_scheduler
        if self.monitoring_url is not None:
            env["TSENGINE_MONITORING_URL"] = self.monitoring_url
        env["TSENGINE_MONITORING_QUEUE"] = str(self.monitoring_queue)
        env["TSENGINE_MONITORING_ENABLED"] = "true" if self.monitoring_enabled else "false"
        if self.datarobot_key is not None:
            env["TSENGINE_DATAROBOT_KEY"] = self.datarobot_key
        if self.default_deployment is not None:
            env["TSENGINE_DEFAULT_DEPLOYMENT"] = self.default_deployment
        return env
