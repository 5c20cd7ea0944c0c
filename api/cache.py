"""An LRU cache of loaded deployments, safe under concurrent first requests.

Loading a deployment reads and decodes a model from disk, which takes long
enough that two requests arriving together for a cold deployment would both load
it.  A lock per deployment id makes the second wait for the first, and loading
runs in a worker thread so the event loop keeps serving other requests.  Like
DataRobot's prediction servers, the cache keeps a bounded number of deployments
and evicts the least recently used one; each process (uvicorn worker) has its own.
A cached value remembers the version it was loaded from; when the store's live
version changes (a retrain, ``tsengine humility add``) the next request reloads.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from starlette.concurrency import run_in_threadpool

__all__ = ["LRUCache"]

T = TypeVar("T")


@dataclass
class _Pending:
    """A lock shared by the requests loading one id, and how many hold it."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class LRUCache(Generic[T]):
    """Loaded values by key; at most ``size`` of them, least recently used evicted.

    Only coroutines running on one event loop touch the cache, so the dictionary
    needs no thread lock; only ``loader`` runs in a thread.
    """

    def __init__(
        self,
        loader: Callable[[str], T],
        *,
        size: int,
        version_of: Callable[[str], str | None] | None = None,
    ) -> None:
        """Create an empty cache.

        Args:
            loader: synchronous function loading one value by key; its exceptions
                (an unknown deployment, a corrupt store) propagate to the caller
                and nothing is cached.
            size: the number of values kept; at least 1.
            version_of: the live version of a key (one small file read); a cached
                value loaded from another version is stale and reloaded.
        """
        if size < 1:
            msg = f"cache size must be at least 1, got {size}"
            raise ValueError(msg)
        self._loader = loader
        self._size = size
        self._version_of = version_of or (lambda _key: None)
        self._items: OrderedDict[str, tuple[T, str | None]] = OrderedDict()
        # Only ids being loaded right now hold an entry, so ids of unknown
        # deployments cannot make this dictionary grow without bound.
        self._pending: dict[str, _Pending] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def _lookup(self, key: str) -> T | None:
        entry = self._items.get(key)
        if entry is None:
            return None
        if entry[1] != self._version_of(key):
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return entry[0]

    async def get(self, key: str) -> tuple[T, bool]:
        """The value for ``key``, loading it on a miss.

        Returns:
            The value, and whether it was already in memory when asked for
            (DataRobot's ``X-DataRobot-Model-Cache-Hit``).  A request that waited
            for another request's load counts as a miss: it paid the load time.
        """
        value = self._lookup(key)
        if value is not None:
            return value, True
        pending = self._pending.setdefault(key, _Pending())
        pending.users += 1
        try:
            async with pending.lock:
                value = self._lookup(key)
                if value is not None:
                    return value, False
                version = self._version_of(key)
                value = await run_in_threadpool(self._loader, key)
                self._items[key] = (value, version)
                while len(self._items) > self._size:
                    self._items.popitem(last=False)
                return value, False
        finally:
            pending.users -= 1
            if pending.users == 0:
                del self._pending[key]

    def version(self, key: str) -> str | None:
        """The version of the value held for ``key`` (checked by the last :meth:`get`), without a file read."""
        entry = self._items.get(key)
        return None if entry is None else entry[1]

    def clear(self) -> None:
        """Forget every loaded value (e.g. after a deployment was retrained)."""
        self._items.clear()
