"""Run the real server in a background thread, for tests and notebooks.

Like ``starlette.testclient`` but over a real loopback socket, so real clients
(``datarobot-predict``, curl, httpx) talk to the same uvicorn stack that
``tsengine serve`` runs.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

from fastapi import FastAPI

from api.app import create_app
from api.server import make_server
from api.settings import Settings

__all__ = ["running"]

START_TIMEOUT = 10.0
"""Seconds the server thread may take to start listening."""


@contextlib.contextmanager
def running(settings: Settings, *, app: FastAPI | None = None) -> Iterator[str]:
    """The real server on a free loopback port, in a thread; yields its base URL.

    ``app`` serves instead of ``create_app(settings)`` (tests that hold the batch engine).

    Raises:
        RuntimeError: the server thread died or did not start in time.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = make_server(app if app is not None else create_app(settings), port=port, log_level="warning")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while not server.started:
            if not thread.is_alive():
                msg = "the server thread died while starting"
                raise RuntimeError(msg)
            if time.monotonic() > deadline:
                msg = f"the server did not start within {START_TIMEOUT:.0f} s"
                raise RuntimeError(msg)
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT)
        sock.close()
