"""Timing helpers: repeat a call, post a body, summarise latencies."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx
import numpy as np

__all__ = ["PRECISE_HEADER", "HttpSample", "Stats", "post_many", "repeat", "server_seconds", "stats"]

PRECISE_HEADER = "X-TSEngine-Execution-Time-Ms"


@dataclass(frozen=True)
class Stats:
    """Latency percentiles in milliseconds over ``n`` runs."""

    n: int
    p50: float
    p90: float
    p99: float
    mean: float

    def row(self) -> str:
        return f"{self.p50:.2f} | {self.p90:.2f} | {self.p99:.2f}"


def stats(seconds: Sequence[float]) -> Stats:
    """Percentiles (ms) of durations in seconds."""
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    if ms.size == 0:
        return Stats(0, float("nan"), float("nan"), float("nan"), float("nan"))
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return Stats(int(ms.size), float(p50), float(p90), float(p99), float(ms.mean()))


def repeat(fn: Callable[[], object], *, n: int, budget: float, warmup: int = 2) -> list[float]:
    """Durations of up to ``n`` calls of ``fn`` (after ``warmup``), stopping after ``budget`` s."""
    for _ in range(warmup):
        fn()
    out: list[float] = []
    deadline = time.perf_counter() + budget
    while len(out) < n and (not out or time.perf_counter() < deadline):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def server_seconds(headers: httpx.Headers) -> float:
    """The server-side time of a response: the precise header, else DataRobot's whole milliseconds."""
    precise = headers.get(PRECISE_HEADER)
    if precise is not None:
        return float(precise) / 1000.0
    return int(headers["X-DataRobot-Execution-Time"]) / 1000.0


@dataclass(frozen=True)
class HttpSample:
    """End-to-end and server-side durations, in seconds.

    Server-side is ``X-TSEngine-Execution-Time-Ms`` (milliseconds with three
    decimals) when the server sends it, else DataRobot's integer
    ``X-DataRobot-Execution-Time``.
    """

    e2e: list[float]
    server: list[float]
    response_bytes: int


def post_many(
    client: httpx.Client,
    url: str,
    bodies: Sequence[bytes],
    *,
    accept: str,
    n: int,
    budget: float,
    warmup: int = 3,
) -> HttpSample:
    """POST ``bodies`` in turn (CSV) over one keep-alive connection; every answer must be 200."""
    headers = {"Content-Type": "text/csv", "Accept": accept}
    e2e: list[float] = []
    server: list[float] = []
    size = 0
    deadline = None
    i = 0
    while len(e2e) < n:
        body = bodies[i % len(bodies)]
        t0 = time.perf_counter()
        response = client.post(url, content=body, headers=headers)
        elapsed = time.perf_counter() - t0
        if response.status_code != 200:
            msg = f"POST {url} answered {response.status_code}: {response.text[:500]}"
            raise RuntimeError(msg)
        i += 1
        if i <= warmup:
            continue
        if deadline is None:
            deadline = time.perf_counter() + budget
        e2e.append(elapsed)
        server.append(server_seconds(response.headers))
        size = len(response.content)
        if time.perf_counter() > deadline:
            break
    return HttpSample(e2e, server, size)
