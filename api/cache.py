"""An LRU cache of loaded deployments, safe under concurrent first requests.

Loading a deployment reads and unpickles a model from disk, which takes long
enough that two requests arriving together for a cold deployment would both load
it.  A lock per deployment id makes the second wait for the first, and loading
runs in a worker thread so the event loop keeps serving other requests.  Like
DataRobot's prediction servers, the cache keeps a bounded number of deployments
and evicts the least recently used one; each process (uvicorn worker) has its own.
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

    def __init__(self, loader: Callable[[str], T], *, size: int) -> None:
        """Create an empty cache.

        Args:
            loader: synchronous function loading one value by key; its exceptions
                (an unknown deployment, a corrupt store) propagate to the caller
                and nothing is cached.
            size: the number of values kept; at least 1.
        """
        if size < 1:
            msg = f"cache size must be at least 1, got {size}"
            raise ValueError(msg)
        self._loader = loader
        self._size = size
        self._items: OrderedDict[str, T] = OrderedDict()
        # Only ids being loaded right now hold an entry, so ids of unknown
        # deployments cannot make this dictionary grow without bound.
        self._pending: dict[str, _Pending] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def _lookup(self, key: str) -> T | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

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
                value = await run_in_threadpool(self._loader, key)
                self._items[key] = value
                while len(self._items) > self._size:
                    self._items.popitem(last=False)
                return value, False
        finally:
            pending.users -= 1
            if pending.users == 0:
                del self._pending[key]

    def clear(self) -> None:
        """Forget every loaded value (e.g. after a deployment was retrained)."""
        self._items.clear()
