"""Run the prediction server with uvicorn.

``serve`` is what ``tsengine serve`` calls.  One worker gets the app object
directly; several workers each build their own app from :func:`app_from_env`
(uvicorn needs an import string to spawn them), reading the settings from the
``TSENGINE_*`` environment that ``serve`` writes before starting them.  Each
worker has its own model cache, as each DataRobot prediction process does.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import os
import socket
import sys
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from api.app import create_app
from api.settings import Settings

__all__ = [
    "DEFAULT_H11_MAX_INCOMPLETE_EVENT_SIZE",
    "DEFAULT_KEEP_ALIVE_SECONDS",
    "app_from_env",
    "is_loopback",
    "make_server",
    "serve",
]

# uvicorn's h11 parser refuses a request line plus headers longer than this with a
# plain-text 400 (h11's own default is 16 KiB).  It is raised well above the
# 8,192-byte request-line limit so that lines between the two reach our
# middleware, which answers DataRobot's JSON 414.
DEFAULT_H11_MAX_INCOMPLETE_EVENT_SIZE = 64 * 1024

APP_FACTORY = "api.server:app_from_env"
# The HTTP options every way of running the app shares (serve, embedding, e2e tests).
WORKER_START_TIMEOUT = 120
"""Seconds a worker may take to start before uvicorn's supervisor restarts it."""


class NoDelayH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with Nagle's algorithm off on every connection.

    asyncio turns on ``TCP_NODELAY`` only for sockets it created itself; the
    listening socket uvicorn hands to ``--workers`` processes arrives with
    ``proto == 0``, so asyncio skips it and each small response waited ~40 ms
    for the client's delayed ACK (measured: 56 ms end to end vs 11 ms in the
    server with 2 workers; 12 ms with 1).
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Disable Nagle, then proceed as uvicorn does."""
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


# uvicorn closes an idle keep-alive connection after 5 s by default: exactly the
# datarobot client's polling interval (wait_for_completion polls every 5 s), so the
# client's next request raced the close and failed with "Remote end closed
# connection without response" (seen in the batch end-to-end tests).  75 s is
# nginx's default and longer than any client's polling interval.
DEFAULT_KEEP_ALIVE_SECONDS = 75

_HTTP_OPTIONS: dict[str, Any] = {
    "http": NoDelayH11Protocol,
    "h11_max_incomplete_event_size": DEFAULT_H11_MAX_INCOMPLETE_EVENT_SIZE,
    "timeout_keep_alive": DEFAULT_KEEP_ALIVE_SECONDS,
}


def app_from_env() -> FastAPI:
    """App factory for uvicorn workers: settings from the ``TSENGINE_*`` environment."""
    app = create_app(Settings())
    _freeze_startup_objects()
    return app


def _freeze_startup_objects() -> None:
    """Move every object alive after start-up out of the garbage collector's sight.

    The model stack's modules leave ~10^6 objects that live as long as the
    process; each full collection walked them all, a pause of tens of
    milliseconds that landed on whichever request triggered it (measured on
    the one-series request loop: 0.15 s of collections per 2,000 requests,
    0.011 s after freezing).  Only ``serve``'s own process calls this: an app
    built by a test or an embedding program keeps the collector as it was.
    """
    gc.collect()
    gc.freeze()


def make_server(
    app: FastAPI, *, host: str = "127.0.0.1", port: int = 8080, log_level: str = "info"
) -> uvicorn.Server:
    """A one-process uvicorn server with ``serve``'s HTTP options, not yet started.

    For embedding the server in another program (and for the end-to-end tests,
    which run it in a thread): call ``.run()``, set ``.should_exit`` to stop.
    """
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, **_HTTP_OPTIONS)
    return uvicorn.Server(config)


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    *,
    registry: Path,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    log_level: str = "info",
    batch_workers: int = 1,
) -> None:
    """Serve every deployment in ``registry`` until interrupted.

    API keys, the datarobot-key and limits come from ``TSENGINE_*`` variables
    (see :class:`api.settings.Settings`).  Binding anything but loopback with no
    API key configured exposes every deployment to the network, so that prints a
    loud warning on stderr rather than failing: it can be intended, behind a
    gateway that authenticates.

    Args:
        registry: directory of trained deployments.
        host: interface to bind; loopback by default.
        port: TCP port.
        workers: uvicorn worker processes; each loads models on its own.
        log_level: uvicorn's log level.
        batch_workers: batch prediction jobs run at once in each server process.
    """
    settings = Settings(registry=registry, batch_workers=batch_workers)
    if not settings.api_keys and not is_loopback(host):
        print(
            f"WARNING: serving {registry} on {host}:{port} with NO API key: anyone who can "
            "reach this address can call every deployment. Set TSENGINE_API_KEYS=<key> "
            "or bind 127.0.0.1.",
            file=sys.stderr,
            flush=True,
        )
    app: FastAPI | str = create_app(settings)
    if workers > 1:
        os.environ.update(settings.to_env())
        app = APP_FACTORY
    else:
        _freeze_startup_objects()
    uvicorn.run(
        app,
        factory=workers > 1,
        host=host,
        port=port,
        workers=workers if workers > 1 else None,
        log_level=log_level,
        # Importing the model stack (polars, LightGBM, statsmodels) takes seconds on a
        # busy 2-core box; uvicorn's default 5 s health check killed workers mid-start.
        timeout_worker_healthcheck=WORKER_START_TIMEOUT,
        **_HTTP_OPTIONS,
    )
