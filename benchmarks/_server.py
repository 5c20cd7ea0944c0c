"""Start and stop servers on loopback, and measure their memory, for the benchmarks.

Servers run as real subprocesses (``tsengine serve`` or the FastAPI baseline app)
so that the client, the server and the measurement do not share a GIL, exactly as
a replenishment system and the forecast service would not.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

__all__ = ["RssSampler", "Server", "free_port", "rss_bytes", "start_server"]

BENCH_DIR = Path(__file__).resolve().parent
STARTUP_TIMEOUT = 60.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_bytes(pid: int) -> int:
    """Resident set size of a process and all its children (uvicorn workers)."""
    try:
        proc = psutil.Process(pid)
        total = proc.memory_info().rss
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                total += child.memory_info().rss
        return int(total)
    except psutil.NoSuchProcess:
        return 0


@dataclass
class Server:
    """A server subprocess on ``127.0.0.1:port``."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss(self) -> int:
        """RSS of the server and its workers, in bytes."""
        return rss_bytes(self.pid)

    def stop(self) -> None:
        """SIGINT (uvicorn's graceful shutdown), then kill if it lingers."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _wait_for_ping(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                msg = (
                    f"server exited with {server.process.returncode}; log:\n{server.log.read_text()[-3000:]}"
                )
                raise RuntimeError(msg)
            try:
                if client.get(f"{server.url}/ping").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    server.stop()
    msg = f"server on port {server.port} did not answer /ping within {timeout:.0f}s; log:\n{server.log.read_text()[-3000:]}"
    raise RuntimeError(msg)


@contextlib.contextmanager
def start_server(
    command: Sequence[str], *, port: int, log: Path, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """Run ``command`` (which must listen on ``port``), wait for ``/ping``, stop on exit."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            list(command),
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    server = Server(process, port, log)
    try:
        _wait_for_ping(server, STARTUP_TIMEOUT)
        yield server
    finally:
        server.stop()


def tsengine_command(registry: Path, port: int, *, workers: int = 1) -> list[str]:
    """``tsengine serve`` for ``registry`` on ``port``, as an operator would run it."""
    exe = Path(sys.executable).with_name("tsengine")
    return [str(exe), "serve", "--registry", str(registry), "--port", str(port), "--workers", str(workers)]


def baseline_command(registry: Path, deployment_id: str, port: int) -> list[str]:
    """The FastAPI default-JSON baseline app (``benchmarks/_baseline_app.py``)."""
    return [
        sys.executable,
        str(BENCH_DIR / "_baseline_app.py"),
        "--registry",
        str(registry),
        "--deployment",
        deployment_id,
        "--port",
        str(port),
    ]


@dataclass
class RssSampler:
    """Samples a process tree's RSS in a background thread.

    ``interval`` of a few milliseconds catches the peak of a request that lasts
    tens of milliseconds; RSS is what the kernel reports, so it includes memory
    polars and LightGBM allocate outside Python's allocator.
    """

    pid: int
    interval: float = 0.002
    samples: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        t0 = time.perf_counter()
        while not self._stop.is_set():
            self.samples.append((time.perf_counter() - t0, rss_bytes(self.pid)))
            self._stop.wait(self.interval)

    @property
    def peak(self) -> int:
        return max((rss for _, rss in self.samples), default=0)
