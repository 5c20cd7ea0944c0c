"""Credentials, settings from the environment, and the deployment cache."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from pathlib import Path

import pytest

from api.auth import check_credentials, token_from_authorization
from api.cache import LRUCache
from api.settings import DEFAULT_MAX_BODY_BYTES, Settings
from tsengine.errors import AuthenticationError, NotFoundError

pytestmark = pytest.mark.anyio


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# --------------------------------------------------------------------------- auth


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, []),
        ("", []),
        ("Bearer k1", ["k1"]),
        ("bearer   k1 ", ["k1"]),
        ("Token k1", ["k1"]),
        ("Bearer", []),
        (basic("me@example.com", "k1"), ["k1", "me@example.com"]),
        (basic("k1", ""), ["k1"]),
        ("Basic !!!", []),
        ("Digest k1", []),
    ],
)
def test_token_from_authorization(header: str | None, expected: list[str]) -> None:
    assert token_from_authorization(header) == expected


@pytest.mark.parametrize("header", ["Bearer k2", "Token k1", basic("user", "k2"), basic("k1", "")])
def test_every_client_scheme_is_accepted(header: str) -> None:
    check_credentials({"authorization": header}, api_keys=["k1", "k2"], datarobot_key=None)


@pytest.mark.parametrize("headers", [{}, {"authorization": "Bearer nope"}, {"authorization": "k1"}])
def test_bad_or_missing_token_is_datarobots_401(headers: dict[str, str]) -> None:
    with pytest.raises(AuthenticationError) as info:
        check_credentials(headers, api_keys=["k1"], datarobot_key=None)
    assert info.value.message == "Invalid API token"
    assert info.value.status == 401


def test_no_keys_means_open() -> None:
    check_credentials({}, api_keys=[], datarobot_key=None)


def test_datarobot_key_missing_and_wrong() -> None:
    good = {"authorization": "Bearer k1"}
    check_credentials({**good, "datarobot-key": "dk"}, api_keys=["k1"], datarobot_key="dk")
    with pytest.raises(AuthenticationError) as info:
        check_credentials(good, api_keys=["k1"], datarobot_key="dk")
    assert info.value.message == "The datarobot-key header is missing"
    with pytest.raises(AuthenticationError, match="datarobot-key header is invalid"):
        check_credentials({**good, "datarobot-key": "x"}, api_keys=["k1"], datarobot_key="dk")


# ----------------------------------------------------------------------- settings


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TSENGINE_REGISTRY", str(tmp_path))
    monkeypatch.setenv("TSENGINE_API_KEYS", " k1, k2 ,,")
    monkeypatch.setenv("TSENGINE_DATAROBOT_KEY", "dk")
    monkeypatch.setenv("TSENGINE_MAX_BODY_BYTES", "1000")
    monkeypatch.setenv("TSENGINE_CACHE_SIZE", "2")
    monkeypatch.setenv("TSENGINE_DEFAULT_DEPLOYMENT", "flights")
    settings = Settings()
    assert settings.registry == tmp_path
    assert settings.api_keys == ["k1", "k2"]
    assert settings.datarobot_key == "dk"
    assert settings.max_body_bytes == 1000
    assert settings.cache_size == 2
    assert settings.default_deployment == "flights"
    assert Settings(**{k: v for k, v in settings.model_dump().items()}) == settings


def test_settings_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("API_KEYS", "DATAROBOT_KEY", "MAX_BODY_BYTES", "CACHE_SIZE", "DEFAULT_DEPLOYMENT"):
        monkeypatch.delenv(f"TSENGINE_{name}", raising=False)
    monkeypatch.setenv("TSENGINE_REGISTRY", str(tmp_path / "reg"))
    settings = Settings()
    assert settings.registry == tmp_path / "reg"
    assert settings.api_keys == []
    assert settings.datarobot_key is None
    assert settings.max_body_bytes == DEFAULT_MAX_BODY_BYTES == 50 * 1024 * 1024
    assert (settings.max_request_line, settings.cache_size) == (8192, 16)


def test_blank_datarobot_key_is_unset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TSENGINE_DATAROBOT_KEY", " ")
    assert Settings(registry=tmp_path).datarobot_key is None


def test_settings_round_trip_through_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    original = Settings(
        registry=tmp_path,
        api_keys=["a", "b"],
        datarobot_key="dk",
        cache_size=3,
        max_body_bytes=99,
        max_request_line=100,
        default_deployment="x",
    )
    for name, value in original.to_env().items():
        monkeypatch.setenv(name, value)
    assert Settings() == original


def test_settings_reject_nonsense_limits(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cache_size"):
        Settings(registry=tmp_path, cache_size=0)


# -------------------------------------------------------------------------- cache


class SlowLoader:
    """Counts loads per key; each load blocks its worker thread for a while."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.loads: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, key: str) -> str:
        with self.lock:
            self.loads[key] = self.loads.get(key, 0) + 1
        time.sleep(self.delay)
        if key == "missing":
            msg = f"deployment {key!r} not found"
            raise NotFoundError(msg)
        return f"loaded {key}"


async def test_cache_hits_after_first_load() -> None:
    loader = SlowLoader()
    cache: LRUCache[str] = LRUCache(loader, size=2)
    assert await cache.get("a") == ("loaded a", False)
    assert await cache.get("a") == ("loaded a", True)
    assert loader.loads == {"a": 1}


async def test_cache_evicts_least_recently_used() -> None:
    loader = SlowLoader()
    cache: LRUCache[str] = LRUCache(loader, size=2)
    await cache.get("a")
    await cache.get("b")
    await cache.get("a")  # b is now the least recently used
    await cache.get("c")
    assert "a" in cache
    assert "c" in cache
    assert "b" not in cache
    assert len(cache) == 2
    assert (await cache.get("b"))[1] is False
    assert loader.loads == {"a": 1, "b": 2, "c": 1}


async def test_simultaneous_first_requests_load_once() -> None:
    loader = SlowLoader(delay=0.2)
    cache: LRUCache[str] = LRUCache(loader, size=4)
    results = await asyncio.gather(*(cache.get("a") for _ in range(5)), cache.get("b"))
    assert loader.loads == {"a": 1, "b": 1}
    assert all(value == "loaded a" for value, _ in results[:5])
    assert cache._pending == {}


async def test_loading_runs_off_the_event_loop() -> None:
    loader = SlowLoader(delay=0.3)
    cache: LRUCache[str] = LRUCache(loader, size=4)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        for _ in range(10):
            await asyncio.sleep(0.01)
            ticks += 1

    await asyncio.gather(cache.get("a"), ticker())
    assert ticks == 10


async def test_failed_loads_are_not_cached_and_leave_no_lock() -> None:
    loader = SlowLoader()
    cache: LRUCache[str] = LRUCache(loader, size=4)
    for _ in range(2):
        with pytest.raises(NotFoundError):
            await cache.get("missing")
    assert loader.loads == {"missing": 2}
    assert "missing" not in cache
    assert cache._pending == {}


def test_cache_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        LRUCache(SlowLoader(), size=0)
